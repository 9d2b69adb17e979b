"""The web page's server (FastAPI): one page, a small JSON API, and nothing else.

Why FastAPI and not Gradio: the page needs a job queue that outlives a reload and a restart, a
ZIP of full-size photos, before/after views and strict limits on what comes in. FastAPI with one
hand-written page does that in a few hundred lines that can be read and tested, with no assets
from a CDN and no analytics; a Gradio page would bring its own front end and state model for
less control over each of those. The page calls the same functions as the CLI (photo_plan for
the plan) and runs the CLI itself for protect and check (jobs.py), so there is no second pipeline.

Access: the page serves only the person who started it. Every request needs the access token:
a new random one each start (or --token / UNLEARNABLE_APP_TOKEN), carried once by the address
printed at start (as Jupyter does, also on 127.0.0.1: another account of a shared computer can
reach 127.0.0.1 too), then kept by the browser as a cookie. Every API call also carries the key
written into the page when it is served (another site cannot read it, so it cannot post jobs).
On 127.0.0.1 (the default) requests must name this computer as their Host (a web page elsewhere
cannot reach it by DNS tricks); naming a folder of the server's own disk is offered only there.
The work folder (uploads, protected photos, previews) is readable by its owner only.
"""

import hmac
import io
import json
import os
import re
import secrets
import shutil
import zipfile
from pathlib import Path

from PIL import Image

from ..data.sources import _SKIP_NAMES
from ..io import atomic_file, atomic_write_bytes, read_json
from ..photos import PHOTO_SUFFIXES, UNREADABLE
from .jobs import Jobs
from .uploads import Limits, Receiver, Upload, UploadError, new_id
from .words import page_words, without_server_paths

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
PREVIEW_SIDE = 640  # the longer side of a before / after / difference view, in pixels
CROP_SIDE = 384  # the side of a 100% crop view
PRESET_WORDS = {
    "cpu": "Quick: sized for this computer's processor (minutes for a few hundred photos).",
    "paper": "The BAIT paper's full settings: much slower, meant for a computer with a GPU.",
    "robust": "Made to also hold when the photos are turned grey or re-saved as JPEG; weaker otherwise "
    "(docs/bait-robust.md).",
}
METHOD_WORDS = {
    "bait": "BAIT: the strongest here against models that start from a pretrained network (recommended).",
    "em": "Error-minimizing noise: the classic method; strong against models trained from scratch only.",
    "rem": "Robust error-minimizing noise: EM made to survive adversarial training; slow.",
    "tap": "Targeted adversarial poisoning: adversarial noise from a trained model.",
    "random": "Random noise: no protection, a reference to compare with.",
}
LABEL_WORDS = {
    "folders": "Each sub-folder is one group (e.g. portraits/, landscapes/): photos of a group share one pattern.",
    "one": "All the photos are of one subject (your face, your work): they are protected as one group among "
    "public photos of other things, as in a collection someone scraped.",
    "clusters": "The tool sorts the photos into groups of similar photos itself: for one flat folder of photos.",
    "csv": "A spreadsheet (CSV) with one row per photo: file,group.",
}
LOOK_WORDS = {  # the page's words for look.LOOKS, the default first
    "invisible": "Invisible: the change is smooth and kept small on skies, skin and walls (the default).",
    "subtle": "Subtle: more change on smooth areas, which may show there on close inspection.",
    "strong": "Strong: the whole budget everywhere; visible as soft colour patches on smooth areas.",
}
FORMAT_WORDS = {  # the page's file formats, in its order; FORMAT_NAMES names them
    "png": "PNG: lossless, so the protection is kept exactly, with any transparency (the largest files).",
    "webp": "WebP: lossless too, with any transparency, and smaller than PNG; most browsers and photo apps open it.",
    "jpeg": "JPEG at quality 95: far smaller; JPEG adds a small error of its own, through which the protection "
    "measured the same (at quality 90 and 75).",
    "same": "Each photo in its own format: a JPEG stays a JPEG at its own quality (its own size).",
}
FORMAT_NAMES = {
    "png": "PNG (lossless)",
    "webp": "WebP (lossless, smaller)",
    "jpeg": "JPEG",
    "same": "same as the original",
}


def methods() -> list[dict]:
    """The methods a folder of photos can be protected with (an Linf budget), with their presets."""
    from ..attacks.base import ATTACKS

    out = []
    for name in sorted(ATTACKS, key=lambda n: (n != "bait", n)):
        cls = ATTACKS[name]
        if cls.norm != "linf" or name.endswith("*"):
            continue
        presets = [p for p in ("cpu", "robust", "paper") if p in cls.PRESETS]
        out.append(
            {
                "name": name,
                "words": METHOD_WORDS.get(name, cls.summary),
                "presets": [{"name": p, "words": PRESET_WORDS[p]} for p in presets],
            }
        )
    return out


class App:
    """The state behind the page: the work folder, its uploads and its jobs."""

    def __init__(self, work: Path, *, local: bool = True, token: str | None = None, limits: Limits | None = None):
        self.work = work.expanduser().resolve()
        self.work.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.work, 0o700)  # the app's own folder: photos and previews are its owner's alone
        self.local, self.limits = local, limits or Limits()
        self.token = token or secrets.token_urlsafe(24)  # in the printed address; every request carries it
        self.key = secrets.token_urlsafe(24)  # written into the page; every API call carries it
        self.jobs = Jobs(self.work)

    def upload(self, upload_id: str) -> Upload:
        if not upload_id.isalnum() or not (self.work / "uploads" / upload_id).is_dir():
            raise KeyError(upload_id)
        return Upload(self.work / "uploads" / upload_id, self.limits)

    def new_upload(self) -> str:
        upload_id = new_id()
        (self.work / "uploads" / upload_id / "photos").mkdir(parents=True)
        return upload_id

    def uses(self, upload_id: str) -> list[dict]:
        """The jobs whose photos are the upload's."""
        photos = str(self.upload(upload_id).photos.resolve())
        return [j for j in self.jobs.all() if (j.get("choices") or {}).get("folder") == photos]

    def delete_upload(self, upload_id: str) -> dict:
        """Drop an upload the page no longer needs (start over): the copies the page sent, never a
        file of the person's own; kept while a job reads its photos (deleting the job deletes it)."""
        up = self.upload(upload_id)
        readers = self.uses(upload_id)
        if readers:
            return {"deleted": False, "kept_for": [j["id"] for j in readers]}
        shutil.rmtree(up.folder)
        return {"deleted": True}

    def delete_job(self, job_id: str) -> dict:
        """A job's folder (its protected photos, previews, checkpoint), its checks, and its upload
        once no other job reads it."""
        job = self.jobs.get(job_id)
        gone = self.jobs.delete(job_id)
        folder = (job.get("choices") or {}).get("folder", "")
        uploads = self.work / "uploads"
        if folder.startswith(str(uploads) + os.sep):
            upload_id = Path(folder).relative_to(uploads).parts[0]
            if (uploads / upload_id).is_dir() and not self.uses(upload_id):
                shutil.rmtree(uploads / upload_id)
        return {"deleted": gone}

    def words(self, message: str) -> str:
        """A pipeline message in the page's words (words.page_words), an upload's folder called so."""
        uploads = re.escape(str(self.work / "uploads"))
        return page_words(re.sub(uploads + r"/\w+/photos/?", "your upload", message))

    # ------------------------------------------------------------------ what the page asks for
    def source(self, req: dict) -> tuple[str, str]:
        """(the photo folder, the --labels value) of a plan or job request."""
        labels = req.get("labels", "folders")
        if labels not in LABEL_WORDS:
            raise ValueError(f"labels must be one of {', '.join(LABEL_WORDS)}, got {labels!r}")
        up = self.upload(str(req["upload"])) if req.get("upload") else None  # photos, or a CSV beside a folder
        if req.get("folder"):
            if not self.local:
                raise ValueError("naming a folder of the server's disk is offered only when the app runs on 127.0.0.1")
            path = Path(str(req["folder"])).expanduser()
            if not path.is_dir():
                raise ValueError(f"{path} is not a folder on this computer")
            folder = str(path.resolve())
        elif up is not None:
            if not up.files():
                raise ValueError("no photos were uploaded yet: add photos first")
            folder = str(up.photos)
        else:
            raise ValueError("choose photos first: upload them, or name a folder")
        csv = up.folder / "labels.csv" if up is not None else Path()
        if labels == "csv":
            if not csv.is_file() or csv.suffix.lower() != ".csv":
                raise ValueError("grouping by a CSV needs the CSV file: choose it under 'Which photos belong together'")
            return folder, str(csv.resolve())
        if labels == "clusters" and req.get("groups"):
            return folder, f"clusters:{int(req['groups'])}"
        return folder, labels

    def choices(self, req: dict) -> dict:
        from ..look import DEFAULT_PHOTO_LOOK

        method, preset, fmt = req.get("method", "bait"), req.get("preset", "cpu"), req.get("format", "png")
        look = req.get("look", DEFAULT_PHOTO_LOOK)
        if look not in LOOK_WORDS:
            raise ValueError(f"look must be one of {', '.join(LOOK_WORDS)}, got {look!r}")
        if method not in {m["name"] for m in methods()}:
            raise ValueError(f"unknown method {method!r}")
        if fmt not in FORMAT_WORDS:
            raise ValueError(f"format must be one of {', '.join(FORMAT_WORDS)}, got {fmt!r}")
        options = req.get("options") or {}
        if not isinstance(options, dict):
            raise ValueError("options must be a mapping of method option to value")
        strip = req.get("strip", False)
        if not isinstance(strip, bool):
            raise ValueError(f"strip must be true or false, got {strip!r}")
        return {"method": method, "preset": preset, "format": fmt, "look": look, "strip": strip, "options": options}

    def plan(self, req: dict) -> dict:
        plan = self._planned(req)[0]
        plan["text"] = self.words(plan["text"])
        plan["notes"] = [self.words(n) for n in plan["notes"]]
        if plan.get("grouping"):
            plan["grouping"]["words"] = [self.words(w) for w in plan["grouping"]["words"]]
        return plan

    def _planned(self, req: dict) -> tuple[dict, str, str, dict]:
        """(the plan, the photo folder, the --labels value, the choices) of a request."""
        from ..protect import photo_plan

        folder, labels = self.source(req)
        c = self.choices(req)
        plan = photo_plan(
            folder,
            method=c["method"],
            preset=c["preset"],
            options=c["options"],
            labels=labels,
            look=c["look"],
            strip_metadata=c["strip"],
            fmt=c["format"],
        )
        return plan, folder, labels, c

    def start(self, req: dict) -> dict:
        """Check the request as the plan does (an error before anything is queued), then queue
        `unlearnable protect` with the page's choices."""
        plan, folder, labels, c = self._planned(req)
        same = [
            j
            for j in self.jobs.all()
            if j["kind"] == "protect"
            and j["state"] in ("queued", "running")
            and j.get("choices") == {**c, "labels": labels, "folder": folder}
        ]
        if same:  # a second click, a second tab: one job per protection
            raise ValueError("these photos are already being protected with these choices: see the job above")
        argv = ["protect", "--data", folder, "--out", "{out}", "--method", c["method"], "--preset", c["preset"]]
        argv += ["--labels", labels, "--format", c["format"], "--look", c["look"]]
        if c["strip"]:
            argv += ["--strip-metadata"]
        for k, v in c["options"].items():
            argv += ["--set", f"{k}={json.dumps(v)}"]
        return self.jobs.submit(
            "protect",
            argv,
            out="protected",
            title=req.get("title") or title(plan, c, labels),
            plan=plan,
            choices={**c, "labels": labels, "folder": folder},
        )

    def rewrite(self, job_id: str, req: dict) -> dict:
        """Queue `unlearnable apply` of a finished protection: the same protection in another file
        format, in seconds, without learning it again."""
        job = self.jobs.get(job_id)
        if job["kind"] != "protect" or job["state"] != "done":
            raise ValueError("only a finished protection can be written again")
        fmt = req.get("format", "png")
        if fmt not in FORMAT_WORDS:
            raise ValueError(f"format must be one of {', '.join(FORMAT_WORDS)}, got {fmt!r}")
        choices = {**job["choices"], "format": fmt}
        if fmt == job["choices"]["format"]:
            raise ValueError("these photos are already in that format: choose another one")
        if any(j.get("choices") == choices and j["state"] in ("queued", "running", "done") for j in self.jobs.all()):
            raise ValueError("these photos were already written in that format: see Earlier jobs")
        was = FORMAT_NAMES.get(job["choices"]["format"])
        title_words = job["title"].replace(was, FORMAT_NAMES[fmt]) if was else f"{job['title']}, {FORMAT_NAMES[fmt]}"
        return self.jobs.submit(
            "protect",
            ["apply", job["out"], "--out", "{out}", "--format", fmt]
            + (["--strip-metadata"] if choices.get("strip") else []),
            out="protected",
            title=title_words,
            plan={**(job.get("plan") or {}), "seconds": (job.get("plan") or {}).get("write_seconds")},
            choices=choices,
            applied_from=job_id,
        )

    def check(self, job_id: str, req: dict) -> dict:
        """Queue `unlearnable check` of a finished protection."""
        job = self.jobs.get(job_id)
        if job["kind"] != "protect" or job["state"] != "done":
            raise ValueError("only a finished protection can be checked")
        if any(j.get("of") == job_id and j["state"] in ("queued", "running") for j in self.jobs.all()):
            raise ValueError("this protection is already being checked: see the check below")
        argv = ["check", job["out"], "--out", "{out}"]
        for init in req.get("init") or []:
            argv += ["--init", str(init)]
        if req.get("epochs"):
            argv += ["--epochs", str(int(req["epochs"]))]
        if req.get("rrc"):
            argv += ["--rrc"]
        return self.jobs.submit("check", argv, out="check", title=f"check of {job['title']}", of=job_id)

    # ------------------------------------------------------------------ results
    def manifest(self, job: dict) -> dict:
        from ..photos import read_manifest

        m = read_manifest(Path(job["out"])) if job["kind"] == "protect" and job["state"] == "done" else None
        if m is None:
            raise ValueError("this job has no protected photos (yet)")
        return m

    def photos(self, job_id: str) -> list[dict]:
        m = self.manifest(self.jobs.get(job_id))
        return [
            {
                "index": i,
                "name": n.removeprefix("train/"),
                "source": e["source"],
                "group": e["label"],
                "width": e["width"],
                "height": e["height"],
                "max_change": e["max_change_0_255"],
                "saved_change": e.get("decoded_max_change_0_255", e["max_change_0_255"]),  # what the file holds
            }
            for i, (n, e) in enumerate(m["photo_files"].items())
        ]

    def preview(self, job_id: str, index: int, kind: str) -> Path:
        """A PNG view of one photo: `before` (the original), `after` (the protected copy) or `diff`
        (their difference, magnified so that the budget spans the whole grey range), scaled to fit;
        with `-100` (before-100, ...), a crop at 100% of the photo's smoothest area, where a change
        would show first."""
        from ..photos import open_upright
        from ..visibility import crop, magnified, smoothest_box

        base, full = kind.removesuffix("-100"), kind.endswith("-100")
        if base not in ("before", "after", "diff"):
            raise KeyError(kind)
        job = self.jobs.get(job_id)
        m = self.manifest(job)
        names = list(m["photo_files"])
        if not 0 <= index < len(names):
            raise KeyError(index)
        path = self.jobs.folder(job_id) / "previews" / f"{index}-{kind}.png"
        if path.is_file():
            return path
        name, entry = names[index], m["photo_files"][names[index]]
        before = open_upright(Path(m["photo_root"]) / entry["source"], entry["source"])[0]
        box = smoothest_box(before, CROP_SIDE) if full else None
        if box is not None:
            before = crop(before, box)
        if base == "before":
            view = before
        else:
            after = open_upright(Path(job["out"]) / name, name)[0]
            if box is not None:
                after = crop(after, box)
            view = after if base == "after" else magnified(before, after, round(m["eps"] * 255))
        img = Image.fromarray(view)
        img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BOX)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        atomic_write_bytes(path, buf.getvalue())
        return path

    def archive(self, job_id: str) -> Path:
        """protected.zip: every protected photo under its name (group folders kept) and the manifest."""
        job = self.jobs.get(job_id)
        m = self.manifest(job)
        path = self.jobs.folder(job_id) / "protected.zip"
        if path.is_file():
            return path
        out = Path(job["out"])
        with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name in m["photo_files"]:
                zf.write(out / name, name.removeprefix("train/"))
            zf.writestr("manifest.json", json.dumps(without_server_paths(read_json(out / "manifest.json")), indent=2))
        return path

    def report(self, job_id: str) -> dict:
        job = self.jobs.get(job_id)
        if job["kind"] != "check" or job["state"] != "done":
            raise ValueError("this job has no report (yet)")
        out = Path(job["out"])
        return without_server_paths(
            {"markdown": (out / "report.md").read_text(), "report": read_json(out / "report.json")}
        )

    def describe(self, job: dict) -> dict:
        """The job with its progress in plain words."""
        from .progress import fraction, in_words

        shown = {**job, "words": self.words(in_words(job)), "fraction": fraction(job)}
        if job.get("error"):
            shown["error"] = self.words(job["error"])
        return shown


def title(plan: dict, c: dict, labels: str) -> str:
    """A job's name in the list of earlier jobs: what makes it differ from another of the same photos."""
    parts = [f"{plan['photos']} photos", f"{c['method']} ({c['preset']}, {c['look']} look)"]
    parts.append(FORMAT_NAMES.get(c["format"], c["format"]))
    mode = labels.partition(":")[0] if not labels.lower().endswith(".csv") else "csv"
    if mode != "folders":
        parts.append({"one": "one subject", "clusters": "grouped by similarity", "csv": "groups from a CSV"}[mode])
    if c["options"]:
        parts.append(", ".join(f"{k}={json.dumps(v)}" for k, v in c["options"].items()))
    return ", ".join(parts)


def cookie_name(request) -> str:
    """The token's cookie, one per port: two apps on one computer keep their own."""
    return f"unlearnable_token_{request.url.port or 80}"


def create_app(state: App):
    """The FastAPI application over `state`."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.concurrency import run_in_threadpool

    api = FastAPI(title="unlearnable", docs_url=None, redoc_url=None, openapi_url=None)

    @api.middleware("http")
    async def guard(request: Request, call_next):
        if state.local:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
            if host not in LOCAL_HOSTS:
                return JSONResponse({"error": "this page answers to 127.0.0.1 or localhost only"}, status_code=403)
        given = request.query_params.get("token") or request.cookies.get(cookie_name(request)) or ""
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            given = auth[7:]
        if not hmac.compare_digest(given.encode(), state.token.encode()):
            return JSONResponse(
                {"error": "an access token is needed: open the address `unlearnable app` printed when it started"}, 401
            )
        if request.url.path.startswith("/api/"):
            key = (
                request.headers.get("x-unlearnable-key") or request.query_params.get("key") or ""
            )  # img, a: no headers
            if not hmac.compare_digest(key.encode(), state.key.encode()):
                return JSONResponse({"error": "reload the page (its key is missing or from an earlier start)"}, 403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def answer(status: int, e: Exception) -> JSONResponse:
        message = str(e).splitlines()[0] if str(e) else "something went wrong; reload the page and try again"
        return JSONResponse({"error": state.words(message)}, status_code=status)

    # The pipeline's errors are one line naming the file or option and the fix: the page shows them.
    api.add_exception_handler(UploadError, lambda request, e: answer(e.status, e))
    api.add_exception_handler(KeyError, lambda request, e: answer(404, Exception("not found")))
    api.add_exception_handler(ValueError, lambda request, e: answer(400, e))
    api.add_exception_handler(OSError, lambda request, e: answer(400, e))

    @api.exception_handler(HTTPException)
    async def http_error(request, exc):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @api.get("/", response_class=HTMLResponse)
    def page(request: Request):
        if request.query_params.get("token"):  # keep the token as a cookie and drop it from the address bar
            r = RedirectResponse("/", status_code=303)
            r.set_cookie(cookie_name(request), state.token, httponly=True, samesite="strict")
            return r
        html = (STATIC / "index.html").read_text().replace("{{KEY}}", state.key)
        return HTMLResponse(html.replace("{{LOCAL}}", "1" if state.local else "0"))

    @api.get("/static/{name}")
    def static(name: str):
        if name not in PAGE_FILES:
            raise HTTPException(404, "not found")
        return FileResponse(STATIC / name, media_type=PAGE_FILES[name])

    @api.get("/api/info")
    def info():
        return {
            "methods": methods(),
            "labels": LABEL_WORDS,
            "formats": FORMAT_WORDS,
            "format_names": FORMAT_NAMES,
            "looks": LOOK_WORDS,
            "folders": state.local,
            "limits": {"file_mb": state.limits.file_bytes / 2**20, "files": state.limits.files},
            "photo_suffixes": sorted(PHOTO_SUFFIXES),
            "unreadable": UNREADABLE,
            "skipped_names": sorted(_SKIP_NAMES),  # what a computer leaves in folders, never sent
        }

    @api.post("/api/uploads")
    def new_upload():
        return {"id": state.new_upload()}

    @api.get("/api/uploads/{upload_id}")
    def upload_info(upload_id: str):
        files = state.upload(upload_id).files()
        return {
            "id": upload_id,
            "photos": len(files),
            "bytes": sum(s for _, s in files),
            "names": [n for n, _ in files],
        }

    async def receive(request: Request, writer_of) -> int:
        """The request's body into a writer; its closing (a photo's decode check) off the event loop."""
        length = request.headers.get("content-length")
        w = writer_of(int(length) if length and length.isdigit() else None)
        w.__enter__()
        try:
            async for chunk in request.stream():
                w.write(chunk)
        except BaseException as e:
            w.__exit__(type(e), e, e.__traceback__)
            raise
        await run_in_threadpool(w.__exit__, None, None, None)
        return w.size

    @api.put("/api/uploads/{upload_id}/photos")
    async def put_photo(upload_id: str, name: str, request: Request):
        up = state.upload(upload_id)
        size = await receive(request, lambda n: up.receive(name, n))
        return {"name": name, "bytes": size}

    @api.delete("/api/uploads/{upload_id}/photos")
    def delete_photo(upload_id: str, name: str):
        state.upload(upload_id).remove(name)
        return upload_info(upload_id)

    @api.delete("/api/uploads/{upload_id}")
    def delete_upload(upload_id: str):
        return state.delete_upload(upload_id)

    @api.put("/api/uploads/{upload_id}/labels")
    async def put_labels(upload_id: str, request: Request):
        up = state.upload(upload_id)
        return {"bytes": await receive(request, up.receive_labels)}

    @api.put("/api/uploads/{upload_id}/zip")
    async def put_zip(upload_id: str, request: Request):
        up = state.upload(upload_id)
        archive = up.folder / f".incoming-{new_id()}.zip"
        try:
            await receive(
                request, lambda n: Receiver(archive, state.limits.total_bytes, lambda s: "the ZIP is too large")
            )
            return {"added": await run_in_threadpool(up.unpack, archive)}
        finally:
            archive.unlink(missing_ok=True)

    @api.post("/api/plan")
    def plan(req: dict):
        return state.plan(req)

    @api.post("/api/jobs")
    def start(req: dict):
        return state.describe(state.start(req))

    @api.get("/api/jobs")
    def jobs():
        return [state.describe(j) for j in state.jobs.all()]

    @api.get("/api/jobs/{job_id}")
    def job(job_id: str):
        return state.describe(state.jobs.get(job_id))

    @api.delete("/api/jobs/{job_id}")
    def delete_job(job_id: str):
        return state.delete_job(job_id)

    @api.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        return state.describe(state.jobs.cancel(job_id))

    @api.post("/api/jobs/{job_id}/resume")
    def resume(job_id: str):
        return state.describe(state.jobs.resume(job_id))

    @api.post("/api/jobs/{job_id}/apply")
    def rewrite(job_id: str, req: dict):
        return state.describe(state.rewrite(job_id, req))

    @api.post("/api/jobs/{job_id}/check")
    def check(job_id: str, req: dict):
        return state.describe(state.check(job_id, req))

    @api.get("/api/jobs/{job_id}/photos")
    def photos(job_id: str):
        return state.photos(job_id)

    @api.get("/api/jobs/{job_id}/preview/{index}/{kind}.png")
    def preview(job_id: str, index: int, kind: str):
        return FileResponse(state.preview(job_id, index, kind), media_type="image/png")

    @api.get("/api/jobs/{job_id}/protected.zip")
    def download(job_id: str):
        return FileResponse(state.archive(job_id), media_type="application/zip", filename="protected.zip")

    @api.get("/api/jobs/{job_id}/report")
    def report(job_id: str):
        return state.report(job_id)

    @api.get("/api/jobs/{job_id}/accuracy.png")
    def plot(job_id: str):
        state.report(job_id)
        return FileResponse(Path(state.jobs.get(job_id)["out"]) / "accuracy.png", media_type="image/png")

    @api.get("/api/jobs/{job_id}/log")
    def log(job_id: str):
        try:
            text = (state.jobs.folder(job_id) / "log.txt").read_text(errors="replace")
        except (OSError, KeyError):
            text = ""
        return Response(text[-20000:], media_type="text/plain")

    return api


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    work: str | Path | None = None,
    limits: Limits | None = None,
    ready=print,
) -> None:
    """Check the options, take the work folder, bind, print the address, serve until stopped."""
    import fcntl
    import socket

    import uvicorn

    from ..io import cache_root

    local = host in LOCAL_HOSTS
    token = token or os.environ.get("UNLEARNABLE_APP_TOKEN") or None
    if not local and not token:
        raise ValueError(
            f"--host {host} opens the page to other computers: give an access token with --token SECRET (or "
            "UNLEARNABLE_APP_TOKEN), or leave --host out to stay on 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise ValueError("--token must be at least 16 characters (e.g. the output of `openssl rand -hex 16`)")
    work = Path(work).expanduser() if work else cache_root() / "app"
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = open(work / ".app.lock", "w")  # noqa: SIM115 - held for the server's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ValueError(f"another `unlearnable app` is using {work}; stop it, or pass --work OTHER_FOLDER") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None
    sock.listen(64)
    state = App(work, local=local, token=token, limits=limits)
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{sock.getsockname()[1]}/?token={state.token}"
    ready(f"unlearnable app: open {address} in your browser (work folder {work}; Ctrl-C stops)")
    server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        state.jobs.close()
        lock.close()

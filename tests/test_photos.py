"""Folders of photos at full resolution: sizes, orientation, names, metadata, label layouts, check."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import sets
from PIL import Image, ImageCms

from unlearnable.cli import main
from unlearnable.data import DataError
from unlearnable.photos import SEPARATE_GROUPS, axis_weights, draw, grouping_words, kmeans, open_upright, scan

COPYRIGHT, ARTIST, ORIENTATION = 0x8298, 0x013B, 0x0112
SHORT_BAIT = sets(stages="[1,1,1]", images_per_epoch=32, batch_size=16)


def scene(w: int, h: int, k: int) -> np.ndarray:
    """A smooth picture with an asymmetric gradient, so a sideways copy is told apart."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [(x * 200 // w + 40 * k) % 256, (y * 255 // h) % 256, ((x * 3 + y) * 100 // (3 * w + h) + 70 * k) % 256], -1
    ).astype(np.uint8)


def exif(**tags) -> bytes:
    e = Image.Exif()
    for tag, value in tags.items():
        e[{"copyright": COPYRIGHT, "artist": ARTIST, "orientation": ORIENTATION}[tag]] = value
    return e.tobytes()


@pytest.fixture(scope="module")
def photographer(tmp_path_factory):
    """21 JPEGs in three class folders like a photographer's: 1080x1350, 1350x1080 and 3000x2000,
    EXIF copyright, an sRGB ICC profile on one, one portrait stored sideways (EXIF orientation 6)
    and one 50-megapixel photo."""
    root = tmp_path_factory.mktemp("photos") / "photos"
    sizes = [(1080, 1350), (1350, 1080), (3000, 2000)]
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for k, cls in enumerate(["landscapes", "portraits", "street"]):
        (root / cls).mkdir(parents=True)
        for j in range(6):
            w, h = sizes[(j + k) % 3]
            extra = {"icc_profile": icc} if (k, j) == (0, 0) else {}
            Image.fromarray(scene(w, h, k)).save(
                root / cls / f"IMG_{k}{j:03d}.jpg", quality=90, exif=exif(copyright="(c) A. Photographer"), **extra
            )
    Image.fromarray(scene(1350, 1080, 1)).save(
        root / "portraits" / "DSC_0001.JPG", quality=90, exif=exif(orientation=6, copyright="(c) rotated")
    )
    Image.fromarray(scene(600, 400, 2)).resize((8660, 5774)).save(root / "street" / "PANO_50MP.jpg", quality=85)
    Image.fromarray(scene(1080, 1350, 0)).save(root / "landscapes" / "IMG_9.jpg", quality=90)
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture(scope="module")
def protected(photographer, tmp_path_factory):
    # the strong look: these tests check geometry, names and metadata, and read a photo's
    # orientation from its change, which a short fit under the default look keeps at 0-1 levels on
    # these smooth scenes (the looks are tested in test_look.py)
    out = tmp_path_factory.mktemp("out") / "protected"
    assert (
        main(
            [
                "protect",
                "--data",
                str(photographer),
                "--method",
                "bait",
                "--out",
                str(out),
                "--quiet",
                "--look",
                "strong",
                *SHORT_BAIT,
            ]
        )
        == 0
    )
    return out


def test_every_photo_comes_back_upright_at_its_size_and_name_within_the_budget(photographer, protected):
    m = json.loads((protected / "manifest.json").read_text())
    inputs = sorted(p.relative_to(photographer).as_posix() for p in photographer.rglob("*.*") if p.suffix != ".txt")
    assert len(inputs) == 21 and sorted(m["sources"].values()) == inputs
    assert m["ignored_files"] == ["notes.txt"] and m["working_size"] == 64
    sizes = set()
    for name, rel in m["sources"].items():
        assert name == str(Path(rel).with_suffix(".png"))  # same name and folder, PNG
        original, _ = open_upright(photographer / rel, rel)
        with Image.open(protected / name) as out:
            assert out.format == "PNG" and out.getexif().get(ORIENTATION) is None
            pixels = np.asarray(out.convert("RGB"))
        assert pixels.shape == original.shape  # input's dimensions after orientation
        change = np.abs(pixels.astype(int) - original.astype(int)).max()
        assert 1 <= change <= 8  # upright (a sideways copy would differ far more) and within 8/255
        sizes.add(pixels.shape[:2])
    assert {(1350, 1080), (1080, 1350), (2000, 3000), (5774, 8660)} <= sizes
    rotated = m["photo_files"]["portraits/DSC_0001.png"]
    assert (rotated["width"], rotated["height"]) == (1080, 1350)
    assert main(["verify", str(protected)]) == 0


def test_metadata_is_carried_without_orientation_and_stripped_on_request(photographer, protected, tmp_path):
    with Image.open(protected / "landscapes/IMG_0000.png") as out:
        assert out.getexif().get(COPYRIGHT) == "(c) A. Photographer"
        assert out.info.get("icc_profile") == Image.open(photographer / "landscapes/IMG_0000.jpg").info["icc_profile"]
    with Image.open(protected / "portraits/DSC_0001.png") as out:
        assert out.getexif().get(COPYRIGHT) == "(c) rotated" and ORIENTATION not in out.getexif()
    small = tmp_path / "small"
    (small / "a").mkdir(parents=True)
    (small / "b").mkdir()
    for i, cls in enumerate("ab"):
        Image.fromarray(scene(90, 60, i)).save(small / cls / "x.jpg", exif=exif(copyright="(c) me"))
    out = tmp_path / "stripped"
    assert (
        main(["protect", "--data", str(small), "--method", "random", "--out", str(out), "--quiet", "--strip-metadata"])
        == 0
    )
    with Image.open(out / "a/x.png") as img:
        assert not img.getexif() and "icc_profile" not in img.info


def test_formats_jpeg_and_same(tmp_path):
    src = tmp_path / "in"
    for cls in "ab":
        (src / cls).mkdir(parents=True)
        Image.fromarray(scene(120, 80, 0)).save(src / cls / "p.jpg", quality=80)
        Image.fromarray(scene(80, 120, 1)).save(src / cls / "q.png")
    for fmt, want in (("jpeg", {"p.jpg": "JPEG", "q.jpg": "JPEG"}), ("same", {"p.jpg": "JPEG", "q.png": "PNG"})):
        out = tmp_path / fmt
        assert (
            main(["protect", "--data", str(src), "--method", "random", "--out", str(out), "--quiet", "--format", fmt])
            == 0
        )
        for name, kind in want.items():
            with Image.open(out / "a" / name) as img:
                assert (
                    img.format == kind
                    and img.size
                    == Image.open(src / "a" / (Path(name).stem + (".jpg" if name.startswith("p") else ".png"))).size
                )
        m = json.loads((out / "manifest.json").read_text())
        assert all(e["max_change_0_255"] <= 8 for e in m["photo_files"].values())
        assert main(["verify", str(out)]) == 0


def test_two_photos_that_would_meet_are_renamed_loudly(tmp_path, capsys):
    src = tmp_path / "in"
    for cls in "ab":
        (src / cls).mkdir(parents=True)
        Image.fromarray(scene(40, 30, 0)).save(src / cls / "a.jpg")
        Image.fromarray(scene(40, 30, 1)).save(src / cls / "a.png")
    out = tmp_path / "out"
    assert main(["protect", "--data", str(src), "--method", "random", "--out", str(out)]) == 0
    assert "a.jpg is written as a/a.jpg.png" in capsys.readouterr().err.replace("a/a.jpg is", "a.jpg is")
    assert (out / "a/a.png").is_file() and (out / "a/a.jpg.png").is_file()


def test_a_photo_never_takes_the_name_of_the_outputs_own_files(tmp_path, capsys):
    """Photos come back where they lay (a flat folder: at the top of the output, beside the tool's
    own files); one called preview.png is numbered, said, and verify passes."""
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(["preview.png", "Perturbation.safetensors.png", "IMG_1.jpg", "IMG_2.jpg"]):
        Image.fromarray(scene(40, 30, i)).save(src / name)
    out = tmp_path / "out"
    assert main(["protect", "--data", str(src), "--labels", "clusters:2", "--method", "random", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    m = json.loads((out / "manifest.json").read_text())
    assert sorted(m["sources"].values()) == sorted(p.name for p in src.iterdir())
    renamed = next(n for n, rel in m["sources"].items() if rel == "preview.png")
    assert renamed.startswith("preview.") and renamed.endswith(".png") and renamed != "preview.png"
    assert f"preview.png is written as {renamed} (preview.png is taken by this tool's own file)" in err
    assert m["sources"]["IMG_1.png"] == "IMG_1.jpg"
    assert m["sources"]["Perturbation.safetensors.png"] == "Perturbation.safetensors.png"  # not the same name
    with Image.open(out / "preview.png") as own:  # the tool's preview, not the photo
        assert own.size != (40, 30)
    assert main(["verify", str(out)]) == 0


def make_tree(root: Path, files: list[str]) -> Path:
    for i, f in enumerate(files):
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene(48, 40, i % 3)).save(root / f)
    return root


def test_flat_nested_and_csv_layouts(tmp_path):
    flat = make_tree(tmp_path / "flat", [f"IMG_{i}.jpg" for i in range(6)])
    with pytest.raises(DataError, match="no class folders.*--labels clusters"):
        scan(flat)
    nested = make_tree(tmp_path / "nested", ["2023/summer/a.jpg", "2023/winter/b.jpg", "2024/summer/c.jpg"])
    with pytest.raises(DataError, match=r"--labels top \(here '2023'\) or --labels leaf \(here '2023/summer'\)"):
        scan(nested)
    assert scan(nested, "top").classes == ["2023", "2024"]
    leaf = scan(nested, "leaf")
    assert leaf.classes == ["2023/summer", "2023/winter", "2024/summer"] and leaf.labels.tolist() == [0, 1, 2]
    table = tmp_path / "labels.csv"
    table.write_text("file,label\n" + "\n".join(f"IMG_{i}.jpg,{'cat' if i < 3 else 'dog'}" for i in range(6)))
    by_csv = scan(flat, str(table))
    assert by_csv.classes == ["cat", "dog"] and by_csv.labels.tolist() == [0, 0, 0, 1, 1, 1]
    table.write_text("IMG_0.jpg,cat\n")
    with pytest.raises(DataError, match="no label for 5 photo"):
        scan(flat, str(table))
    table.write_text("\n".join(f"IMG_{i}.jpg,x" for i in range(6)) + "\nmissing.jpg,y\n")
    with pytest.raises(DataError, match="missing.jpg, which is not a photo"):
        scan(flat, str(table))
    mixed = make_tree(tmp_path / "mixed", ["a/1.jpg", "loose.jpg"])
    with pytest.raises(DataError, match="outside any class folder"):
        scan(mixed)
    (flat / "raw.CR2").write_bytes(b"raw")
    with pytest.raises(DataError, match="RAW file"):
        scan(flat, "clusters")


def test_a_wrapper_folder_is_looked_through_and_a_csv_may_name_its_columns(tmp_path):
    # a ZIP made by Finder or Windows holds the chosen folder itself: portfolio/anna/..., portfolio/ben/...
    zipped = make_tree(tmp_path / "upload", ["portfolio/anna/1.jpg", "portfolio/anna/2.jpg", "portfolio/ben/3.jpg"])
    (zipped / "portfolio" / ".DS_Store").write_bytes(b"\0")
    c = scan(zipped)
    assert c.classes == ["anna", "ben"] and [p.rel for p in c.photos] == ["anna/1.jpg", "anna/2.jpg", "ben/3.jpg"]
    assert scan(zipped, "one").classes == ["portfolio"]  # one subject: named after the folder that holds it
    deeper = make_tree(tmp_path / "deeper", ["export/portfolio/anna/1.jpg", "export/portfolio/ben/2.jpg"])
    assert scan(deeper).classes == ["anna", "ben"]
    with_split = make_tree(tmp_path / "split", ["set/train/a/1.jpg", "set/train/b/2.jpg", "set/test/a/3.jpg"])
    assert [p.rel for p in scan(with_split).photos] == ["a/1.jpg", "b/2.jpg"]
    # a photo beside the one folder: that folder is a class, not a wrapper
    beside = make_tree(tmp_path / "beside", ["portfolio/anna/1.jpg", "portfolio/ben/2.jpg", "stray.jpg"])
    with pytest.raises(DataError, match="outside any class folder"):
        scan(beside)
    single = make_tree(tmp_path / "single", ["anna/1.jpg", "anna/2.jpg"])  # one class folder, no wrapper
    assert scan(single).classes == ["anna"]
    table = tmp_path / "groups.csv"
    for header in ("file,group", "Photo,Subject", "filename,label", "\ufeffFile,Class"):
        table.write_text(f"{header}\nportfolio/anna/1.jpg,a\nanna/2.jpg,a\nben/3.jpg,b\n")
        assert scan(zipped, str(table)).labels.tolist() == [0, 0, 1], header
    named = make_tree(tmp_path / "named", ["x.jpg", "name.jpg"])
    table.write_text("name.jpg,group\nx.jpg,other\n")  # a first row that is a photo is a row, not a header
    assert scan(named, str(table)).classes == ["group", "other"]
    table.write_text("file,colour\nx.jpg,a\nname.jpg,b\n")  # not a column word: a row, refused by name
    with pytest.raises(DataError, match="lists file, which is not a photo"):
        scan(named, str(table))


def test_clusters_are_reproducible_and_follow_the_pictures(tmp_path):
    files = [f"{'red' if i % 2 else 'blue'}_{i}.png" for i in range(8)]
    root = tmp_path / "flat"
    root.mkdir()
    for i, f in enumerate(files):
        arr = np.zeros((64, 80, 3), np.uint8)
        arr[..., 0 if i % 2 else 2] = 200 + i
        Image.fromarray(arr).save(root / f)
    a, b = scan(root, "clusters:2", seed=3, progress=False), scan(root, "clusters:2", seed=3, progress=False)
    assert a.classes == ["group01", "group02"] and torch.equal(a.labels, b.labels)
    by_colour = {p.rel.split("_")[0]: set() for p in a.photos}
    for p, y in zip(a.photos, a.labels.tolist()):
        by_colour[p.rel.split("_")[0]].add(y)
    assert all(len(v) == 1 for v in by_colour.values()) and len({min(v) for v in by_colour.values()}) == 2
    words = grouping_words(a)  # which photo went where, said; clear groups draw no warning
    assert words[0] == "group01 (4): blue_0.png, blue_2.png, blue_4.png, blue_6.png" and len(words) == 2
    assert a.separation >= SEPARATE_GROUPS
    one = tmp_path / "one"  # one subject, photographed eight times: no groups a trainer would make
    one.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, 10, 3))
    for i in range(8):
        arr = np.kron(base, np.ones((8, 8, 1))) + rng.integers(-12, 13, (64, 80, 3))
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(one / f"me_{i}.png")
    c = scan(one, "clusters:2", seed=0, progress=False)
    assert c.separation < SEPARATE_GROUPS
    assert any(
        w.startswith("warning: these photos do not fall into clearly separate groups") and "--labels one" in w
        for w in grouping_words(c)
    ), grouping_words(c)
    assert (
        scan(one, "one", progress=False).separation is None and grouping_words(scan(one, "one", progress=False)) == []
    )
    x = torch.randn(50, 4)
    assert torch.equal(kmeans(x, 3, seed=0), kmeans(x, 3, seed=0))


def test_drawing_is_periodic_centred_and_within_budget():
    w = axis_weights(10, 4, 8)
    assert torch.allclose(w.sum(1), torch.ones(10)) and torch.equal(axis_weights(5, 5, 5), torch.eye(5))
    delta = (torch.rand(3, 4, 4) * 2 - 1) * 8 / 255
    pixels = np.full((300, 500, 3), 128, np.uint8)
    out, top = draw(pixels, delta, 8 / 255)
    change = out.astype(int) - 128
    assert out.shape == pixels.shape and np.abs(change).max() == top <= 8
    # the central square holds the pattern at the scale the method saw: a 75 px cell per working pixel
    square = change[:, 100:400]
    cell = square[75 * 1 + 37, 75 * 2 + 37]  # the centre of working pixel (1, 2)
    assert np.abs(cell - np.round(delta[:, 1, 2].numpy() * 255)).max() <= 1
    # continued periodically on the long side
    assert np.array_equal(change[:, 100 - 75 * 1 : 100], change[:, 400 - 75 : 400])
    same, _ = draw(np.full((4, 4, 3), 5, np.uint8), delta, 8 / 255)
    assert np.array_equal(same.astype(int) - 5, np.clip(np.round(delta.numpy() * 255), -5, 8).transpose(1, 2, 0))


def test_check_reports_the_same_numbers_as_evaluate(tmp_path):
    src = tmp_path / "photos"
    for k, cls in enumerate("abc"):
        (src / "train" / cls).mkdir(parents=True)
        (src / "test" / cls).mkdir(parents=True)
        for j in range(6):
            Image.fromarray(scene(90 + 10 * j, 70, k)).save(src / "train" / cls / f"{j}.jpg")
        for j in range(2):
            Image.fromarray(scene(70, 90, k)).save(src / "test" / cls / f"{j}.jpg")
    out = tmp_path / "prot"
    assert main(["protect", "--data", str(src), "--method", "random", "--out", str(out), "--quiet"]) == 0
    rep = tmp_path / "report"
    args = ["check", str(out), "--data", str(src), "--out", str(rep), "--epochs", "1", "--quiet", "--init", "scratch"]
    assert main([*args, "--steps", "jpeg75,half"]) == 0
    report = json.loads((rep / "report.json").read_text())
    assert set(report["rows"]) == {"clean", "protected", "jpeg75", "half"}
    assert report["rounds"] is None and report["n_test"] == 6  # the given test photos, not held-out ones
    assert (rep / "report.md").read_text().splitlines()[2] == f"**{report['answer']['line']}**"
    assert (rep / "accuracy.png").is_file()
    ev = tmp_path / "ev"
    assert (
        main(
            [
                "evaluate",
                "--train",
                str(out),
                "--data",
                str(src),
                "--init",
                "scratch",
                "--epochs",
                "1",
                "--out",
                str(ev),
                "--quiet",
            ]
        )
        == 0
    )
    record = json.loads((ev / "record.json").read_text())
    assert record["final_test_acc"] == report["rows"]["protected"]["scratch"]["final"]
    held = tmp_path / "held"
    assert (
        main(
            [
                "check",
                str(out),
                "--out",
                str(held),
                "--epochs",
                "1",
                "--quiet",
                "--init",
                "scratch",
                "--folds",
                "4",
            ]
        )
        == 0
    )
    report = json.loads((held / "report.json").read_text())
    assert report["n_test"] == 18 and report["rounds"] == 4  # every photo of the three classes held out once
    assert set(report["rows"]) == {"clean", "protected"} and "of the test images" not in report["answer"]["line"]


def test_the_plan_line_says_what_was_found_and_what_it_costs(tmp_path, monkeypatch):
    from unlearnable.attacks import create_attack
    from unlearnable.plan import describe_plan, estimate

    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))  # no earlier run timed here
    root = make_tree(tmp_path / "p", [f"{c}/{i}.jpg" for c in ("cats", "dogs") for i in range(3)])
    (root / "notes.txt").write_text("x")
    photos = scan(root)
    attack = create_attack("bait", preset="cpu", progress=False)
    line = describe_plan(photos, attack, 48, "bait")
    assert line.startswith("6 photos (largest 0.0 MP) in 2 classes by folders (cats 3, dogs 3); 1 other files")
    assert "working size 48 px; bait (cpu preset); about" in line and "peak memory about" in line
    est = estimate(photos, attack, 48)
    assert est["fit"] > 0 and est["memory"] > 0
    assert estimate(photos, create_attack("random", progress=False), 48)["fit"] is None  # no count of its work
    assert est["total"] == pytest.approx(est["start"] + est["read"] + est["fit"] + est["write"])
    assert est["runs"] == 0 and "not yet timed on this computer" in line
    assert "the copies take about" in line and "(the originals " in line
    same = estimate(photos, attack, 48, fmt="same")  # JPEGs stay JPEGs at their own size
    assert same["bytes"] == same["original_bytes"] == sum((root / p.rel).stat().st_size for p in photos.photos)


def test_the_plan_says_before_work_what_the_copies_would_publish_or_lose(tmp_path):
    """A GPS location the copies would publish (unless metadata is stripped), and transparency they
    do not keep, are said by the plan before anything is written."""
    from unlearnable.protect import photo_plan

    root = make_tree(tmp_path / "p", [f"{c}/{i}.jpg" for c in ("cats", "dogs") for i in range(3)])
    exif = Image.Exif()
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 24.0)  # GPSLatitude
    exif.get_ifd(0x8825)[1] = "N"
    Image.fromarray(scene(48, 40, 1)).save(root / "cats" / "0.jpg", exif=exif.tobytes())
    rgba = np.dstack([scene(48, 40, 2), np.full((40, 48), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "dogs" / "clear.png")
    plan = photo_plan(root, method="random", fmt="jpeg")
    assert plan["gps_photos"] == 1
    assert [n.split(" ")[0:4] for n in plan["notes"]] == [["1", "of", "the", "7"], ["1", "photo", "has", "transparent"]]
    assert "dogs/clear.png" in plan["notes"][1] and "flattened onto white" in plan["notes"][1]
    assert len(photo_plan(root, method="random", strip_metadata=True, fmt="jpeg")["notes"]) == 1  # no location
    for fmt in ("png", "webp", "same"):  # these keep the transparency: nothing to say of it
        assert [n.split(" ")[0:3] for n in photo_plan(root, method="random", fmt=fmt)["notes"]] == [["1", "of", "the"]]


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparency_is_kept_and_the_change_sits_on_the_photos_own_colours(tmp_path, fmt):
    """A transparent photo comes back with its own alpha channel, byte for byte; its colours carry
    the change (within the budget of its own colours, also where it is see-through), a grey one
    stays grey with its alpha (LA); verify redraws it exactly. WebP is lossless too."""
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    rng = np.random.default_rng(0)
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))  # clear on the left, opaque on the right
    rgba = np.dstack([scene(64, 48, 3), alpha])
    Image.fromarray(rgba, "RGBA").save(root / "a" / "logo.png")
    grey = np.dstack([scene(64, 48, 4)[..., 0], alpha])
    Image.fromarray(grey, "LA").save(root / "b" / "grey.png")
    Image.fromarray(scene(64, 48, 5)).save(root / "a" / "plain.jpg")
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(root / "b" / "noise.png")
    out = tmp_path / "out"
    assert (
        main(["protect", "--data", str(root), "--method", "random", "--format", fmt, "--out", str(out), "--quiet"]) == 0
    )
    suffix = "." + fmt
    with Image.open(out / "a" / f"logo{suffix}") as img:
        assert img.format == fmt.upper() and img.mode == "RGBA"
        kept = np.asarray(img)
    assert np.array_equal(kept[..., 3], alpha)
    change = np.abs(kept[..., :3].astype(int) - rgba[..., :3].astype(int))
    assert 1 <= change.max() <= 8 and change[:, :8].max() >= 1  # changed, within budget, also where clear
    with Image.open(out / "b" / f"grey{suffix}") as img:
        assert img.mode in ("LA", "RGBA")  # WebP stores grey as colour: three equal channels
        back = np.asarray(img.convert("LA"))
        if img.mode == "RGBA":
            assert np.ptp(np.asarray(img)[..., :3].astype(int), axis=2).max() == 0
    assert np.array_equal(back[..., 1], alpha) and np.abs(back[..., 0].astype(int) - grey[..., 0]).max() <= 8
    with Image.open(out / "a" / f"plain{suffix}") as img:
        assert img.mode == "RGB"  # no transparency where the original had none
    assert main(["verify", str(out)]) == 0


def test_webp_refuses_a_photo_larger_than_it_holds_before_work(tmp_path, capsys):
    root = make_tree(tmp_path / "p", ["a/1.jpg", "b/2.jpg"])
    Image.new("RGB", (16400, 8)).save(root / "a" / "wide.png")
    out = tmp_path / "out"
    assert main(["protect", "--data", str(root), "--method", "random", "--format", "webp", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "a/wide.png is 16400 x 8 pixels" in err and "--format png" in err and not out.exists()


def test_the_estimate_is_calibrated_on_this_computers_finished_runs(tmp_path, monkeypatch):
    """A finished protection records what it measured (the fit against its timed pass, the rates of
    reading and writing, the start); the next estimate of the same method here uses their medians,
    and a cache that cannot be read is no calibration, not an error."""
    from unlearnable.attacks import create_attack
    from unlearnable.plan import Timings, calibrate, estimate

    monkeypatch.setattr("unlearnable.distributed.busy_cores", lambda seconds=0.25: 0.0)  # idle cores: no scaling
    root = make_tree(tmp_path / "p", [f"{c}/{i}.jpg" for c in ("cats", "dogs") for i in range(3)])
    photos = scan(root)
    attack = create_attack("bait", preset="cpu", progress=False)
    timings = Timings(attack, tmp_path / "timings.json")
    est = estimate(photos, attack, 32, timings=timings)
    megapixels = sum(p.width * p.height for p in photos.photos) / 1e6
    for factor in (2.0, 3.0, 2.5):  # three runs: the median factor is 2.5
        calibrate(
            est, timings, photos, start=7.0, read=megapixels, fit=factor * est["passes"] * est["per_pass"], write=0
        )
    again = estimate(photos, attack, 32, timings=timings)
    assert again["runs"] == 3 and again["start"] == 7.0
    assert again["read"] == pytest.approx(megapixels, rel=1e-3) and again["write"] == 0
    timed = again["passes"] * again["per_pass"]
    assert again["fit"] == pytest.approx(2.5 * timed, rel=1e-3)
    other = Timings(create_attack("em", preset="cpu", progress=False), tmp_path / "timings.json")
    assert other.medians() == {}  # another method is not calibrated by bait's runs
    (tmp_path / "timings.json").write_text("{not json")
    assert Timings(attack, tmp_path / "timings.json").medians() == {}
    # a whole protect run records itself in the cache
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["protect", "--data", str(root), "--out", str(out), "--quiet", *SHORT_BAIT]) == 0
    cache = json.loads((tmp_path / "cache" / "timings.json").read_text())
    ((key, runs),) = cache.items()
    assert key.startswith("bait:") and set(runs) == {
        "fit_factor",
        "read_per_mp",
        "write_per_mp",
        "start",
        "png_bytes_per_mp",
        "memory_factor",
    }
    written = sum(p.stat().st_size for p in out.rglob("*.png") if p.name != "preview.png")
    assert runs["png_bytes_per_mp"] == [pytest.approx(written / megapixels, rel=1e-3)]
    calibrated = estimate(photos, attack, 32)  # the size the copies take, as this computer's run wrote them
    assert calibrated["bytes"] == pytest.approx(written, rel=1e-3)
    assert calibrated["original_bytes"] == sum((root / p.rel).stat().st_size for p in photos.photos)
    # the peak memory as this process measured it (a test process holds more than a run: > 1x the model)
    (factor,) = runs["memory_factor"]
    assert factor > 0.5 and calibrated["memory"] == pytest.approx(calibrated["memory_model"] * factor, rel=1e-3)
    webp = tmp_path / "webp"  # each format learns its own size, from the runs that wrote it
    assert main(["protect", "--data", str(root), "--out", str(webp), "--format", "webp", "--quiet", *SHORT_BAIT]) == 0
    runs = json.loads((tmp_path / "cache" / "timings.json").read_text())[key]
    written = sum(p.stat().st_size for p in webp.rglob("*.webp"))
    assert runs["webp_bytes_per_mp"] == [pytest.approx(written / megapixels, rel=1e-3)]
    assert len(runs["png_bytes_per_mp"]) == 1 and len(runs["fit_factor"]) == 2
    assert estimate(photos, attack, 32, fmt="webp")["bytes"] == pytest.approx(written, rel=1e-3)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_the_preview_crops_are_those_of_the_original_and_of_the_file_written(tmp_path, fmt):
    """render's 100% crops come from the pixels it holds (no second decoding): they must be the
    smoothest area of the original as seen and the same area of the file as a viewer decodes it,
    transparent photos (seen over white) and JPEG's own error included."""
    from unlearnable.data.sources import rgb_array
    from unlearnable.look import get_look
    from unlearnable.photos import open_upright, render
    from unlearnable.visibility import crop, smoothest_box

    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    alpha = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (60, 1))
    Image.fromarray(np.dstack([scene(80, 60, 1), alpha]), "RGBA").save(root / "a" / "clear.png")
    Image.fromarray(scene(80, 60, 2)).save(root / "a" / "plain.jpg", quality=95)
    photos = scan(root, "one")
    delta = torch.full((3, 16, 16), 8 / 255) * torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0)).sign()
    for i, p in enumerate(photos.photos):
        drawn = render(photos, i, delta, 8 / 255, fmt, 0, False, get_look("invisible"), crop_side=24)
        original = open_upright(root / p.rel, p.rel)[0]
        box = smoothest_box(original, 24)
        with Image.open(io.BytesIO(drawn.data)) as img:
            written = rgb_array(img)
        assert np.array_equal(drawn.crops[0], crop(original, box)), p.rel
        assert np.array_equal(drawn.crops[1], crop(written, box)), p.rel
        assert render(photos, i, delta, 8 / 255, fmt, 0, False, get_look("invisible")).crops is None

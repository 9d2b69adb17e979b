"""`unlearnable apply`: a protection written again from its saved perturbation, without a fit."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unlearnable.apply import apply
from unlearnable.cli import main
from unlearnable.photos import open_upright
from unlearnable.verify import verify_folder


def picture(w: int, h: int, k: int) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 3 + 40 * k) % 256, (y * 2 + 17 * k) % 256, ((x + y) * 5 + 90 * k) % 256], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def protected(tmp_path_factory):
    """Six JPEGs in two groups, protected (class-wise random noise: quick, every pixel changed) as PNG."""
    base = tmp_path_factory.mktemp("apply")
    photos = base / "photos"
    for k, group in enumerate(["anna", "ben"]):
        (photos / group).mkdir(parents=True)
        for j, (w, h) in enumerate([(96, 72), (64, 80), (120, 90)]):
            picture(w, h, 2 * k + j).save(photos / group / f"IMG_{k}{j}.jpg", quality=92)
    out = base / "protected"
    args = ["protect", "--data", str(photos), "--out", str(out), "--method", "random", "--look", "strong", "--quiet"]
    assert main(args) == 0
    return photos, out


def ok(folder: Path) -> None:
    results = verify_folder(folder)
    assert all(status == "ok" for _, status, _ in results), results


def test_another_format_without_a_fit_and_verified(protected, tmp_path, capsys):
    photos, out = protected
    before = digests(photos), digests(out)
    again = tmp_path / "again"
    assert main(["apply", str(out), "--out", str(again), "--quiet"]) == 0
    assert "nothing learned again" in capsys.readouterr().out
    first, second = json.loads((out / "manifest.json").read_text()), json.loads((again / "manifest.json").read_text())
    # the same format: the very files protect wrote, from the very perturbation
    assert second["files"] == first["files"] and second["perturbation_sha256"] == first["perturbation_sha256"]
    assert second["applied_from"]["perturbation_sha256"] == first["perturbation_sha256"]
    assert second["fit_seconds"] == 0.0 and second["method"] == first["method"] and second["look"] == first["look"]
    ok(again)
    jpeg = tmp_path / "jpeg"
    manifest = apply(out, jpeg, fmt="jpeg", quality=90, strip_metadata=True, progress=False)
    assert sorted(manifest["files"]) == sorted(n.replace(".png", ".jpg") for n in first["files"])
    assert manifest["format"] == "jpeg" and manifest["quality"] == 90 and manifest["strip_metadata"] is True
    ok(jpeg)
    for name, entry in manifest["photo_files"].items():
        original = open_upright(photos / entry["source"], entry["source"])[0]
        written = np.asarray(Image.open(jpeg / name).convert("RGB"))
        assert written.shape == original.shape
        assert entry["max_change_0_255"] <= 8
    assert (digests(photos), digests(out)) == before  # the originals and the protected folder were only read


def test_new_photos_of_a_protected_group_take_its_pattern(protected, tmp_path):
    photos, out = protected
    later = tmp_path / "later"
    (later / "ben").mkdir(parents=True)
    picture(100, 70, 7).save(later / "ben" / "new.jpg", quality=92)
    # a photo protected before, sent again: the very same file comes back
    shutil.copyfile(photos / "ben" / "IMG_10.jpg", later / "ben" / "IMG_10.jpg")
    added = tmp_path / "added"
    manifest = apply(out, added, data=later, progress=False)
    assert manifest["applied_from"]["new_photos"] is True and set(manifest["classes"]) == {"anna", "ben"}
    assert {e["label"] for e in manifest["photo_files"].values()} == {"ben"}
    ok(added)
    old = json.loads((out / "manifest.json").read_text())
    same = next(n for n, e in old["photo_files"].items() if e["source"] == "ben/IMG_10.jpg")
    assert (added / same).read_bytes() == (out / same).read_bytes()
    # a group the protection has no pattern for is refused before anything is written
    (later / "carl").mkdir()
    picture(80, 80, 9).save(later / "carl" / "x.jpg")
    with pytest.raises(ValueError, match="'carl' has no pattern in this protection"):
        apply(out, tmp_path / "refused", data=later, progress=False)
    assert not (tmp_path / "refused").exists()


def test_what_cannot_be_applied_is_refused_with_its_reason(protected, tmp_path):
    photos, out = protected
    with pytest.raises(ValueError, match="not a folder written by `unlearnable protect`"):
        apply(photos, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="exclude each other"):
        apply(out, tmp_path / "x", data=photos, originals=photos, progress=False)
    with pytest.raises(ValueError, match="is the input"):
        apply(out, out, progress=False)
    first = apply(out, tmp_path / "v", progress=False)
    with pytest.raises(FileExistsError, match="already exists"):
        apply(out, tmp_path / "v", progress=False)
    assert apply(out, tmp_path / "v", fmt="jpeg", force=True, progress=False)["format"] == "jpeg"  # its own output
    assert first["format"] == "png"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("someone's")
    with pytest.raises(ValueError, match="--force replaces only"):
        apply(out, tmp_path / "mine", force=True, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "someone's"
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    data = bytearray((tampered / "perturbation.safetensors").read_bytes())
    data[-1] ^= 1
    (tampered / "perturbation.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is not the perturbation its manifest records"):
        apply(tampered, tmp_path / "y", progress=False)
    samplewise = tmp_path / "samplewise"
    cmd = ["protect", "--data", str(photos), "--out", str(samplewise), "--method", "random", "--quiet"]
    assert main([*cmd, "--set", "kind=samplewise"]) == 0
    with pytest.raises(ValueError, match="sample-wise"):
        apply(samplewise, tmp_path / "z", data=photos, progress=False)
    with pytest.raises(SystemExit) as exit_:  # argparse refuses it, before any work
        main(["apply", str(out), "--out", str(tmp_path / "w"), "--format", "gif"])
    assert exit_.value.code == 2 and not (tmp_path / "w").exists()

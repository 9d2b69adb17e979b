"""Tests for unlearnable.data: datasets, sources (ImageFolder, tarball, official CIFAR-10), cache."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import py2_pickle
from PIL import Image

from unlearnable.data import (
    CIFAR10_CLASSES,
    DataError,
    ImageDataset,
    balanced_subset,
    download_cifar10,
    load_dataset,
    sources,
)
from unlearnable.data import cache as cache_mod
from unlearnable.data.sources import resolve_source

SIZE = 8


pytestmark = pytest.mark.usefixtures("isolated_data")


def _rgb(seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def _make_tree(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """An ImageFolder of 3 classes with assorted modes; returns the expected RGB array per file."""
    expect: dict[str, np.ndarray] = {}
    # cat: plain RGB PNGs plus one JPEG (lossy, not compared exactly)
    for i in range(2):
        a = _rgb(seed + i)
        _save(Image.fromarray(a), root / "cat" / f"{i}.png")
        expect[f"cat/{i}.png"] = a
    _save(Image.fromarray(_rgb(seed + 9)), root / "cat" / "2.jpg", quality=95)
    expect["cat/2.jpg"] = None
    # dog: grey (L), palette (P), RGBA with one transparent pixel
    grey = np.random.default_rng(seed + 2).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    _save(Image.fromarray(grey, "L"), root / "dog" / "a_grey.png")
    expect["dog/a_grey.png"] = np.repeat(grey[:, :, None], 3, axis=2)
    pal = Image.fromarray(_rgb(seed + 3)).quantize(colors=16)
    _save(pal, root / "dog" / "b_pal.png")
    expect["dog/b_pal.png"] = np.asarray(pal.convert("RGB"))
    rgba = np.concatenate([_rgb(seed + 4), np.full((SIZE, SIZE, 1), 255, np.uint8)], axis=2)
    rgba[0, 0, 3] = 0
    _save(Image.fromarray(rgba, "RGBA"), root / "dog" / "c_rgba.png")
    want = rgba[..., :3].copy()
    want[0, 0] = 255  # composited on white
    expect["dog/c_rgba.png"] = want
    # emu: 16-bit grey and an RGB PNG; a hidden file that must be skipped
    g16 = (np.arange(SIZE * SIZE, dtype=np.uint16).reshape(SIZE, SIZE) * 1000).astype(np.uint16)
    g16[0, 0], g16[0, 1] = 65535, 257 * 100
    _save(Image.fromarray(g16), root / "emu" / "a16.png")
    g8 = np.round(g16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    expect["emu/a16.png"] = np.repeat(g8[:, :, None], 3, axis=2)
    a = _rgb(seed + 5)
    _save(Image.fromarray(a), root / "emu" / "b.png")
    expect["emu/b.png"] = a
    (root / "emu" / ".DS_Store").write_bytes(b"\x00junk")
    (root / "README.txt").write_text("loose files in the root are ignored")
    return expect


def _check_tree(ds: ImageDataset, expect: dict[str, np.ndarray]) -> None:
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.images.shape == (len(expect), 3, SIZE, SIZE) and ds.images.is_contiguous()
    assert ds.classes == ["cat", "dog", "emu"]
    assert ds.files == sorted(expect)
    assert ds.labels.tolist() == [ds.classes.index(f.split("/")[0]) for f in ds.files]
    for i, f in enumerate(ds.files):
        got = ds.images[i].permute(1, 2, 0).numpy()
        if expect[f] is not None:
            np.testing.assert_array_equal(got, expect[f], err_msg=f)


def _tar(path: Path, root: Path, arcroot: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for p in sorted(root.rglob("*")):
            tf.add(p, arcname=f"{arcroot}{p.relative_to(root).as_posix()}", recursive=False)
    return path


# ---------------------------------------------------------------- official CIFAR-10 python format

PER_BATCH = 4


def _cifar_batches(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {
        "batches.meta": py2_pickle(
            {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}
        )
    }
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        data = rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8)
        labels = [(b * PER_BATCH + j) % 10 for j in range(PER_BATCH)]
        if name == "data_batch_1":
            # image 0: pixel (row 2, col 3) has R=11, G=22, B=33 (planes of 1024, row-major)
            data[0, 0 * 1024 + 2 * 32 + 3] = 11
            data[0, 1 * 1024 + 2 * 32 + 3] = 22
            data[0, 2 * 1024 + 2 * 32 + 3] = 33
        out[name] = py2_pickle(
            {
                b"batch_label": f"batch {name}".encode(),
                b"labels": labels,
                b"data": data,
                b"filenames": [f"{name}_{j}.png".encode() for j in range(PER_BATCH)],
            }
        )
    return out


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("cifar-10-batches-py")
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        for name, blob in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def cifar_archive(tmp_path) -> Path:
    (tmp_path / "src").mkdir()
    return _write_tar(tmp_path / "src" / "cifar-10-python.tar.gz", _cifar_batches())


def _check_cifar(tr: ImageDataset, te: ImageDataset) -> None:
    assert tr.images.shape == (5 * PER_BATCH, 3, 32, 32) and te.images.shape == (PER_BATCH, 3, 32, 32)
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert tr.classes == list(CIFAR10_CLASSES) == te.classes
    assert tr.labels.tolist() == [i % 10 for i in range(5 * PER_BATCH)]
    assert tr.images[0, :, 2, 3].tolist() == [11, 22, 33]
    assert tr.files[0] == "airplane/data_batch_1_0.png"


# ---------------------------------------------------------------- ImageDataset


def _toy(n_per=(5, 3, 7), size=4) -> ImageDataset:
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(n_per)])
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    labels = labels[perm]
    images = torch.arange(len(labels), dtype=torch.uint8)[:, None, None, None].expand(-1, 3, size, size)
    return ImageDataset(images.clone(), labels, ["a", "b", "c"], [f"f{i}.png" for i in range(len(labels))])


def test_dataset_validation_and_basics():
    ds = _toy()
    assert len(ds) == 15 and ds.num_classes == 3 and ds.image_size == 4
    assert ds.class_counts().tolist() == [5, 3, 7]
    sub = ds.subset([3, 1])
    assert sub.files == ["f3.png", "f1.png"] and sub.images[:, 0, 0, 0].tolist() == [3, 1]
    assert sub.classes == ds.classes and sub.labels.tolist() == [ds.labels[3].item(), ds.labels[1].item()]
    assert len(ds.subset(torch.tensor([], dtype=torch.long))) == 0
    assert len(ds.subset(ds.labels == 0)) == 5
    nc = ImageDataset(
        torch.zeros(2, 4, 4, 3, dtype=torch.uint8).permute(0, 3, 1, 2), torch.zeros(2, dtype=torch.long), ["x"]
    )
    assert nc.images.is_contiguous()
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long), ["x"])
    with pytest.raises(ValueError, match="shape"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["x"])
    with pytest.raises(ValueError, match="int64"):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32), ["x"])
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ["x"])
    with pytest.raises(ValueError, match="out of range"):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]), ["x"])
    with pytest.raises(ValueError, match="file names"):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["x"], ["a"])


def test_balanced_subset():
    ds = _toy()
    a, b = balanced_subset(ds, 3, seed=0), balanced_subset(ds, 3, seed=0)
    assert a.files == b.files and torch.equal(a.images, b.images)
    assert a.class_counts().tolist() == [3, 3, 3]
    idx = [int(f[1:-4]) for f in a.files]
    assert idx == sorted(idx)
    assert all(ds.labels[i] == y for i, y in zip(idx, a.labels.tolist()))
    others = {tuple(balanced_subset(ds, 3, seed=s).files) for s in range(1, 6)}
    assert others - {tuple(a.files)}  # some other seed picks differently
    assert balanced_subset(ds, 3, seed=1).class_counts().tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match=r"--train-per-class 4 but class 'b' has only 3 images"):
        balanced_subset(ds, 4)
    with pytest.raises(ValueError, match=r"--test-per-class 4 but class 'b'"):
        balanced_subset(ds, 4, option="--test-per-class")


# ---------------------------------------------------------------- ImageFolder


def test_imagefolder_plain(tmp_path):
    root = tmp_path / "folder"
    expect = _make_tree(root)
    assert resolve_source(root) == ("imagefolder", root.resolve())
    ds = load_dataset(root)
    _check_tree(ds, expect)
    with pytest.raises(DataError, match="no test split"):
        load_dataset(root, "test")
    with pytest.raises(ValueError, match="split"):
        load_dataset(root, "val")


def test_imagefolder_with_splits(tmp_path):
    root = tmp_path / "folder"
    tr_expect = _make_tree(root / "train", seed=0)
    te_expect = _make_tree(root / "test", seed=50)
    _check_tree(load_dataset(root, "train", cache=False), tr_expect)
    _check_tree(load_dataset(root, "test", cache=False), te_expect)


def test_imagefolder_split_classes_must_agree(tmp_path):
    root = tmp_path / "folder"
    _make_tree(root / "train")
    _save(Image.fromarray(_rgb(1)), root / "test" / "cat" / "0.png")
    with pytest.raises(DataError, match="same class folders"):
        load_dataset(root, "test", cache=False)


def test_mixed_sizes(tmp_path):
    root = tmp_path / "folder"
    _save(Image.fromarray(_rgb(0, 8)), root / "a" / "0.png")
    _save(Image.fromarray(_rgb(1, 10)), root / "a" / "1.png")
    _save(Image.fromarray(_rgb(2, 8)), root / "b" / "0.png")
    with pytest.raises(DataError, match="--image-size") as err:
        load_dataset(root, cache=False)
    assert "1.png" in str(err.value)
    ds = load_dataset(root, image_size=6, cache=False)
    assert ds.images.shape == (3, 3, 6, 6)
    want = np.asarray(Image.fromarray(_rgb(1, 10)).resize((6, 6), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(ds.images[1].permute(1, 2, 0).numpy(), want)


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_rgb(0, 32)).save(buf, "JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


BAD_FILES = {
    "truncated.jpg": _truncated_jpeg,
    "notes.png": lambda: b"this is a text file, not an image\n",
    "noise.jpg": lambda: np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes(),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_corrupt_file_in_folder(tmp_path, name):
    root = tmp_path / "folder"
    _make_tree(root)
    (root / "dog" / name).write_bytes(BAD_FILES[name]())
    with pytest.raises(DataError) as err:
        load_dataset(root, cache=False)
    assert str(root / "dog" / name) in str(err.value) and "expected" in str(err.value).lower()


def test_corrupt_file_in_tarball(tmp_path):
    root = tmp_path / "folder"
    _make_tree(root / "train")
    (root / "train" / "dog" / "broken.jpg").write_bytes(_truncated_jpeg())
    archive = _tar(tmp_path / "archive.tar.gz", root)
    with pytest.raises(DataError, match="archive.tar.gz:train/dog/broken.jpg"):
        load_dataset(archive)


def test_empty_class_folder(tmp_path):
    root = tmp_path / "folder"
    _make_tree(root)
    (root / "fox").mkdir()
    (root / "fox" / ".hidden").write_bytes(b"x")
    with pytest.raises(DataError, match="fox"):
        load_dataset(root, cache=False)


@pytest.mark.parametrize(
    "mode,fmt",
    [
        ("L", "PNG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("RGBA", "PNG"),
        ("1", "PNG"),
        ("I;16", "PNG"),
        ("I", "TIFF"),
        ("CMYK", "JPEG"),
        ("F", "TIFF"),
        ("RGB", "BMP"),
    ],
)
def test_decode_modes_give_rgb(mode, fmt):
    src = (
        Image.fromarray(_rgb(3)).convert(mode) if mode not in ("I;16", "I", "F") else Image.new(mode, (SIZE, SIZE), 200)
    )
    buf = io.BytesIO()
    src.save(buf, fmt)
    arr = sources.decode_image(buf.getvalue(), f"x.{fmt.lower()}")
    assert arr.shape == (SIZE, SIZE, 3) and arr.dtype == np.uint8
    if mode in ("L", "1"):
        assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    if mode == "I;16":
        assert (arr == 1).all()  # 200 / 65535 * 255 rounds to 1
    assert sources.decode_image(buf.getvalue(), "x", image_size=5).shape == (5, 5, 3)


def test_palette_transparency_composited_on_white():
    pal = Image.fromarray(_rgb(3)).quantize(colors=8)
    idx = np.asarray(pal)[0, 0]
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=int(idx))
    arr = sources.decode_image(buf.getvalue(), "p.png")
    assert (arr[np.asarray(pal) == idx] == 255).all()


# ---------------------------------------------------------------- tarball


def test_tarball_splits_one_pass(tmp_path, monkeypatch):
    root = tmp_path / "folder"
    tr_expect = _make_tree(root / "train", seed=0)
    te_expect = _make_tree(root / "test", seed=50)
    archive = _tar(tmp_path / "cifar-like.tgz", root, arcroot="./wrapper/")
    assert resolve_source(archive) == ("tarball", archive.resolve())
    _check_tree(load_dataset(archive, "train"), tr_expect)

    def boom(*a, **k):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(sources, "decode_image", boom)
    _check_tree(load_dataset(archive, "test"), te_expect)  # stored by the same pass
    _check_tree(load_dataset(archive, "train"), tr_expect)


def test_tarball_plain_has_no_test(tmp_path):
    root = tmp_path / "folder"
    _make_tree(root)
    archive = _tar(tmp_path / "plain.tar", root)
    _check_tree(load_dataset(archive), _make_tree(tmp_path / "again"))
    with pytest.raises(DataError, match="no test split"):
        load_dataset(archive, "test")


def test_truncated_archive(tmp_path):
    root = tmp_path / "folder"
    _make_tree(root / "train")
    archive = _tar(tmp_path / "a.tar.gz", root)
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="a.tar.gz"):
        load_dataset(archive)


# ---------------------------------------------------------------- official CIFAR-10 python archive


def test_cifar_python_archive(cifar_archive, tmp_path):
    assert resolve_source(cifar_archive) == ("cifar10-python", cifar_archive.resolve())
    _check_cifar(load_dataset(cifar_archive, "train"), load_dataset(cifar_archive, "test"))
    # recognised by its members under another name, and as an extracted folder
    renamed = tmp_path / "renamed.tgz"
    renamed.write_bytes(cifar_archive.read_bytes())
    assert resolve_source(renamed)[0] == "cifar10-python"
    folder = tmp_path / "x" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, blob in _cifar_batches().items():
        (folder / name).write_bytes(blob)
    assert resolve_source(folder.parent) == ("cifar10-python", folder.resolve())
    _check_cifar(load_dataset(folder, "train", cache=False), load_dataset(folder, "test", cache=False))
    big = load_dataset(cifar_archive, "test", image_size=40, cache=False)
    assert big.images.shape == (PER_BATCH, 3, 40, 40)


def test_cifar_md5_verify(cifar_archive):
    load_dataset(cifar_archive, cache=False)  # verify is off by default for local files
    with pytest.raises(DataError, match="md5") as err:
        load_dataset(cifar_archive, cache=False, verify=True)
    assert str(cifar_archive) in str(err.value)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo hi > {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    members = _cifar_batches()
    members["data_batch_1"] = py2_pickle({b"data": _Evil(marker), b"labels": []})
    (tmp_path / "evil").mkdir()
    archive = _write_tar(tmp_path / "evil" / "cifar-10-python.tar.gz", members)
    with pytest.raises(DataError, match="refusing") as err:
        load_dataset(archive, cache=False)
    assert "system" in str(err.value) and "data_batch_1" in str(err.value)
    assert not marker.exists()


def test_unpickler_accepts_both_numpy_names():
    arr = np.arange(3072 * 2, dtype=np.uint8).reshape(2, 3072)
    for blob in (py2_pickle({b"data": arr}), pickle.dumps({b"data": arr}, protocol=4)):
        np.testing.assert_array_equal(sources._unpickle(blob, "t")[b"data"], arr)
    assert b"numpy.core.multiarray" in py2_pickle({b"data": arr})
    with pytest.raises(DataError, match="refusing"):
        sources._unpickle(pickle.dumps(Path("x"), protocol=4), "t")


def test_download(cifar_archive, tmp_path, monkeypatch):
    md5 = hashlib.md5(cifar_archive.read_bytes()).hexdigest()
    dest = tmp_path / "dl"
    got = download_cifar10(dest, url=cifar_archive.as_uri(), md5=md5)
    assert got == dest / "cifar-10-python.tar.gz" and got.read_bytes() == cifar_archive.read_bytes()
    assert [p.name for p in dest.iterdir()] == ["cifar-10-python.tar.gz"]
    # the official md5 does not match the small archive: refused, nothing left behind
    with pytest.raises(DataError, match="md5"):
        download_cifar10(tmp_path / "dl2", url=cifar_archive.as_uri())
    assert list((tmp_path / "dl2").iterdir()) == []

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        download_cifar10(tmp_path / "dl3")
    msg = str(err.value)
    assert sources.CIFAR10_URL in msg and str(tmp_path / "dl3" / "cifar-10-python.tar.gz") in msg
    assert download_cifar10(dest, url="http://unused.invalid/", md5=md5) == got  # already there: reused


# ---------------------------------------------------------------- cache


def test_cache_hit_and_corrupt_rebuild(tmp_path, monkeypatch):
    root = tmp_path / "folder"
    expect = _make_tree(root)
    first = load_dataset(root)
    entries = sorted((tmp_path / "cache" / "datasets").glob("*.safetensors"))
    assert len(entries) == 1 and entries[0].with_suffix(".json").exists()
    real = sources.decode_image

    def boom(*a, **k):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(sources, "decode_image", boom)
    again = load_dataset(root)
    assert torch.equal(again.images, first.images) and again.files == first.files
    assert again.classes == first.classes and torch.equal(again.labels, first.labels)
    with pytest.raises(AssertionError):
        load_dataset(root, cache=False)

    monkeypatch.setattr(sources, "decode_image", real)
    entries[0].write_bytes(b"garbage" * 10)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        rebuilt = load_dataset(root)
    _check_tree(rebuilt, expect)
    monkeypatch.setattr(sources, "decode_image", boom)
    load_dataset(root)  # the rebuilt entry is used

    # a changed source misses the cache
    monkeypatch.setattr(sources, "decode_image", real)
    _save(Image.fromarray(_rgb(77)), root / "cat" / "9.png")
    assert len(load_dataset(root)) == len(expect) + 1


def test_cache_key_changes():
    p = Path(__file__)
    k = cache_mod.cache_key("tarball", p, "train", None)
    assert k == cache_mod.cache_key("tarball", p, "train", None)
    assert (
        len(
            {
                k,
                cache_mod.cache_key("tarball", p, "test", None),
                cache_mod.cache_key("tarball", p, "train", 64),
                cache_mod.cache_key("imagefolder", p, "train", None),
            }
        )
        == 4
    )


# ---------------------------------------------------------------- finding CIFAR-10


def test_search_order(tmp_path, monkeypatch, cifar_archive):
    jpg_root = tmp_path / "jpg"
    _make_tree(jpg_root / "train")
    _make_tree(jpg_root / "test", seed=5)
    env_tar = _tar(tmp_path / "env.tar.gz", jpg_root)
    cwd_data = Path.cwd() / "data"
    cwd_data.mkdir()
    _tar(cwd_data / "cifar10-jpg.tar.gz", jpg_root)
    cache_data = tmp_path / "cache" / "data"
    cache_data.mkdir(parents=True)
    (cache_data / "cifar-10-python.tar.gz").write_bytes(cifar_archive.read_bytes())

    monkeypatch.setenv("UNLEARNABLE_DATA", str(env_tar))
    assert resolve_source("cifar10") == ("tarball", env_tar.resolve())
    monkeypatch.setenv("UNLEARNABLE_DATA", str(tmp_path / "cache" / "data"))
    assert resolve_source(None) == ("cifar10-python", (cache_data / "cifar-10-python.tar.gz").resolve())
    monkeypatch.delenv("UNLEARNABLE_DATA")
    assert resolve_source("cifar10") == ("tarball", (cwd_data / "cifar10-jpg.tar.gz").resolve())
    (cwd_data / "cifar10-jpg.tar.gz").unlink()
    assert resolve_source("CIFAR10") == ("cifar10-python", (cache_data / "cifar-10-python.tar.gz").resolve())
    _check_cifar(load_dataset("cifar10"), load_dataset(None, "test"))

    monkeypatch.setenv("UNLEARNABLE_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="UNLEARNABLE_DATA"):
        resolve_source("cifar10")


def test_missing_data_lists_places(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10")
    msg = str(err.value)
    for part in (
        "UNLEARNABLE_DATA",
        str(Path.cwd() / "data"),
        str(tmp_path / "cache" / "data"),
        "--data",
        "--download",
    ):
        assert part in msg
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="unsupported"):
        load_dataset(tmp_path / "x.zip")


def test_download_flag_uses_cache_dir(tmp_path, monkeypatch, cifar_archive):
    from unlearnable.data import official

    calls = []

    def fake_download(url, dest, filename, md5):  # the one downloader, as the registry calls it
        calls.append((url, Path(dest), filename, md5))
        target = Path(dest) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(cifar_archive.read_bytes())
        return target

    monkeypatch.setattr(official, "download_file", fake_download)
    ds = load_dataset("cifar10", download=True)
    assert calls == [
        (sources.CIFAR10_URL, tmp_path / "cache" / "data" / "cifar10", "cifar-10-python.tar.gz", sources.CIFAR10_MD5)
    ]
    assert len(ds) == 5 * PER_BATCH


def test_sets_larger_than_the_threshold_are_decoded_to_disk_and_memory_mapped(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    _make_tree(root)
    in_memory = load_dataset(root, "train", cache=False)
    monkeypatch.setenv("UNLEARNABLE_MMAP_BYTES", "100")  # every set here is "larger than memory"
    direct = load_dataset(root, "train", cache=False)  # decoded into a disk-backed array
    first = load_dataset(root, "train")  # decoded, written to the cache, handed back mapped
    again = load_dataset(root, "train")  # mapped from the cache file
    for ds in (direct, first, again):
        assert torch.equal(ds.images, in_memory.images) and torch.equal(ds.labels, in_memory.labels)
    cache_dir = tmp_path / "cache" / "datasets"
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no temporary files left
    again.images[0, 0, 0, 0] ^= 255  # copy-on-write: the cache file itself never changes
    assert torch.equal(load_dataset(root, "train").images, in_memory.images)


def test_a_checkpoint_of_other_data_names_the_part_that_differs(tmp_path):
    from unlearnable.training import Checkpoint, CheckpointError, run_identity

    ds = ImageDataset(torch.zeros((2, 3, 4, 4), dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"], ["x", "y"])
    path = tmp_path / "c.pt"
    Checkpoint(path, run_identity(data=ds.digests())).save({"round": 1})
    other = ds.with_images(ds.images + 1)
    with pytest.raises(CheckpointError, match=r"differs in: data\.pixels\)"):
        Checkpoint(path, run_identity(data=other.digests())).load()
    assert Checkpoint(path, run_identity(data=ds.digests())).load()["round"] == 1
    assert ds.digest() == ImageDataset(ds.images.clone(), ds.labels.clone(), ["a", "b"], ["x", "y"]).digest()
    assert ds.digest() != other.digest()

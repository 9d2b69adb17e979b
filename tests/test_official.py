"""Readers of the official CIFAR-100, SVHN and Fashion-MNIST formats, on small archives the tests
build in exactly those formats (no copy of the real files is needed)."""

import dataclasses
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import py2_pickle
from scipy.io import savemat

from unlearnable.data import DataError, load_dataset, official
from unlearnable.data.official import DATASETS, find_official, read_idx


@pytest.fixture(autouse=True)
def _isolated(isolated_data, monkeypatch):
    # nor the real system folder (Debian's package)
    monkeypatch.setitem(DATASETS, "fashion-mnist", dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=()))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- CIFAR-100


def _cifar100_archive(folder: Path, n_train=30, n_test=10) -> tuple[Path, dict]:
    """cifar-100-python.tar.gz as distributed: pickled dicts with bytes keys, rows of 3072 bytes."""
    rng = np.random.default_rng(0)
    truth = {}
    members = {
        "meta": {
            b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)],
        }
    }
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        coarse = [f // 5 for f in fine]
        members[split] = {
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
            b"batch_label": b"x",
            b"fine_labels": fine,
            b"coarse_labels": coarse,
            b"data": data,
        }
        truth[split] = (data, fine, coarse)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, obj in members.items():
            blob = py2_pickle(obj)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return path, truth


def test_cifar100_fine_and_coarse_labels(tmp_path, monkeypatch):
    path, truth = _cifar100_archive(tmp_path / "d")
    monkeypatch.setenv("UNLEARNABLE_DATA", str(tmp_path / "d"))
    train = load_dataset("cifar100", "train", cache=False)
    test = load_dataset("cifar100", "test", cache=False)
    assert (len(train), len(test), len(train.classes)) == (30, 10, 100)
    data, fine, coarse = truth["train"]
    assert train.images.shape == (30, 3, 32, 32)
    # row = R plane, G plane, B plane of a 32x32 image
    assert torch.equal(train.images[3, 1], torch.from_numpy(data[3, 1024:2048].reshape(32, 32)))
    assert train.labels.tolist() == fine and train.classes[7] == "fine07"
    c = load_dataset("cifar100-coarse", "train", cache=False)
    assert c.labels.tolist() == coarse and len(c.classes) == 20 and torch.equal(c.images, train.images)
    # a path to the archive itself works too
    assert torch.equal(load_dataset(path, "test", cache=False).images, test.images)


def test_cifar100_verify_checks_the_published_md5(tmp_path):
    _cifar100_archive(tmp_path / "d")
    with pytest.raises(DataError, match=r"cifar-100-python\.tar\.gz: md5 is .* but the official"):
        load_dataset(tmp_path / "d", "train", cache=False, verify=True)


def test_cifar100_missing_member_is_named(tmp_path):
    folder = tmp_path / "d" / "cifar-100-python"
    folder.mkdir(parents=True)
    (folder / "meta").write_bytes(py2_pickle({b"fine_label_names": [b"a"]}))
    with pytest.raises(DataError, match="missing train"):
        official.read_official(DATASETS["cifar100"], tmp_path / "d", "train")


# --------------------------------------------------------------------------- SVHN


def _svhn_mat(path: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 10 is the digit 0
    y[0] = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"X": x, "y": y}, format="5")
    return x, y


def test_svhn_layout_and_label_ten_is_zero(tmp_path, monkeypatch):
    x, y = _svhn_mat(tmp_path / "d" / "svhn" / "train_32x32.mat", 12, 0)  # found in a subfolder named svhn
    _svhn_mat(tmp_path / "d" / "svhn" / "test_32x32.mat", 5, 1)
    monkeypatch.setenv("UNLEARNABLE_DATA", str(tmp_path / "d"))
    train = load_dataset("svhn", "train", cache=False)
    assert train.images.shape == (12, 3, 32, 32) and len(load_dataset("svhn", "test", cache=False)) == 5
    assert train.classes == [str(d) for d in range(10)]
    assert train.labels[0] == 0 and train.labels.tolist() == (y[:, 0] % 10).tolist()
    # X is (H, W, C, N): pixel (row 4, column 7) of image 2
    assert train.images[2, :, 4, 7].tolist() == x[4, 7, :, 2].tolist()


def test_svhn_extra_is_added_to_train(tmp_path):
    d = tmp_path / "d"
    _svhn_mat(d / "train_32x32.mat", 6, 0)
    _svhn_mat(d / "test_32x32.mat", 4, 1)
    with pytest.raises(DataError, match="extra_32x32.mat"):  # the missing file is named
        find_official(DATASETS["svhn-extra"], "train")
    _svhn_mat(d / "extra_32x32.mat", 9, 2)
    ds = official.read_official(DATASETS["svhn-extra"], d, "train")
    assert len(ds) == 15


def test_svhn_bad_file_is_named(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "train_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match=r"train_32x32\.mat"):
        official.read_official(DATASETS["svhn"], d, "train")
    savemat(d / "train_32x32.mat", {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DataError, match=r"X must be a uint8 array of shape \(32, 32, 3, N\)"):
        official.read_official(DATASETS["svhn"], d, "train")


# --------------------------------------------------------------------------- Fashion-MNIST


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _fashion(folder: Path, n_train=20, n_test=8, gz=True) -> dict:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            blob = _idx(arr)
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(blob) if gz else blob)
        truth[split] = (images, labels)
    return truth


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_grey_lifted_to_three_channels(tmp_path, gz):
    truth = _fashion(tmp_path / "fm", gz=gz)
    train = load_dataset(tmp_path / "fm", "train", cache=False)  # a folder of the official files
    test = load_dataset(tmp_path / "fm", "test", cache=False)
    assert train.images.shape == (20, 3, 28, 28) and len(test) == 8
    assert torch.equal(train.images[:, 0], torch.from_numpy(truth["train"][0]))
    assert torch.equal(train.images[:, 0], train.images[:, 2])
    assert train.labels.tolist() == truth["train"][1].tolist() and train.classes[9] == "Ankle_boot"


def test_fashion_mnist_by_name_with_resize(tmp_path, monkeypatch):
    _fashion(tmp_path / "data")
    monkeypatch.chdir(tmp_path)  # ./data is searched
    ds = load_dataset("fashion-mnist", "train", image_size=32)
    assert ds.images.shape == (20, 3, 32, 32)
    again = load_dataset("fashion-mnist", "train", image_size=32)  # from the cache
    assert torch.equal(ds.images, again.images)


def test_idx_truncated_and_wrong_magic_are_refused(tmp_path):
    blob = _idx(np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "cut").write_bytes(blob[:-10])
    with pytest.raises(DataError, match="cut: the header says shape"):
        read_idx(tmp_path / "cut")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(DataError, match="png is not an IDX file"):
        read_idx(tmp_path / "png")
    (tmp_path / "be").write_bytes(_idx(np.arange(6, dtype=np.int32).reshape(2, 3), 0x0C))
    assert read_idx(tmp_path / "be").tolist() == [[0, 1, 2], [3, 4, 5]]  # big-endian ints


def test_fashion_label_count_mismatch_names_the_files(tmp_path):
    _fashion(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros(3, np.uint8))))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz and .*t10k-labels-idx1-ubyte.gz: 8 images but 3"):
        load_dataset(tmp_path / "fm", "test", cache=False)


# --------------------------------------------------------------------------- finding and downloading


def test_missing_dataset_lists_what_and_where(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("svhn", "test")
    msg = str(err.value)
    assert "test_32x32.mat" in msg and "data/" in msg and "--download" in msg and "ufldl.stanford.edu" in msg


def test_download_checks_md5_and_keeps_nothing_bad(tmp_path, monkeypatch):
    src = tmp_path / "mirror"
    _fashion(src)
    md5 = {p.name: _md5(p) for p in src.iterdir()}
    good = dataclasses.replace(DATASETS["fashion-mnist"], url=src.as_uri() + "/", md5=md5)
    monkeypatch.setitem(DATASETS, "fashion-mnist", good)
    ds = load_dataset("fashion-mnist", "test", download=True, cache=False)
    assert len(ds) == 8
    dest = tmp_path / "cache" / "data" / "fashion-mnist"
    assert sorted(p.name for p in dest.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

    bad = dataclasses.replace(good, md5={**md5, "train-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(DATASETS, "fashion-mnist", bad)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz but its md5 is"):
        load_dataset("fashion-mnist", "train", download=True, cache=False)
    assert not (dest / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in dest.iterdir() if p.name.endswith(".part")]


def test_the_cli_protects_a_named_dataset(tmp_path, monkeypatch):
    from unlearnable.cli import main

    _fashion(tmp_path / "fm", n_train=40)
    monkeypatch.setenv("UNLEARNABLE_DATA", str(tmp_path / "fm"))
    out = tmp_path / "out"
    assert main(["protect", "--data", "fashion-mnist", "--method", "random", "--out", str(out), "--quiet"]) == 0
    protected = load_dataset(out, "train", cache=False)
    assert protected.images.shape == (40, 3, 28, 28) and "T-shirt_top" in protected.classes
    assert main(["verify", str(out)]) == 0  # finds the clean set by its name; budget and checksums hold


def test_protected_copy_evaluates_against_the_official_test_order(tmp_path, monkeypatch):
    """A protected folder lists classes alphabetically; Fashion-MNIST's own order is not."""
    from unlearnable.cli import main

    _fashion(tmp_path / "fm", n_train=40)
    monkeypatch.setenv("UNLEARNABLE_DATA", str(tmp_path / "fm"))
    out = tmp_path / "out"
    main(["protect", "--data", "fashion-mnist", "--method", "random", "--out", str(out), "--quiet"])
    protected = load_dataset(out, "train", cache=False)
    official_test = load_dataset("fashion-mnist", "test", cache=False)
    assert protected.classes != official_test.classes
    test = official_test.with_class_order(protected.classes)
    for k in range(len(test)):  # every image keeps its class name
        assert test.classes[test.labels[k]] == official_test.classes[official_test.labels[k]]
    with pytest.raises(ValueError, match="class names differ"):
        official_test.with_class_order(protected.classes[:-1] + ["other"])
    assert (
        main(
            [
                "evaluate",
                "--train",
                str(out),
                "--data",
                "fashion-mnist",
                "--init",
                "scratch",
                "--victim",
                "small_cnn",
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )


def test_dataset_presets():
    from unlearnable.data import dataset_preset

    assert dataset_preset("cifar100")["num_classes"] == 100 and dataset_preset("cifar100")["paper_epochs"] == 100
    assert dataset_preset("svhn")["paper_epochs"] == 30 and dataset_preset("fashion-mnist")["image_size"] == 28
    assert dataset_preset("CIFAR10")["paper_epochs"] == 60 and dataset_preset("./some/folder") == {}


def test_paper_recipe_follows_the_dataset():
    from unlearnable.evaluate import victim_recipe

    assert victim_recipe("paper", "imagenet", dataset="svhn")[2].epochs == 30
    cfg = victim_recipe("paper", "imagenet", dataset="cifar100")[2]
    assert (cfg.epochs, cfg.weight_decay) == (100, 5e-5)
    assert victim_recipe("paper", "imagenet", dataset="svhn", epochs=3)[2].epochs == 3  # explicit wins
    assert victim_recipe("cpu", "imagenet", dataset="svhn")[2].epochs == victim_recipe("cpu", "imagenet")[2].epochs

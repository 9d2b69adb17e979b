import numpy as np
import pytest
import torch
from PIL import Image

# The tests use tiny batches: one thread is as fast, and robust to a busy machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """The suite's own cache folder (decoded sets, this computer's timings): a test run never
    writes into a person's cache, and its toy runs never calibrate their estimates."""
    import os

    if "UNLEARNABLE_CACHE" not in os.environ:
        os.environ["UNLEARNABLE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run only where torch sees a GPU (`pytest -m cuda`: bench/gpu-check.sh)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture()
def isolated_data(tmp_path, monkeypatch):
    """Never touch the home cache, ./data of the repo, or a UNLEARNABLE_DATA of the caller."""
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UNLEARNABLE_DATA", raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture()
def dies_on_call():
    """Wrap a function so that its n-th call raises KeyboardInterrupt (a simulated kill)."""

    def wrap(fn, n):
        calls = {"n": 0}

        def dying(*a, **k):
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
            return fn(*a, **k)

        return dying

    return wrap


@pytest.fixture()
def make_image_folder(tmp_path, monkeypatch):
    """Build a small ImageFolder (root/<split>/<class>/<name>.png, size x size RGB, 16 by default)
    with an isolated cache.

    classes: names, or {name: (r, g, b) tint} for classes told apart by colour (pixels in
    [0, 160) plus the tint); otherwise pixels are uniform in [0, 256). Seeded: same call, same bytes.
    """
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))

    def make(root, classes, counts, name="{i}.png", size=16):
        rng = np.random.default_rng(0)
        tints = classes if isinstance(classes, dict) else None
        for split, n in counts.items():
            for c in classes:
                (root / split / c).mkdir(parents=True)
                for i in range(n):
                    if tints is None:
                        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                    else:
                        img = (rng.integers(0, 160, (size, size, 3)) + np.array(tints[c])).clip(0, 255).astype(np.uint8)
                    Image.fromarray(img).save(root / split / c / name.format(i=i))
        return root

    return make

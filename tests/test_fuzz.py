"""Property and fuzz tests. Longer runs: UNLEARNABLE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py"""

import io
import os

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from unlearnable.data import DataError, ImageDataset, load_dataset
from unlearnable.data.sources import decode_image
from unlearnable.export import export_protected
from unlearnable.perturbation import Perturbation, within_budget

EXAMPLES = int(os.environ.get("UNLEARNABLE_FUZZ_EXAMPLES", "60"))


def encoded(fmt: str, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


SEEDS = [encoded("PNG"), encoded("JPEG"), encoded("PNG", "P"), encoded("PNG", "LA"), encoded("BMP"), encoded("GIF")]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(SEEDS))),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    st.one_of(st.none(), st.integers(0, 4000)),
    st.binary(max_size=16),
)
def test_image_decoder_survives_mutated_files(which, flips, cut, junk):
    """Any mutation decodes to an RGB uint8 array or raises a DataError that names the file."""
    data = bytearray(SEEDS[which])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[:cut]
    data += junk
    try:
        arr = decode_image(bytes(data), "fuzz/img.png")
    except DataError as e:
        assert "fuzz/img.png" in str(e)
        return
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


@settings(
    max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 2**31 - 1),
    st.sampled_from([("linf", 8 / 255), ("linf", 2 / 255), ("l2", 0.5), ("l0", 2)]),
    st.sampled_from(["classwise", "samplewise"]),
)
def test_export_round_trip_holds_budget(tmp_path_factory, seed, budget, kind):
    """Exported PNGs, read back, equal Perturbation.apply and stay within the budget."""
    norm, eps = budget
    g = torch.Generator().manual_seed(seed)
    n, k = 6, 2
    ds = ImageDataset(
        torch.randint(0, 256, (n, 3, 6, 6), generator=g, dtype=torch.uint8), torch.arange(n) % k, ["a", "b"]
    )
    rows = k if kind == "classwise" else n
    p = Perturbation(torch.randn((rows, 3, 6, 6), generator=g) * 0.2, eps, kind, norm=norm)
    protected = p.apply(ds)
    out = tmp_path_factory.mktemp("export") / "o"
    export_protected(out, ds, protected, p, {}, progress=False)
    back = load_dataset(out, "train", cache=False)
    order = sorted(range(n), key=lambda i: (ds.labels[i].item(), f"{i:05d}"))
    assert torch.equal(back.images, protected.images[order])
    assert within_budget(ds.images, protected.images, eps, norm)
    assert torch.equal(Perturbation.load(out / "perturbation.safetensors").delta, p.delta)

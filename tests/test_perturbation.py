import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnable.attacks.common import class_means
from unlearnable.data import ImageDataset
from unlearnable.data.augment import crop_flip, random_crop
from unlearnable.perturbation import Perturbation, budget_levels, budget_used, quantize, within_budget


def tiny_set(n=12, k=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % k
    return ImageDataset(images, labels, [f"c{i}" for i in range(k)])


def test_budget_levels():
    assert budget_levels(8 / 255) == 8
    assert budget_levels(16 / 255) == 16
    assert budget_levels(0.03) == 7


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1 / 255, 4 / 255, 8 / 255, 0.05, 0.5]))
def test_quantize_holds_budget_and_rounds(seed, eps):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (4, 3, 5, 5), generator=g, dtype=torch.uint8)
    delta = (torch.rand((4, 3, 5, 5), generator=g) * 2 - 1) * eps * 1.5  # some entries beyond budget
    out = quantize(x, delta, eps)
    change = out.int() - x.int()
    assert out.dtype == torch.uint8
    assert change.abs().max() <= budget_levels(eps)
    # inside the valid range and the budget, the change is the rounded delta (not truncated)
    expected = torch.round(delta * 255).clamp(-budget_levels(eps), budget_levels(eps))
    free = (x.int() + expected.int() >= 0) & (x.int() + expected.int() <= 255)
    assert torch.equal(change[free], expected.int()[free])


def test_negative_half_survives():
    """Regression: applying with mul(255).clamp(0, 255) loses every negative entry."""
    x = torch.full((1, 3, 2, 2), 100, dtype=torch.uint8)
    delta = torch.full((1, 3, 2, 2), -6 / 255)
    delta[..., 0, 0] = -0.4 / 255  # rounds to 0, not to -1 or +0
    delta[..., 1, 1] = -0.6 / 255  # rounds to -1 (truncation would give 0)
    out = quantize(x, delta, 8 / 255).int() - 100
    assert out[0, 0, 0, 1] == -6 and out[0, 0, 0, 0] == 0 and out[0, 0, 1, 1] == -1


def test_classwise_indexes_by_label_samplewise_by_position():
    ds = tiny_set()
    k = ds.num_classes
    cw = Perturbation(torch.arange(k).float().view(k, 1, 1, 1).expand(k, 3, 8, 8) / 255 * 2, eps=8 / 255)
    out = cw.apply(ds).images.int() - ds.images.int()
    for i in range(len(ds)):
        inside = (ds.images[i].int() + 2 * int(ds.labels[i])) <= 255
        assert (out[i][inside] == 2 * int(ds.labels[i])).all()
    n = len(ds)
    sw = Perturbation(
        torch.arange(n).float().view(n, 1, 1, 1).expand(n, 3, 8, 8) / 255 * 0.5, eps=8 / 255, kind="samplewise"
    )
    rows = sw.for_batch(ds.labels, torch.arange(n))
    assert torch.equal(rows[:, 0, 0, 0] * 255 / 0.5, torch.arange(n).float())
    # a sample-wise perturbation must not be looked up by label
    assert not torch.equal(rows, sw.delta[ds.labels])


def test_apply_checks_shapes():
    ds = tiny_set()
    try:
        Perturbation(torch.zeros(5, 3, 8, 8), 8 / 255).apply(ds)
    except ValueError as e:
        assert "5 entries" in str(e)
    else:
        raise AssertionError("mismatched class count accepted")


def test_save_load_roundtrip(tmp_path):
    delta = (torch.rand(3, 3, 8, 8) * 2 - 1) * 8 / 255
    p = Perturbation(delta, 8 / 255, "classwise", "bait", {"stages": [1, 2, 3]})
    p.save(tmp_path / "p.safetensors")
    q = Perturbation.load(tmp_path / "p.safetensors")
    assert torch.equal(p.delta, q.delta) and q.eps == p.eps and q.kind == "classwise"
    assert q.method == "bait" and q.meta["stages"] == [1, 2, 3]
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    try:
        Perturbation.load(tmp_path / "bad.safetensors")
    except ValueError as e:
        assert "bad.safetensors" in str(e)
    else:
        raise AssertionError("garbage file loaded")


def test_class_means_vectorized():
    values = torch.randn(20, 3, 4, 4)
    labels = torch.randint(0, 5, (20,))
    labels[0] = 0
    means, counts = class_means(values, labels, 6)
    for c in range(6):
        sel = labels == c
        assert counts[c] == sel.sum()
        expect = values[sel].mean(0) if sel.any() else torch.zeros(3, 4, 4)
        assert torch.allclose(means[c], expect, atol=1e-6)


def test_crop_flip_shapes_and_content():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 32, 32)
    y = crop_flip(x, 4, g)
    assert y.shape == x.shape
    # with zero padding every crop is a shifted copy: the centre pixel of some image survives
    z = random_crop(x, 0)
    assert torch.equal(z, x)
    # gradients flow through the gather (needed when optimizing delta through augmentation)
    d = torch.zeros(16, 3, 32, 32, requires_grad=True)
    crop_flip(x + d, 4, g).sum().backward()
    assert d.grad.abs().sum() > 0


@pytest.mark.parametrize("shape,padding", [((9, 3, 8, 8), 2), ((5, 2, 6, 7), 3), ((4, 1, 32, 32), 4)])
def test_random_crop_is_a_per_image_window_of_the_padded_image_with_the_transposed_gradient(shape, padding):
    x = torch.rand(shape, dtype=torch.double, requires_grad=True)
    got = random_crop(x, padding, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same offset draws: rows first, then columns
    oy = torch.randint(0, 2 * padding + 1, (shape[0],), generator=g)
    ox = torch.randint(0, 2 * padding + 1, (shape[0],), generator=g)
    padded = torch.nn.functional.pad(x.detach(), (padding,) * 4)
    h, w = shape[2:]
    for i in range(shape[0]):  # the slow, obviously right reference
        assert torch.equal(got[i].detach(), padded[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w])
    crop = lambda t: random_crop(t, padding, torch.Generator().manual_seed(7))  # noqa: E731
    assert torch.autograd.gradcheck(crop, (x,))
    assert torch.autograd.gradgradcheck(lambda t: crop(t).square(), (x,))  # the hypergradient's second order


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.05, 0.3, 1.0, 3.0]))
def test_l2_budget_holds_after_rounding(seed, eps):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (6, 3, 8, 8), generator=g, dtype=torch.uint8)
    p = Perturbation(torch.randn((6, 3, 8, 8), generator=g), eps=eps, kind="samplewise", norm="l2")
    assert (p.delta.flatten(1).norm(dim=1) <= eps + 1e-5).all()  # projected onto the ball
    out = quantize(x, p.delta, eps, "l2")
    assert within_budget(x, out, eps, "l2")
    assert (budget_used(x, out, "l2") <= eps + 1e-6).all()
    assert (budget_used(x, out, "l2") > 0.5 * eps).any()  # the budget is used, not thrown away


def test_l0_keeps_the_strongest_pixels_and_any_magnitude():
    d = torch.zeros(2, 3, 4, 4)
    d[0, :, 1, 2] = torch.tensor([1.0, -1.0, 1.0])  # one extreme pixel: allowed under L0 = 1
    d[1, 0, 0, 0], d[1, 2, 3, 3] = 0.2, -0.9  # two pixels: only the stronger survives
    p = Perturbation(d, eps=1, kind="samplewise", norm="l0")
    assert torch.equal(p.delta[0], d[0])
    assert p.delta[1, 0, 0, 0] == 0 and p.delta[1, 2, 3, 3] == -0.9
    x = torch.full((2, 3, 4, 4), 128, dtype=torch.uint8)
    out = quantize(x, p.delta, 1, "l0")
    assert budget_used(x, out, "l0").tolist() == [1.0, 1.0]
    assert out[0, 0, 1, 2] == 255 and out[0, 1, 1, 2] == 0  # full-range change, clipped to the image


def test_norm_survives_save_and_load(tmp_path):
    p = Perturbation(torch.randn(3, 3, 4, 4), eps=1.0, kind="classwise", norm="l2", method="ar")
    p.save(tmp_path / "p.safetensors")
    q = Perturbation.load(tmp_path / "p.safetensors")
    assert q.norm == "l2" and q.eps == 1.0 and torch.equal(q.delta, p.delta)


def test_budget_validation_by_norm():
    import pytest

    for eps, norm in [(0, "linf"), (1.5, "linf"), (0, "l2"), (0.5, "l0"), (1, "l1")]:
        with pytest.raises(ValueError):
            Perturbation(torch.zeros(1, 3, 2, 2), eps=eps, norm=norm)
    Perturbation(torch.zeros(1, 3, 2, 2), eps=2.0, norm="l2")  # L2 radii above 1 are fine


def test_apply_in_chunks_and_to_disk_matches_in_memory(monkeypatch, tmp_path):
    g = torch.Generator().manual_seed(3)
    ds = ImageDataset(
        torch.randint(0, 256, (37, 3, 8, 8), generator=g, dtype=torch.uint8), torch.arange(37) % 3, ["a", "b", "c"]
    )
    p = Perturbation(torch.rand(37, 3, 8, 8, generator=g) * 0.1 - 0.05, 8 / 255, kind="samplewise")
    whole = p.apply(ds, chunk=1000)
    assert torch.equal(p.apply(ds, chunk=5).images, whole.images)
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path))
    monkeypatch.setenv("UNLEARNABLE_MMAP_BYTES", "10")  # written into a disk-backed array
    assert torch.equal(p.apply(ds, chunk=5).images, whole.images)
    assert torch.equal(budget_used(ds.images, whole.images, chunk=4), budget_used(ds.images, whole.images))

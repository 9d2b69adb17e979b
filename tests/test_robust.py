"""BAIT's hardening options, each tested for what it claims: the EOT transforms are differentiable
and the JPEG stand-in is close to a real JPEG; the grey share survives grayscale; random phases
leave no single pixel direction per class; the ensemble trains every member. And the trainer's
defenses that go with them (color_jitter, downscale, standardize)."""

import io
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from unlearnable.attacks import create_attack
from unlearnable.attacks.bait import phases, shifted
from unlearnable.attacks.eot import EOT, TRANSFORMS, jpeg
from unlearnable.data import ImageDataset
from unlearnable.data.augment import color_jitter, luma
from unlearnable.defenses import create_defense
from unlearnable.defenses.photometric import standardize
from unlearnable.defenses.squeeze import grayscale
from unlearnable.perturbation import quantize


def smooth_images(n=64, size=32, seed=0) -> torch.Tensor:
    """Photo-like float images: smooth colour fields plus a little texture (JPEG treats pure
    noise differently)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bicubic")
    return (base + 0.03 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)


def pil_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for im in (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("quality", [10, 30, 50])
def test_the_jpeg_stand_in_is_close_to_a_real_jpeg_at_the_same_quality(quality):
    x = (smooth_images() * 255).round() / 255
    real = pil_jpeg(x, quality)
    approx = jpeg(x, quality=float(quality))
    gap = (approx - real).abs().mean()
    loss = (real - x).abs().mean()  # what the real codec changes
    assert gap < 0.6 * loss, (quality, gap.item() * 255, loss.item() * 255)
    other = pil_jpeg(x, 90 if quality < 50 else 10)  # closer to its own quality than to another one
    assert gap < (other - real).abs().mean()
    # an odd size is padded to the codec's 16 px blocks and cropped back
    assert jpeg(x[:2, :, :20, :28], quality=50.0).shape == (2, 3, 20, 28)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_eot_transform_is_differentiable_seeded_and_in_range(name):
    x = smooth_images(8).requires_grad_(True)
    a = TRANSFORMS[name](x, torch.Generator().manual_seed(3))
    b = TRANSFORMS[name](x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= -1e-6 and a.max() <= 1 + 1e-6
    assert not torch.equal(a, x)
    a.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_eot_draws_the_identity_and_every_transform():
    eot = EOT(["grayscale", "resize"])
    x = smooth_images(4)
    gen = torch.Generator().manual_seed(0)
    seen = {
        "identity" if torch.equal(y, x) else "grey" if torch.allclose(y[:, 0], y[:, 1]) else "resize"
        for y in (eot(x, gen) for _ in range(30))
    }
    assert seen == {"identity", "grey", "resize"}
    with pytest.raises(ValueError, match="eot must be"):
        create_attack("bait", eot=["gray"])
    with pytest.raises(ValueError, match="luma must be"):
        create_attack("bait", luma=1.0)


def luma_free_colour(k=4, size=8, seed=0) -> torch.Tensor:
    """Parameters w whose colour pattern tanh(w) has zero luma, near the budget's edge: what the
    `cpu` preset's perturbation nearly is."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(k, 3, size, size, generator=g)
    v = v - luma(v)  # luma(luma(v) broadcast) == luma(v): the weights sum to 1
    return torch.atanh(0.95 * v / v.abs().amax())


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_the_grey_share_of_the_budget_survives_grayscale_after_export(share):
    """delta = eps ((1 - a) tanh(w_colour) + a tanh(w_grey)): even when the colour part has no luma
    at all, a grey copy keeps a * eps * tanh(w_grey). Checked on exported uint8 images through the
    grayscale defense, against a control without the share."""
    k, n, size = 4, 64, 16
    eps = 8 / 255
    g = torch.Generator().manual_seed(1)
    grey = torch.randn(k, 1, 4, 4, generator=g) * 2
    colour = luma_free_colour(k, 4)
    images = (smooth_images(n, size) * 200 + 20).round().to(torch.uint8)
    labels = torch.arange(n) % k
    for a, want in ((share, True), (0.0, False)):
        attack = create_attack("bait", eps=eps, luma=a, parameterization="direct", direct_size=4)
        w = torch.cat([colour, grey], 1) if a > 0 else colour
        delta = attack.direct_delta(w, (k, 3, size, size))
        assert delta.abs().max() <= eps + 1e-7
        kept = grayscale(quantize(images, delta[labels], eps)).float() - grayscale(images).float()
        kept = kept[:, 0] / 255  # what grey copies of the protected images still carry
        target = torch.nn.functional.interpolate(torch.tanh(grey), size=(size, size), mode="nearest")[labels, 0]
        if want:
            amplitude = (kept * target).sum() / target.square().sum()
            assert amplitude == pytest.approx(a * eps, rel=0.25)
            assert torch.corrcoef(torch.stack([kept.flatten(), target.flatten()]))[0, 1] > 0.8
        else:
            assert kept.abs().mean() < 0.15 * eps  # rounding alone: the colour-only pattern is gone


def linear_accuracy(train: torch.Tensor, test: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Accuracy on new protected images of a linear model on pixels (least squares onto one-hot
    labels, ridge 1e-2: one weight row, one direction, per class) fitted on protected training
    images whose content is unrelated to the labels."""
    n, size = len(labels), train.shape[-1]
    content = lambda seed: (smooth_images(n, size, seed) * 200 + 20).round().to(torch.uint8)  # noqa: E731
    x = quantize(content(1), train, 8 / 255).flatten(1).double() / 255
    onehot = torch.nn.functional.one_hot(labels, k).double()
    w = torch.linalg.solve(x.T @ x + 1e-2 * torch.eye(x.shape[1], dtype=x.dtype), x.T @ onehot)
    new = quantize(content(2), test, 8 / 255).flatten(1).double() / 255
    return (new @ w).argmax(1).eq(labels).float().mean().item()


def test_random_phases_leave_no_single_linear_direction_per_class():
    k, size, n = 4, 16, 400
    attack = create_attack("bait", random_phase=True, parameterization="direct", direct_size=4)
    fixed = create_attack("bait", parameterization="direct", direct_size=4)
    w = torch.randn(k, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2
    pattern = attack.direct_delta(w, (k, 3, size, size))
    assert pattern.mean((2, 3)).abs().max() < 1e-6 and pattern.abs().max() <= attack.eps + 1e-7
    labels = torch.arange(n) % k

    def samples(table, seed, random_phase):
        rows = table[labels]
        return shifted(rows, *phases(n, size, size, torch.Generator().manual_seed(seed))) if random_phase else rows

    train, test = samples(pattern, 1, True), samples(pattern, 2, True)
    # the class mean of the shifted copies holds almost none of their energy ...
    means = torch.stack([train[labels == c].mean(0) for c in range(k)])
    assert means[labels].square().sum() < 0.05 * train.square().sum()
    # ... and a linear model on pixels does not tell the classes apart on new images
    assert linear_accuracy(train, test, labels, k) < 0.45
    same = fixed.direct_delta(w, (k, 3, size, size))  # the control: one fixed pattern per class
    assert linear_accuracy(samples(same, 1, False), samples(same, 2, False), labels, k) > 0.9


def test_random_phase_fit_exports_one_shift_per_image_within_budget():
    g = torch.Generator().manual_seed(0)
    ds = ImageDataset(
        torch.randint(0, 256, (32, 3, 16, 16), generator=g, dtype=torch.uint8), torch.arange(32) % 2, ["a", "b"]
    )
    opts = dict(surrogate="small_cnn", surrogate_init="scratch", stages=[1, 1, 1], batch_size=16, direct_size=4)
    p = create_attack("bait", random_phase=True, luma=0.5, eot=["jpeg"], device="cpu", progress=False, **opts).fit(ds)
    assert p.kind == "samplewise" and p.delta.shape == (32, 3, 16, 16)
    assert p.delta.abs().max() <= p.eps + 1e-7
    # every image carries a shift of one of its class's two-dimensional patterns: images of a class
    # are circular shifts of each other (same sorted values), and not all at one phase
    a, b = p.delta[0], p.delta[2]
    assert torch.allclose(a.flatten().sort().values, b.flatten().sort().values, atol=1e-6)
    assert not all(torch.equal(p.delta[0], p.delta[i]) for i in range(0, 32, 2))
    out = quantize(ds.images, p.delta, p.eps).float() - ds.images.float()
    assert out.abs().max() <= 8


def test_an_ensemble_trains_every_member(monkeypatch):
    from unlearnable.attacks import common

    trained = []
    real = common.sgd_step

    def spy(model, *a, **k):
        trained.append(type(model).__name__ + str(id(model)))
        return real(model, *a, **k)

    from unlearnable.attacks import bait

    monkeypatch.setattr(bait, "sgd_step", spy)
    g = torch.Generator().manual_seed(0)
    ds = ImageDataset(
        torch.randint(0, 256, (32, 3, 16, 16), generator=g, dtype=torch.uint8), torch.arange(32) % 2, ["a", "b"]
    )
    create_attack(
        "bait",
        surrogate="small_cnn",
        surrogate_init="scratch",
        surrogates=["small_cnn"],
        stages=[2, 1, 1],
        batch_size=16,
        device="cpu",
        progress=False,
    ).fit(ds)
    assert len(trained) == 4 and len(set(trained)) == 2 and trained[0] != trained[1]
    with pytest.raises(ValueError, match="unknown model"):
        create_attack("bait", surrogates=["nope"])


def test_the_robust_preset_is_the_cpu_preset_hardened():
    cpu, robust = create_attack("bait", preset="cpu"), create_attack("bait", preset="robust")
    a, b = asdict(cpu.options), asdict(robust.options)
    assert {k for k in a if a[k] != b[k]} == {"eot"} and {"grayscale", "jpeg"} <= set(robust.options.eot)
    # and the same options are reachable from the paper preset
    paper = create_attack("bait", preset="paper", eot=robust.options.eot, luma=0.25)
    assert paper.options.parameterization == "generator" and paper.options.eot == robust.options.eot
    with pytest.raises(ValueError, match="unknown preset"):
        create_attack("em", preset="robust")


# The trainer's defenses that go with them.


def test_color_jitter_changes_colour_per_image_and_nothing_with_zero_strength():
    x = smooth_images(16)
    same = create_defense("color_jitter", brightness=0, contrast=0, saturation=0, hue=0)
    assert torch.allclose(same.batch(None, x, None, torch.Generator())[0], x)
    y, _ = create_defense("color_jitter").batch(None, x, None, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    change = (y - x).abs().mean((1, 2, 3))
    assert change.min() > 0 and change.std() > 0  # every image changed, each its own way
    # hue alone keeps the luma (a rotation of the chroma plane)
    h = color_jitter(x * 0.5 + 0.25, 0, 0, 0, 0.1, torch.Generator().manual_seed(1))
    assert torch.allclose(luma(h), luma(x * 0.5 + 0.25), atol=2e-3)
    with pytest.raises(ValueError, match="hue"):
        create_defense("color_jitter", hue=0.7)


def test_downscale_removes_fine_detail_and_keeps_smooth_content():
    n, size = 4, 32
    stripes = (torch.arange(size) % 2).float().view(1, 1, 1, size).expand(n, 3, size, size)
    smooth = smooth_images(n, size)
    images = ((smooth * 0.6 + 0.2 + 0.15 * (stripes - 0.5)) * 255).round().to(torch.uint8)
    ds = ImageDataset(images, torch.arange(n) % 2, ["a", "b"])
    out, _ = create_defense("downscale").prepare(ds, None)
    assert out.images.dtype == torch.uint8 and out.images.shape == images.shape
    detail = lambda im: (im.float()[..., 1:] - im.float()[..., :-1]).abs().mean()  # noqa: E731
    assert detail(out.images) < 0.3 * detail(images)
    assert (out.images.float() - smooth.mul(0.6).add(0.2).mul(255)).abs().mean() < 6
    with pytest.raises(ValueError, match="factor"):
        create_defense("downscale", factor=1.5)


def test_standardize_gives_every_image_channel_one_mean_and_spread_at_training_and_test():
    x = smooth_images(8) * torch.rand(8, 3, 1, 1) + torch.rand(8, 3, 1, 1) * 0.2
    d = create_defense("standardize")
    for y in (d.pre_augment(x), d.pre_test(x)):
        assert torch.allclose(y.mean((2, 3)), torch.full((8, 3), 0.5), atol=1e-5)
        assert torch.allclose(y.std((2, 3)), torch.full((8, 3), 0.25), atol=1e-4)
    assert torch.equal(standardize(x), d.pre_test(x))

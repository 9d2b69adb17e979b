import io

import numpy as np
import pytest
import torch
from PIL import Image

from unlearnable import evaluate
from unlearnable.data import ImageDataset
from unlearnable.defenses import DEFENSES, create_defense
from unlearnable.defenses.adversarial import pgd_linf
from unlearnable.defenses.projection import fit_linear, orthogonal_projector, project_out
from unlearnable.defenses.squeeze import bit_depth, grayscale, jpeg
from unlearnable.defenses.ueraser import strong_augment
from unlearnable.models import create_model


def smooth_set(n=40, k=4, size=16, seed=0):
    """Images with some structure (JPEG behaves differently on pure noise), labels cycling."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear")
    images = (base * 255).round().to(torch.uint8)
    return ImageDataset(images, torch.arange(n) % k, [f"c{i}" for i in range(k)])


def test_registry():
    assert {
        "grayscale",
        "jpeg",
        "bitdepth",
        "cutout",
        "cutmix",
        "mixup",
        "pgd_at",
        "ueraser",
        "projection",
        "linear_probe",
    } <= set(DEFENSES)
    assert create_defense(None) is None and create_defense("none") is None
    with pytest.raises(ValueError, match="unknown defense"):
        create_defense("nope")
    with pytest.raises(ValueError, match="no option"):
        create_defense("jpeg", qualty=3)
    with pytest.raises(ValueError, match="quality"):
        create_defense("jpeg", quality=0)


def test_grayscale_is_grey_and_matches_pil_luma():
    ds = smooth_set()
    g = grayscale(ds.images)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    pil = np.asarray(Image.fromarray(ds.images[0].permute(1, 2, 0).numpy()).convert("L")).astype(int)
    assert np.abs(g[0, 0].numpy().astype(int) - pil).max() <= 1


def test_jpeg_really_compresses():
    ds = smooth_set()
    out10, bytes10 = jpeg(ds.images, 10)
    out90, bytes90 = jpeg(ds.images, 90)
    assert out10.dtype == torch.uint8 and out10.shape == ds.images.shape
    assert bytes10 < bytes90 < ds.images.numel()
    err10 = (out10.float() - ds.images.float()).abs().mean()
    err90 = (out90.float() - ds.images.float()).abs().mean()
    assert err10 > err90 > 0  # lower quality, more loss
    # the decoder is PIL's: our output equals a direct PIL round trip
    buf = io.BytesIO()
    Image.fromarray(ds.images[3].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=10)
    assert np.array_equal(np.asarray(Image.open(buf)), out10[3].permute(1, 2, 0).numpy())


def test_bit_depth_keeps_top_bits():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16).contiguous()
    y = bit_depth(x, 2)
    assert sorted(y.unique().tolist()) == [0, 64, 128, 192]
    assert (y <= x).all() and ((x.int() - y.int()) < 64).all()


def test_squeeze_prepares_training_images_only():
    train, test = smooth_set(), smooth_set(seed=1)
    t2, s2 = create_defense("grayscale").prepare(train, test)
    assert torch.equal(t2.images[:, 0], t2.images[:, 2]) and s2 is test
    assert torch.equal(t2.labels, train.labels)


def test_projection_removes_the_fitted_directions():
    g = torch.Generator().manual_seed(0)
    ds = smooth_set(n=80)
    # class-wise patterns: the linear model finds them
    pattern = (torch.rand(4, 3, 16, 16, generator=g) * 2 - 1) * 24
    noisy = ds.with_images((ds.images.float() + pattern[ds.labels]).clamp(0, 255).round().to(torch.uint8))
    w = fit_linear(noisy.images, noisy.labels, 4, epochs=30, lr=0.1, batch_size=32, gen=g)
    assert ((noisy.images.flatten(1).float() / 255 @ w.T).argmax(1) == noisy.labels).float().mean() > 0.9
    basis = orthogonal_projector(w)
    assert basis.shape == (3 * 16 * 16, 4)
    assert torch.allclose(basis.T @ basis, torch.eye(4), atol=1e-5)
    x = noisy.images.float() / 255
    projected = project_out(x, basis)
    assert (projected.flatten(1) @ w.T).abs().max() < 1e-3 * (x.flatten(1) @ w.T).abs().max()
    d = create_defense("projection", epochs=5, batch_size=32)
    d.prepare(noisy, None)
    assert torch.allclose(d.pre_augment(x).flatten(1) @ d.basis, torch.zeros(80, 4), atol=1e-4)
    assert d.pre_test(x) is x  # test images as they are, unless asked
    d = create_defense("projection", epochs=5, batch_size=32, project_test=True)
    d.prepare(noisy, None)
    assert torch.allclose(d.pre_test(x).flatten(1) @ d.basis, torch.zeros(80, 4), atol=1e-4)
    with pytest.raises(ValueError, match="project_test"):
        create_defense("projection", project_test="yes")


def test_projection_keeps_most_of_clean_images():
    """The linear model starts as the reference's nn.Linear does. Started at zero, its rows lie in the
    span of the smooth training images, and projecting them out removes much more of every image
    (here 11% of the energy instead of 3%)."""

    def tinted(n, seed):  # classes differ in colour, as natural classes partly do
        ds = smooth_set(n=n, size=32, seed=seed)
        tint = torch.tensor([[40, 0, 0], [0, 40, 0], [0, 0, 40], [40, 40, 0]]).float()
        return ds.with_images((ds.images * 0.8 + tint[ds.labels][:, :, None, None]).round().to(torch.uint8))

    train = tinted(200, 0)
    w = fit_linear(
        train.images, train.labels, 4, epochs=20, lr=0.1, batch_size=64, gen=torch.Generator().manual_seed(0)
    )
    assert ((train.images.flatten(1).float() / 255 @ w.T).argmax(1) == train.labels).float().mean() > 0.8
    basis = orthogonal_projector(w)
    x = tinted(100, 1).images.flatten(1).float() / 255  # unseen images
    removed = ((x @ basis).pow(2).sum(1) / x.pow(2).sum(1)).mean()
    assert removed < 0.06


def test_adversarial_examples_stay_within_eps_and_raise_the_loss():
    torch.manual_seed(0)
    model = create_model("small_cnn", 4).eval()
    x = smooth_set().images[:16].float() / 255
    y = torch.arange(16) % 4
    adv = pgd_linf(model, x, y, 8 / 255, 5, 2 / 255, torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    ce = torch.nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(model(adv), y) > ce(model(x), y)
    model.train()
    pgd_linf(model, x, y, 8 / 255, 1, 2 / 255, torch.Generator().manual_seed(0))
    assert model.training  # modes restored


def test_cutout_cutmix_mixup():
    g = torch.Generator().manual_seed(0)
    model = create_model("small_cnn", 4)
    x = torch.rand(8, 3, 16, 16, generator=g) * 0.5 + 0.5  # no zeros before cutout
    y = torch.arange(8) % 4
    cut, t = create_defense("cutout").batch(model, x, y, g)
    zeros = (cut == 0).all(1).flatten(1).sum(1)
    assert torch.equal(t, y) and (zeros > 0).all() and (zeros <= 64).all()  # at most an 8x8 square at 16 px
    mixed, soft = create_defense("cutmix", prob=1.0).batch(model, x, y, g)
    assert soft.shape == (8, 4) and torch.allclose(soft.sum(1), torch.ones(8))
    mixed, soft = create_defense("mixup", prob=1.0).batch(model, x, y, g)
    assert soft.shape == (8, 4) and torch.allclose(soft.sum(1), torch.ones(8))
    lam = soft.max(1).values.min()
    assert mixed.min() >= 0.5 * min(lam, 1 - lam) and mixed.max() <= 1


def test_ueraser_trains_on_the_worst_copy():
    g = torch.Generator().manual_seed(0)
    model = create_model("small_cnn", 4)
    x, y = torch.rand(6, 3, 16, 16, generator=g), torch.arange(6) % 4
    aug = strong_augment(x, g, brightness=0.5, contrast=0.5, p=1.0)
    assert aug.shape == x.shape and aug.min() >= 0 and aug.max() <= 1 and not torch.allclose(aug, x)
    d = create_defense("ueraser", repeats=4)
    loss, out = d.loss(model, x, y, torch.Generator().manual_seed(1))
    one, _ = create_defense("ueraser", repeats=1).loss(model, x, y, torch.Generator().manual_seed(1))
    assert out.shape == (6, 4) and loss >= one - 1e-6  # the max over copies includes the first copy


@pytest.mark.parametrize("name", ["jpeg", "cutmix", "pgd_at", "ueraser", "projection"])
def test_defenses_train_a_victim(name):
    train, test = smooth_set(), smooth_set(seed=1)
    opts = {"pgd_at": {"steps": 1}, "ueraser": {"repeats": 2}, "projection": {"epochs": 2}}.get(name, {})
    rec = evaluate.run(
        train,
        test,
        victim="small_cnn",
        init="scratch",
        preset="cpu",
        device="cpu",
        progress=False,
        epochs=1,
        batch_size=8,
        defense=create_defense(name, **opts),
    )
    assert rec["defense"]["defense"] == name and 0 <= rec["final_test_acc"] <= 1


def test_test_images_pass_through_the_defense_at_inference():
    """The victim is tested on what the defense's pre_test makes of the clean test images."""
    from unlearnable.defenses.base import Defense

    class Blank(Defense):
        name = "blank"
        seen = []

        def pre_test(self, x):
            self.seen.append(x)
            return torch.zeros_like(x)

    train, test = smooth_set(), smooth_set(seed=1)
    rec = evaluate.run(
        train,
        test,
        victim="small_cnn",
        init="scratch",
        preset="cpu",
        device="cpu",
        progress=False,
        epochs=2,
        batch_size=8,
        defense=Blank(),
    )
    seen = torch.cat(Blank.seen)
    assert len(seen) == 2 * len(test.labels) and torch.equal(seen[: len(test.labels)], test.images.float() / 255)
    # every blank test image gets the same prediction: the accuracy is one class's share
    assert rec["final_test_acc"] in {float((test.labels == k).float().mean()) for k in range(4)}


def test_linear_probe_sets_the_protocol_and_needs_a_pretrained_backbone():
    assert create_defense("linear_probe").protocol == "linear"
    with pytest.raises(ValueError, match="pretrained"):
        evaluate.run(
            smooth_set(),
            smooth_set(seed=1),
            victim="small_cnn",
            init="scratch",
            device="cpu",
            progress=False,
            epochs=1,
            defense="linear_probe",
        )


@pytest.mark.parametrize(
    "name,opts,words",
    [
        ("jpeg", {"quality": 10.9}, "defense jpeg: option quality must be a whole number, got 10.9"),
        ("jpeg", {"quality": 0}, "defense jpeg: option quality must be from 1 to 95, got 0"),
        ("bitdepth", {"bits": 8}, "option bits must be from 1 to 7"),
        ("color_jitter", {"hue": 0.6}, "option hue must be from 0 to 0.5"),
        ("projection", {"project_test": "yes"}, "option project_test must be true or false"),
        ("downscale", {"factor": 1}, "option factor must be below 1"),
        ("grayscale", {"x": 1}, "defense grayscale has no option x; it takes no options"),
    ],
)
def test_defense_options_are_typed_and_checked_when_built(name, opts, words):
    with pytest.raises(ValueError) as e:
        create_defense(name, **opts)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert create_defense(name).settings()["defense"] == name

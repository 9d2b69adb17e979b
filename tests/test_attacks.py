import dataclasses

import pytest
import torch

from unlearnable.attacks import ATTACKS, create_attack
from unlearnable.attacks.bait import choose_targets
from unlearnable.data import ImageDataset
from unlearnable.perturbation import quantize, within_budget

TINY_BAIT = {
    "surrogate": "small_cnn",
    "surrogate_init": "scratch",
    "stages": [1, 1, 1],
    "batch_size": 8,
    "direct_lr": 0.1,
}
TINY_EM = {"surrogate": "small_cnn", "batch_size": 8, "max_rounds": 2, "train_steps": 2}


def tiny_set(n=24, k=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % k, [f"c{i}" for i in range(k)])


def fit(name, seed=0, size=16, **opts):
    return create_attack(name, seed=seed, device="cpu", progress=False, **opts).fit(tiny_set(size=size))


TINY_TAP = {"surrogate": "small_cnn", "surrogate_epochs": 1, "surrogate_batch_size": 8, "steps": 3, "batch_size": 8}
TINY_GUE = {"epochs": 2, "batch_size": 8, "inner_steps": 2, "unet_width": 4}
TINY_TUE = {"surrogate": "small_cnn", "epochs": 2, "batch_size": 8, "steps": 2, "train_steps": 2}
TINY_REM = {"surrogate": "small_cnn", "train_steps": 2, "batch_size": 8, "steps": 2, "eot": 2, "adv_steps": 1}
# name, tiny options, kind, norm, default budget
METHODS = [
    ("random", {}, "classwise", "linf", 8 / 255),
    ("random", {"kind": "samplewise"}, "samplewise", "linf", 8 / 255),
    ("em", TINY_EM, "classwise", "linf", 8 / 255),
    ("em", {**TINY_EM, "kind": "samplewise", "attack_steps": 2}, "samplewise", "linf", 8 / 255),
    ("tap", TINY_TAP, "samplewise", "linf", 8 / 255),
    ("rem", TINY_REM, "samplewise", "linf", 8 / 255),
    ("lsp", {"patch": 4}, "samplewise", "l2", (3 * 32 * 32) ** 0.5 * 6 / 255),
    ("ops", {}, "samplewise", "l0", 1),
    ("ar", {}, "samplewise", "l2", 1.0),
    ("bait", TINY_BAIT, "classwise", "linf", 8 / 255),
    ("gue", TINY_GUE, "samplewise", "linf", 8 / 255),
    ("tue", TINY_TUE, "samplewise", "linf", 8 / 255),
]
IDS = [f"{m[0]}-{m[2]}" for m in METHODS]


@pytest.mark.parametrize("name,opts,kind,norm,eps", METHODS, ids=IDS)
def test_budget_shape_and_determinism(name, opts, kind, norm, eps):
    p = fit(name, **opts)
    ds = tiny_set()
    rows = ds.num_classes if kind == "classwise" else len(ds)
    assert (p.kind, p.norm, p.delta.shape) == (kind, norm, (rows, 3, 16, 16))
    assert p.eps == pytest.approx(eps) and p.delta.abs().max() > 0
    protected = p.apply(ds)  # the 8-bit export path
    assert within_budget(ds.images, protected.images, p.eps, p.norm)
    if norm == "linf":
        assert (protected.images.int() - ds.images.int()).abs().max() <= 8
    assert torch.equal(p.delta, fit(name, **opts).delta)  # same seed, same bytes
    if name != "ops":  # OPS is a deterministic search: no randomness to vary
        assert not torch.equal(p.delta, fit(name, seed=1, **opts).delta)


@pytest.mark.parametrize(
    "name,opts",
    [(m[0], m[1]) for m in METHODS if m[2] == "samplewise"],
    ids=[i for i, m in zip(IDS, METHODS) if m[2] == "samplewise"],
)
def test_samplewise_indexes_by_sample_not_label(name, opts):
    """Regression: sample-wise noise indexed by class label (one loader of the EM code)."""
    ds = tiny_set()
    p = fit(name, **opts)
    same_class = (ds.labels == 0).nonzero().flatten()
    assert not torch.equal(p.delta[same_class[0]], p.delta[same_class[1]])
    protected = p.apply(ds)
    for i in (0, 5, 23):  # image i gets row i of the perturbation
        alone = quantize(ds.images[i : i + 1], p.delta[i : i + 1], p.eps, p.norm)
        assert torch.equal(protected.images[i], alone[0])


def test_pretrained_variants():
    em_star = create_attack("em*", device="cpu")
    assert em_star.options.surrogate == "efficientnet_lite0" and em_star.options.surrogate_init == "imagenet"
    assert create_attack("REM*", preset="paper").options.surrogate == "resnet18_imagenet"
    tap = create_attack("tap*", surrogate="efficientnet_lite1")
    assert tap.options.surrogate == "efficientnet_lite1"  # explicit wins
    with pytest.raises(ValueError, match="no pretrained variant"):
        create_attack("lsp*")


def test_budgets_by_norm_are_validated():
    with pytest.raises(ValueError, match="L0"):
        create_attack("ops", eps=0.5)
    with pytest.raises(ValueError, match="positive"):
        create_attack("ar", eps=-1)
    assert create_attack("ar", eps=2.0).eps == 2.0  # an L2 radius may exceed 1


def test_ops_sets_one_pixel_per_class_to_a_corner_colour():
    ds = tiny_set()
    p = fit("ops")
    protected = p.apply(ds).images.int()
    changed = (protected != ds.images.int()).any(1)  # (N, H, W)
    assert (changed.flatten(1).sum(1) <= 1).all()
    for c, pick in enumerate(p.meta["pixels"]):
        (px,) = pick
        members = (ds.labels == c).nonzero().flatten()
        colour = torch.tensor(px["colour"]) * 255
        assert (protected[members][:, :, px["row"], px["col"]] == colour).all()


def test_ar_processes_are_finite_and_normalized():
    from unlearnable.attacks.ar import sample_processes

    coeffs = sample_processes(10, 3, torch.Generator().manual_seed(0))
    assert torch.isfinite(coeffs).all() and coeffs.abs().max() < 1e3
    assert torch.allclose(coeffs.sum((2, 3)), torch.ones(10, 3), atol=1e-5)
    assert (coeffs[:, :, 2, 2] == 0).all()


def test_lsp_classes_are_linearly_separable():
    """A least-squares linear classifier on the noise alone fits every training image."""
    from unlearnable.attacks.lsp import lsp_codes

    labels = torch.arange(200) % 10
    codes = lsp_codes(labels, 10, 48, 10.0, torch.Generator().manual_seed(0))
    X = torch.cat([codes, torch.ones(200, 1)], 1)
    W = torch.linalg.lstsq(X, torch.nn.functional.one_hot(labels, 10).float()).solution
    assert ((X @ W).argmax(1) == labels).float().mean() == 1.0


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown method"):
        create_attack("nope")
    with pytest.raises(ValueError, match="no option"):
        create_attack("bait", stagez=[1, 1, 1])
    with pytest.raises(ValueError, match="eps"):
        create_attack("bait", eps=0)
    with pytest.raises(ValueError, match="stages"):
        create_attack("bait", device="cpu", progress=False, **{**TINY_BAIT, "stages": [1, 1]}).fit(tiny_set())
    assert {"random", "em", "tap", "rem", "lsp", "ops", "ar", "bait", "gue", "tue"} <= set(ATTACKS)


def test_targets_are_incorrect():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 10)
    y = torch.randint(0, 10, (50,))
    hard = choose_targets(0, logits, y, 10, g)
    rand = choose_targets(1, None, y, 10, g)
    least = choose_targets(2, logits, y, 10, g)
    for t in (hard, rand, least):
        assert (t != y).all()
    masked = logits.scatter(1, y[:, None], float("-inf"))
    assert torch.equal(hard, masked.argmax(1))
    assert (logits.gather(1, least[:, None]) <= logits.gather(1, hard[:, None])).all()


def test_stage_boundaries():
    a = create_attack("bait", progress=False, stages=[2, 3, 1])
    assert [a.stage_of(e) for e in range(6)] == [0, 0, 1, 1, 1, 2]


@pytest.mark.parametrize("name,opts,kind,norm,eps", METHODS, ids=IDS)
def test_every_method_at_64_px(name, opts, kind, norm, eps):
    """Larger images: the perturbation is stored at the images' size and holds its budget."""
    ds = tiny_set(n=12, size=64)
    p = create_attack(name, device="cpu", progress=False, **opts).fit(ds)
    rows = ds.num_classes if kind == "classwise" else len(ds)
    assert p.delta.shape == (rows, 3, 64, 64) and p.delta.abs().max() > 0
    assert within_budget(ds.images, p.apply(ds).images, p.eps, p.norm)


def test_bait_generator_at_64_px_and_input_sizes():
    g = fit("bait", size=64, **{**TINY_BAIT, "parameterization": "generator", "generator_width": 0.125})
    assert g.delta.shape == (3, 3, 64, 64) and g.delta.abs().max() <= 8 / 255 + 1e-7
    a = fit("bait", **{**TINY_BAIT, "input_sizes": [16, 24]})
    assert a.delta.shape == (3, 3, 16, 16) and not torch.equal(a.delta, fit("bait", **TINY_BAIT).delta)
    for bad in ([], [4], "32", [16.5]):
        with pytest.raises(ValueError, match="input_sizes"):
            fit("bait", **{**TINY_BAIT, "input_sizes": bad})


def test_bait_deeper_lookahead_and_more_surrogate_steps():
    base = fit("bait", **TINY_BAIT).delta
    for opts in ({"lookahead_steps": 3}, {"surrogate_steps": 2}, {"lookahead_steps": 2, "hypergradient": True}):
        p = fit("bait", **{**TINY_BAIT, **opts})
        assert p.delta.abs().max() <= 8 / 255 + 1e-7 and not torch.equal(p.delta, base)
    for bad in ({"lookahead_steps": 0}, {"surrogate_steps": 1.5}):
        with pytest.raises(ValueError, match="steps must be (a whole number|at least 1)"):
            fit("bait", **{**TINY_BAIT, **bad})


def test_bait_cpu_preset_is_bit_identical_across_runs():
    # At the preset's batch size, advanced indexing's gradient (delta[t]) was accumulated from
    # parallel CPU threads in completion order: two same-seed runs ended with different deltas.
    ds = tiny_set(n=384, k=10, size=32)
    runs = [
        create_attack("bait", preset="cpu", device="cpu", progress=False, stages=[1, 1, 0], images_per_epoch=256)
        .fit(ds)
        .delta
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


def test_bait_lookahead_keeps_each_weights_memory_layout():
    # EfficientNet-Lite0's pretrained depthwise weights are stored with non-canonical strides, and
    # its convolutions run ~3x slower on CPU on the canonical ones that arithmetic returns
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, groups=3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    model(torch.rand(1, 3, 8, 8))
    w = model[0].weight
    model[0].weight = torch.nn.Parameter(w.detach().as_strided(w.shape, (9, 1, 3, 1)))  # C=1: same pixels
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    names = [k for k, _ in model.named_parameters()]
    bait = create_attack("bait", device="cpu", augment=False, lookahead_lr=0.1)
    for differentiable in (False, True):
        fast = bait._lookahead(model, names, [(x, y, torch.arange(4))], torch.zeros(3, 3, 8, 8), None, differentiable)
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), list(model.parameters()))
        for (k, p), g in zip(model.named_parameters(), grads):
            assert fast[k].stride() == p.stride(), k
            assert torch.allclose(fast[k], p - 0.1 * g)


def test_bait_generator_and_hypergradient_run():
    g = fit("bait", **{**TINY_BAIT, "parameterization": "generator", "generator_width": 0.125})
    h = fit("bait", **{**TINY_BAIT, "hypergradient": True})
    d = fit("bait", **TINY_BAIT)
    for p in (g, h):
        assert p.delta.shape == (3, 3, 16, 16) and p.delta.abs().max() <= 8 / 255 + 1e-7
    assert not torch.equal(h.delta, d.delta)  # the hypergradient changes the update


def test_bait_resumes_from_checkpoint(tmp_path):
    ckpt = tmp_path / "bait.pt"
    full = create_attack("bait", device="cpu", progress=False, **TINY_BAIT).fit(tiny_set())
    killed = create_attack("bait", device="cpu", progress=False, checkpoint=ckpt, **TINY_BAIT)
    rounds = []

    def killed_after_two(attack, state):  # the process dies after round 2 and its checkpoint
        rounds.append(state.round)
        if state.round == 2:
            raise KeyboardInterrupt

    killed.on_round.append(killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(tiny_set())
    assert rounds == [1, 2] and ckpt.exists()
    before = torch.load(ckpt, weights_only=True)["elapsed"]
    attack = create_attack("bait", device="cpu", progress=False, checkpoint=ckpt, **TINY_BAIT)
    attack.on_round.append(lambda a, state: rounds.append(state.round))
    resumed = attack.fit(tiny_set())
    assert rounds == [1, 2, 3]  # the resumed fit ran the one round left
    assert torch.equal(full.delta, resumed.delta)
    assert ckpt.exists()  # a fit keeps its checkpoint: the protect pipeline removes it once the output is in place
    assert attack.resumed_seconds == before > 0  # the time spent before the kill, for the manifest


def test_gue_objective_bome_weight_and_generator():
    """GUE's pieces: f is the largest cross-entropy towards a wrong class; the UNet keeps any size
    and stays in [-1, 1]; BOME's lambda is relu((eta |grad q|^2 - <grad f, grad q>) / |grad q|^2)
    (zero when grad f already points along grad q by more than eta |grad q|^2)."""
    import torch.nn.functional as F

    from unlearnable.attacks.generator import UNet
    from unlearnable.attacks.gue import GUE, wrong_class_bound

    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    brute = torch.stack(
        [max(F.cross_entropy(logits[i : i + 1], torch.tensor([k])) for k in range(4) if k != y[i]) for i in range(6)]
    )
    assert wrong_class_bound(logits, y) == pytest.approx(brute.mean().item(), rel=1e-5)
    net = UNet(4)
    out = net(torch.rand(2, 3, 21, 30))
    assert out.shape == (2, 3, 21, 30) and out.abs().max() <= 1
    attack = create_attack("gue", device="cpu", progress=False, **TINY_GUE)
    assert isinstance(attack, GUE) and attack.passes(100) == 2 * 100 * (2 + 4)
    history = fit("gue", **TINY_GUE).meta["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all(h["lambda"] >= 0 for h in history)
    with pytest.raises(ValueError, match="eta"):
        create_attack("gue", progress=False, eta=0)


def test_tue_csd_and_contrastive_loss():
    """CSD is the Davies-Bouldin index of the noise over the classes present (the reference's loop,
    vectorized), and TUE's steps make the noise more separable by class; NT-Xent prefers views
    that agree."""
    from unlearnable.attacks.tue import csd, nt_xent

    g = torch.Generator().manual_seed(0)
    d, y = torch.randn(30, 3, 4, 4, generator=g), torch.arange(30) % 3
    flat = d.flatten(1)
    cs = [flat[y == c].mean(0) for c in range(3)]
    sp = [(flat[y == c] - cs[c]).norm(dim=1).mean() for c in range(3)]
    ref = (
        sum((sp[i] + sp[j] + 1e-5) / ((cs[i] - cs[j]).norm() + 1e-5) for i in range(3) for j in range(3) if i != j) / 6
    )
    assert csd(d, y, 4).item() == pytest.approx(ref.item(), rel=1e-4)  # class 3 absent: left out
    assert csd(d, torch.zeros(30, dtype=torch.long), 3).item() == 0  # one class: nothing to separate
    z = torch.randn(16, 8, generator=g)
    assert nt_xent(z, z + 0.01 * torch.randn(16, 8, generator=g), 0.5) < nt_xent(
        z, torch.randn(16, 8, generator=g), 0.5
    )
    ds = tiny_set(n=24, k=3, size=16)
    only_csd = {**TINY_TUE, "ssl_weight": 0.0, "steps": 5, "epochs": 3}
    p = create_attack("tue", device="cpu", progress=False, **only_csd).fit(ds)
    start = create_attack("tue", device="cpu", progress=False, **{**only_csd, "steps": 1, "epochs": 1}).fit(ds)
    assert csd(p.delta, ds.labels, 3) < csd(start.delta, ds.labels, 3)
    with pytest.raises(ValueError, match="not both 0"):
        create_attack("tue", progress=False, ssl_weight=0.0, csd_weight=0.0)


@pytest.mark.parametrize(
    "name,opts,words",
    [
        ("em", {"kind": "blockwise"}, "option kind must be one of classwise, samplewise, got 'blockwise'"),
        ("tap", {"steps": 2.5}, "option steps must be a whole number, got 2.5 (e.g. --set steps=40)"),
        ("em", {"attack_fraction": 1.5}, "option attack_fraction must be at most 1, got 1.5"),
        ("rem", {"adv_steps": 0}, "option adv_steps must be greater than 0"),
        ("bait", {"eot": "grayscale"}, "option eot must be a list of names like [a, b] (or null)"),
        ("bait", {"stages": [1, "2", 3]}, "option stages must be a list like [1, 2]"),
        ("bait", {"hypergradient": 1}, "option hypergradient must be true or false"),
        ("lsp", {"patch": None}, "option patch must be a whole number, got None"),
        ("tue", {"csd_weight": -1}, "option csd_weight must be at least 0"),
        ("em", {"nope": 1}, "em has no option nope; its options are kind, surrogate"),
        ("ops", {"x": 1}, "ops has no option x; it takes no options"),
    ],
)
def test_options_are_typed_and_checked_when_the_method_is_built(name, opts, words):
    with pytest.raises(ValueError) as e:
        create_attack(name, **opts)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_presets_are_values_of_the_options_and_none_resolves_per_kind():
    em = create_attack("em", kind="samplewise")
    assert (em.options.attack_steps, em.options.attack_fraction, em.options.max_rounds) == (10, 1.0, 15)
    assert create_attack("em", preset="paper").options.max_rounds == 100
    with pytest.raises(dataclasses.FrozenInstanceError):  # an attack's options are not changed in place
        em.options.kind = "classwise"
    assert create_attack("bait", preset="robust").settings()["eot"] == ("grayscale", "jpeg")

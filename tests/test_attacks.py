import pytest
import torch

from unlearnable.attacks import ATTACKS, create_attack
from unlearnable.attacks import bait as bait_module
from unlearnable.attacks.bait import choose_targets
from unlearnable.data import ImageDataset

TINY_BAIT = {"surrogate": "small_cnn", "surrogate_init": "scratch", "stages": [1, 1, 1], "batch_size": 8,
             "direct_lr": 0.1}
TINY_EM = {"surrogate": "small_cnn", "batch_size": 8, "max_rounds": 2, "train_steps": 2}


def tiny_set(n=24, k=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % k, [f"c{i}" for i in range(k)])


def fit(name, seed=0, **opts):
    return create_attack(name, seed=seed, device="cpu", progress=False, **opts).fit(tiny_set())


@pytest.mark.parametrize("name,opts", [("random", {}), ("em", TINY_EM), ("bait", TINY_BAIT)])
def test_classwise_budget_and_determinism(name, opts):
    p = fit(name, **opts)
    ds = tiny_set()
    assert p.kind == "classwise" and p.delta.shape == (ds.num_classes, 3, 16, 16)
    assert p.delta.abs().max() <= 8 / 255 + 1e-7
    assert p.delta.abs().max() > 0
    protected = p.apply(ds)
    assert (protected.images.int() - ds.images.int()).abs().max() <= 8
    assert torch.equal(p.delta, fit(name, **opts).delta)  # same seed, same bytes
    assert not torch.equal(p.delta, fit(name, seed=1, **opts).delta)


def test_random_samplewise_indexes_by_sample():
    p = fit("random", kind="samplewise")
    assert p.kind == "samplewise" and p.delta.shape[0] == len(tiny_set())


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown method"):
        create_attack("nope")
    with pytest.raises(ValueError, match="no option"):
        create_attack("bait", stagez=[1, 1, 1])
    with pytest.raises(ValueError, match="eps"):
        create_attack("bait", eps=0)
    with pytest.raises(ValueError, match="stages"):
        create_attack("bait", device="cpu", progress=False, **{**TINY_BAIT, "stages": [1, 1]}).fit(tiny_set())
    assert {"random", "em", "bait"} <= set(ATTACKS)


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


def test_bait_generator_and_hypergradient_run():
    g = fit("bait", **{**TINY_BAIT, "parameterization": "generator", "generator_width": 0.125})
    h = fit("bait", **{**TINY_BAIT, "hypergradient": True})
    d = fit("bait", **TINY_BAIT)
    for p in (g, h):
        assert p.delta.shape == (3, 3, 16, 16) and p.delta.abs().max() <= 8 / 255 + 1e-7
    assert not torch.equal(h.delta, d.delta)  # the hypergradient changes the update


def test_bait_resumes_from_checkpoint(tmp_path, monkeypatch, dies_on_call):
    ckpt = tmp_path / "bait.pt"
    full = create_attack("bait", device="cpu", progress=False, **TINY_BAIT).fit(tiny_set())
    real_step = bait_module.sgd_step
    monkeypatch.setattr(bait_module, "sgd_step", dies_on_call(real_step, 2))
    with pytest.raises(KeyboardInterrupt):
        create_attack("bait", device="cpu", progress=False, checkpoint=ckpt, **TINY_BAIT).fit(tiny_set())
    assert ckpt.exists()
    monkeypatch.setattr(bait_module, "sgd_step", real_step)
    resumed = create_attack("bait", device="cpu", progress=False, checkpoint=ckpt, **TINY_BAIT).fit(tiny_set())
    assert torch.equal(full.delta, resumed.delta)
    assert not ckpt.exists()

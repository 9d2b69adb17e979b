"""PIL (attacks/pil.py): a method added as one file, checked through the base class's hooks."""

import pytest
import torch

from unlearnable.attacks import create_attack
from unlearnable.data import ImageDataset
from unlearnable.perturbation import quantize, within_budget

TINY = {"surrogate_epochs": 20, "surrogate_lr": 0.05, "surrogate_batch_size": 32, "steps": 10, "batch_size": 32}


def coloured_set(n=96, k=3, size=16, seed=0) -> ImageDataset:
    """Random textures with a faint per-class colour cast: something a linear model can learn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    cast = torch.eye(3)[labels][:, :, None, None] * 40
    images = (torch.rand((n, 3, size, size), generator=g) * 180 + cast).round().to(torch.uint8)
    return ImageDataset(images, labels, [f"c{i}" for i in range(k)])


def test_pil_noise_carries_the_class_for_its_linear_model_and_keeps_the_budget():
    ds = coloured_set()
    attack = create_attack("pil", device="cpu", progress=False, **TINY)
    seen = {}
    attack.on_round.append(lambda a, state: seen.setdefault("state", state))
    p = attack.fit(ds)
    assert p.kind == "samplewise" and p.delta.shape == ds.images.shape
    protected = quantize(ds.images, p.delta, p.eps)
    assert within_budget(ds.images, protected, p.eps, "linf")
    state = seen["state"]
    model = state.model
    x = ds.images.float() / 255
    noise = x - (x + p.delta)  # the protected image is x - noise
    with torch.no_grad():
        clean = model(x).argmax(1).eq(ds.labels).float().mean()
        alone = model(noise).argmax(1).eq(ds.labels).float().mean()
        left = model(x + p.delta).softmax(1).amax(1).mean()
        before = model(x).softmax(1).amax(1).mean()
    assert clean > 0.6  # the linear model learned the clean images first
    assert alone > 0.9  # the noise alone reads as its class
    assert left < before  # and the image it leaves is less certain to it
    assert len(state.history) == 0 and state.round == 3  # one round per batch of 32


def test_pil_is_deterministic_and_resumes_bit_for_bit(tmp_path):
    ds = coloured_set()
    full = create_attack("pil", device="cpu", progress=False, **TINY).fit(ds)
    again = create_attack("pil", device="cpu", progress=False, **TINY).fit(ds)
    assert torch.equal(full.delta, again.delta)
    other = create_attack("pil", seed=1, device="cpu", progress=False, **TINY).fit(ds)
    assert not torch.equal(full.delta, other.delta)
    ckpt = tmp_path / "pil.pt"
    killed = create_attack("pil", device="cpu", progress=False, checkpoint=ckpt, **{**TINY, "batch_size": 16})

    def dies(attack, state):
        if state.round == 2:
            raise KeyboardInterrupt

    killed.on_round.append(dies)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(ds)
    small = create_attack("pil", device="cpu", progress=False, **{**TINY, "batch_size": 16}).fit(ds)
    torch.manual_seed(1234)  # a new process starts with other random state
    resumed = create_attack("pil", device="cpu", progress=False, checkpoint=ckpt, **{**TINY, "batch_size": 16})
    assert torch.equal(resumed.fit(ds).delta, small.delta)  # from the checkpoint the warm-up left


def test_pil_options_are_checked():
    with pytest.raises(ValueError, match="option balance must be from 0 to 1"):
        create_attack("pil", balance=1.5)

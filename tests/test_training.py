import pytest
import torch

from unlearnable import evaluate, training
from unlearnable.data import ImageDataset
from unlearnable.training import TrainConfig, lr_factor


def blobs(n_per_class=16, k=3, size=16, seed=0):
    """Classes that differ in mean colour: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(k).repeat_interleave(n_per_class)
    base = (labels.float() / (k - 1) * 160 + 40).view(-1, 1, 1, 1)
    images = (base + torch.randn((len(labels), 3, size, size), generator=g) * 20).clamp(0, 255).to(torch.uint8)
    return ImageDataset(images, labels, [f"c{i}" for i in range(k)])


def run(**kw):
    return evaluate.run(
        blobs(),
        blobs(seed=1),
        init="scratch",
        preset="cpu",
        seed=0,
        device="cpu",
        progress=False,
        epochs=3,
        batch_size=16,
        **kw,
    )


def strip(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_record_has_final_and_best():
    rec = run()
    tests = [h["test_acc"] for h in rec["history"]]
    assert rec["final_test_acc"] == tests[-1] and rec["best_test_acc"] == max(tests)
    assert rec["best_test_acc"] > 0.6  # mean-colour classes are learnable
    assert rec["victim"] == "small_cnn" and rec["n_train"] == 48


def test_training_is_reproducible():
    assert strip(run()["history"]) == strip(run()["history"])


def test_resume_matches_uninterrupted(tmp_path, monkeypatch, dies_on_call):
    full = run()
    ckpt = tmp_path / "ckpt.pt"
    real = training.accuracy
    monkeypatch.setattr(training, "accuracy", dies_on_call(real, 2))
    with pytest.raises(KeyboardInterrupt):
        run(checkpoint=ckpt)
    monkeypatch.setattr(training, "accuracy", real)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1 and state["elapsed"] > 0
    resumed = run(checkpoint=ckpt)
    assert strip(resumed["history"]) == strip(full["history"])
    # the reported time is the whole training's, the epoch done before the kill included
    assert resumed["resumed_from_epoch"] == 1 and full["resumed_from_epoch"] == 0
    assert resumed["seconds"] >= sum(h["seconds"] for h in resumed["history"]) > 0


def test_linear_probe_trains_only_the_head():
    from unlearnable.models import create_model

    model = create_model("small_cnn", 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training.train_classifier(
        model,
        blobs(),
        TrainConfig(epochs=1, batch_size=16, lr=0.1),
        protocol="linear",
        device=torch.device("cpu"),
        progress=False,
    )
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}


def test_schedules_and_bad_config():
    cfg = TrainConfig(schedule="onecycle", warmup=0.1)
    assert lr_factor(cfg, 0, 100) < lr_factor(cfg, 9, 100) == pytest.approx(1.0)
    assert lr_factor(cfg, 99, 100) < 0.01
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="linear probe"):
        evaluate.run(blobs(), blobs(), init="scratch", protocol="linear")


def test_compile_option_compiles_the_victim_and_trains_the_same(monkeypatch):
    compiled = []

    def fake_compile(module):  # records the call; runs eager (a real compile takes minutes on CPU)
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    rec = run(compile=True)
    assert len(compiled) == 1 and rec["config"]["compile"] is True
    assert strip(rec["history"]) == strip(run()["history"]) and len(compiled) == 1


def test_resident_leaves_cpu_sets_where_they_are():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    assert training.resident(x, torch.device("cpu")) is x


@pytest.mark.cuda
def test_resident_moves_a_set_that_fits_onto_the_gpu_and_pins_what_does_not(monkeypatch):
    dev = torch.device("cuda", 0)
    x = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    assert training.resident(x, dev).device == dev
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (x.numel() * 2, x.numel() * 4))
    assert training.resident(x, dev) is x  # over a quarter of the free memory: stays on the CPU
    y = training.to_float(x[:8], dev)
    assert y.device == dev and y.dtype == torch.float32

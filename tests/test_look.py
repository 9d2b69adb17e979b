"""Looks (look.py): the budget map, grey photos, smooth patterns, the fit through the map, and
the visibility scores (visibility.py)."""

import json
import re

import numpy as np
import pytest
import torch
from cli_helpers import sets
from PIL import Image

from unlearnable.attacks import create_attack
from unlearnable.cli import main
from unlearnable.data import ImageDataset
from unlearnable.look import LOOKS, Look, budget_map, is_grey, periodic_spline, shaped
from unlearnable.perturbation import Perturbation
from unlearnable.photos import draw, open_upright, photo_budget

SHORT_BAIT = sets(stages="[1,1,1]", images_per_epoch=32, batch_size=16)


def half_textured(h: int = 300, w: int = 200, seed: int = 0) -> np.ndarray:
    """Left half a flat grey-blue wall, right half strong random texture."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:, : w // 2] = (120, 130, 150)
    img[:, w // 2 :] = rng.integers(16, 240, (h, w - w // 2, 3))  # room for the whole change
    return img


def test_budget_map_is_floor_on_flat_areas_and_whole_in_texture():
    look = LOOKS["invisible"]
    img = torch.from_numpy(half_textured()).permute(2, 0, 1)[None]
    m = budget_map(img, look)[0, 0]
    assert m.shape == (300, 200)
    assert float(m.min()) >= look.floor - 1e-6 and float(m.max()) <= 1 + 1e-6
    assert torch.allclose(m[:, :60], torch.full_like(m[:, :60], look.floor))
    assert float(m[:, 150:].min()) > 0.99
    assert torch.equal(budget_map(img, LOOKS["strong"]), torch.ones_like(m)[None, None])


def test_photo_budget_in_strips_equals_the_whole_photo():
    img = half_textured(700, 90, seed=1)  # taller than STRIP_ROWS: three strips with context rows
    img[300:320] = 255  # an edge near a strip boundary
    look = LOOKS["invisible"]
    whole = budget_map(torch.from_numpy(img).permute(2, 0, 1)[None], look)[0, 0].numpy()
    assert np.allclose(photo_budget(img, look), whole, atol=1e-5)


def test_periodic_spline_is_a_bounded_smooth_interpolation():
    a = periodic_spline(64, 8)
    assert torch.all(a >= 0) and torch.allclose(a.sum(1), torch.ones(64))
    grid = torch.sign(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))
    smooth = a @ grid @ a.T
    nearest = grid.repeat_interleave(8, 0).repeat_interleave(8, 1)
    assert float(smooth.abs().max()) <= 1 + 1e-6
    step = lambda x: float(torch.cat([(x - x.roll(1, 0)).abs().flatten(), (x - x.roll(1, 1)).abs().flatten()]).max())
    assert step(nearest) == 2.0 and step(smooth) < 0.25  # constant cells jump by the whole range; the spline never


def test_grey_images_get_a_grey_change_and_the_map_scales_it():
    delta = torch.randn(2, 3, 4, 4)
    grey = torch.tensor([True, False])
    out = shaped(delta, torch.full((2, 1, 4, 4), 0.5), grey)
    assert torch.allclose(out[0, 0], out[0, 1]) and torch.allclose(out[0, 1], out[0, 2])
    assert torch.allclose(out[0, 0], 0.5 * delta[0].mean(0))
    assert torch.allclose(out[1], 0.5 * delta[1])
    imgs = torch.zeros(3, 3, 2, 2, dtype=torch.uint8)
    imgs[1, 0] = 3  # channels 3 levels apart: colour
    imgs[2, 0] = 2  # 2 levels: the chroma noise of a grey JPEG, still grey
    assert is_grey(imgs).tolist() == [True, False, True]


def test_apply_with_a_look_holds_the_budget_after_rounding_and_leaves_flat_areas_lighter():
    img = torch.from_numpy(half_textured(32, 96)).permute(2, 0, 1)[None].repeat(4, 1, 1, 1).contiguous()
    img[3] = img[3, :1].expand(3, -1, -1)  # a grey image
    ds = ImageDataset(img, torch.tensor([0, 1, 0, 1]), ["a", "b"])
    look = LOOKS["invisible"]
    looked = ImageDataset(ds.images, ds.labels, ds.classes, None, budget_map(ds.images, look))
    delta = torch.full((2, 3, 32, 96), 8 / 255)
    delta[1] = -8 / 255
    p = Perturbation(delta, 8 / 255)
    out = p.apply(looked).images.int() - img.int()
    assert int(out.abs().max()) <= 8
    flat, texture = out[:, :, :, :16].abs(), out[:, :, :, 70:].abs()  # the map's blur reaches 18 px
    assert int(flat.max()) <= round(look.floor * 8) + 1 < 8 and int(texture.max()) == 8
    assert torch.equal(out[3, 0], out[3, 1]) and torch.equal(out[3, 1], out[3, 2])
    plain = p.apply(ds).images.int() - img.int()  # no look: the whole budget, colour on the grey image too
    assert int(plain[:, :, :, :16].abs().min()) == 8


def test_a_look_changes_what_a_checkpoint_belongs_to():
    img = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    ds = ImageDataset(img, torch.tensor([0, 1, 0, 1]), ["a", "b"])
    looked = ImageDataset(img, ds.labels, ds.classes, None, budget_map(img, LOOKS["invisible"]))
    assert ds.digest() != looked.digest()
    assert looked.subset([1, 2]).budget.shape == (2, 1, 8, 8)


def test_bait_fits_through_the_budget_map_and_its_smooth_grid_stays_in_budget():
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=gen)
    img[:, :, :, :16] = 128  # flat left halves
    labels = torch.arange(32) % 2
    ds = ImageDataset(img, labels, ["a", "b"], None, budget_map(img, LOOKS["invisible"]))
    kw = dict(preset="cpu", seed=0, progress=False, stages=[1, 1, 1], images_per_epoch=32, batch_size=16)
    smooth = create_attack("bait", smooth=True, **kw).fit(ds)
    assert float(smooth.delta.abs().max()) <= 8 / 255 + 1e-7
    d = smooth.delta * 255  # no jump between neighbouring pixels near the budget (constant cells jump up to 16)
    assert float((d - d.roll(1, 3)).abs().max()) < 4
    blocky = create_attack("bait", **kw).fit(ds)
    plain = create_attack("bait", **kw).fit(ImageDataset(img, labels, ["a", "b"]))
    assert not torch.equal(blocky.delta, plain.delta)  # the map is in the fit, not only in the drawing


@pytest.fixture(scope="module")
def grey_and_colour(tmp_path_factory):
    root = tmp_path_factory.mktemp("bw") / "photos"
    (root / "bw").mkdir(parents=True)
    (root / "colour").mkdir()
    y, x = np.mgrid[0:240, 0:360]
    grey = ((x + y) * 255 // 600).astype(np.uint8)
    Image.fromarray(grey, "L").save(root / "bw" / "street.jpg", quality=92)
    Image.fromarray(np.stack([grey] * 3, -1)).save(root / "bw" / "scan.png")
    Image.fromarray(half_textured(240, 360)).save(root / "colour" / "wall.jpg", quality=92)
    Image.fromarray(half_textured(300, 200, seed=2)).save(root / "colour" / "wall2.png")
    return root


@pytest.mark.parametrize("fmt", ["png", "jpeg", "same"])
def test_grey_photos_come_back_grey_in_every_format(grey_and_colour, tmp_path, fmt):
    out = tmp_path / "out"
    args = ["protect", "--data", str(grey_and_colour), "--method", "bait", *SHORT_BAIT, "--format", fmt]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["look"]["name"] == "invisible" and m["settings"]["smooth"] is True
    for name, e in m["photo_files"].items():
        pixels = open_upright(out / name, name)[0].astype(np.int16)
        spread = max(np.abs(pixels[..., 0] - pixels[..., 1]).max(), np.abs(pixels[..., 1] - pixels[..., 2]).max())
        assert e["grey"] == name.startswith("bw/")
        if e["grey"]:
            assert spread == 0, name
            with Image.open(out / name) as img:  # a file stored grey stays one channel; an RGB one, RGB
                assert img.mode == ("L" if "street" in name else "RGB"), (name, img.mode)
        else:
            assert spread > 0
    assert main(["verify", str(out), "--data", str(grey_and_colour)]) == 0


def test_looks_on_photos_and_benchmark_sets(grey_and_colour, tmp_path, capsys):
    assert main(["protect", "--data", str(grey_and_colour), "--look", "none", "--out", str(tmp_path / "x")]) != 0
    assert "--look none is the benchmark protocol" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["protect", "--data", str(grey_and_colour), "--look", "subtle", "--plan"]) == 0
    assert "look subtle: smooth patterns, half the budget on flat areas" in capsys.readouterr().out
    strong = tmp_path / "strong"
    assert (
        main(
            [
                "protect",
                "--data",
                str(grey_and_colour),
                "--method",
                "random",
                "--look",
                "strong",
                "--out",
                str(strong),
                "--quiet",
            ]
        )
        == 0
    )
    m = json.loads((strong / "manifest.json").read_text())
    assert m["look"]["name"] == "strong" and m["max_abs_change_0_255"] == 8


def test_draw_with_a_look_is_lighter_on_the_flat_half():
    img = half_textured(400, 600)
    delta = torch.full((3, 16, 16), 8 / 255)
    out, top = draw(img, delta, 8 / 255, look=LOOKS["invisible"])
    change = out.astype(np.int16) - img
    assert top == 8 and int(change[:, :250].max()) <= 3 and int(change[:, 350:].min()) >= 7
    plain, _ = draw(img, delta, 8 / 255)
    assert int((plain.astype(np.int16) - img)[:, :250].min()) == 8


def test_visibility_scores():
    vis = pytest.importorskip("unlearnable.visibility")
    pytest.importorskip("ssimulacra2")
    pytest.importorskip("colour")
    img = half_textured(200, 300)
    box = vis.smoothest_box(img, 96)
    assert box[2] <= 150  # the flat half
    same = vis.score(img, img)
    assert same["ssimulacra2_100"] == pytest.approx(100) and same["ssimulacra2_screen"] == pytest.approx(100)
    assert same["delta_e_flat_screen"]["mean"] == pytest.approx(0, abs=1e-9)
    shifted = img.copy()
    shifted[:, :150, 0] += 8  # a colour shift on the wall: seen
    s = vis.score(img, shifted)
    assert s["ssimulacra2_100"] < 90 and s["delta_e_flat_100"]["mean"] > 1
    assert vis.fit_to_screen(np.zeros((100, 4000, 3), np.uint8)).shape == (48, 1920, 3)


def test_a_benchmark_set_keeps_the_protocol_unless_a_look_is_asked(make_image_folder, tmp_path):
    from unlearnable.protect import protect

    root = make_image_folder(tmp_path / "set", ["a", "b"], {"train": 6})
    for i, path in enumerate(sorted(root.rglob("*.png"))):  # flat images: the look's map is its floor
        Image.fromarray(np.full((16, 16, 3), 40 + 10 * i, np.uint8)).save(path)
    kw = dict(method="random", image_size=16, progress=False)
    plain = protect(root, tmp_path / "plain", **kw)
    looked = protect(root, tmp_path / "looked", look="subtle", **kw)
    assert plain["look"] is None and looked["look"]["name"] == "subtle"
    assert plain["max_abs_change_0_255"] == 8 and looked["max_abs_change_0_255"] == 4  # subtle: half on flat
    assert main(["verify", str(tmp_path / "looked")]) == 0 and main(["verify", str(tmp_path / "plain")]) == 0


def test_custom_looks_are_parsed_checked_and_recorded(grey_and_colour, tmp_path, capsys):
    from unlearnable.look import get_look, look_from_record

    look = get_look("floor=0.7, texture=12,smooth=yes")
    assert (look.name, look.floor, look.texture, look.smooth) == ("custom", 0.7, 12.0, True)
    assert look_from_record(look.record()) == Look("custom", 0.7, 12.0, True, "", look.window, look.blur)
    assert get_look("floor=1").smooth is False and get_look("none") is None
    for bad, words in [
        ("floor=2", "floor must be in (0, 1]"),
        ("shade=1", "'shade=1' is not one of"),
        ("pretty", "--look must be one of"),
    ]:
        with pytest.raises(ValueError, match=re.escape(words)):
            get_look(bad)
    assert (
        main(["protect", "--data", str(grey_and_colour), "--look", "smooth=maybe", "--out", str(tmp_path / "x")]) == 2
    )
    assert "'smooth=maybe' is not one of" in capsys.readouterr().err and not (tmp_path / "x").exists()

"""A 224 px photo folder of a few hundred images, protected and evaluated end to end (tiny settings)."""

import json

from unlearnable.cli import main
from unlearnable.data import load_dataset
from unlearnable.perturbation import Perturbation


def test_a_224_px_folder_protects_and_evaluates(tmp_path, make_image_folder):
    photos = make_image_folder(
        tmp_path / "photos",
        {"cat": (90, 0, 0), "dog": (0, 90, 0), "fox": (0, 0, 90)},
        {"train": 100, "test": 10},
        name="IMG_{i:04d}.jpg",
        size=224,
    )
    out, record = tmp_path / "protected", tmp_path / "eval"
    assert (
        main(
            [
                "protect",
                "--data",
                str(photos),
                "--method",
                "bait",
                "--out",
                str(out),
                "--quiet",
                "--set",
                "stages=[1,0,0]",
                "--set",
                "images_per_epoch=16",
                "--set",
                "batch_size=16",
                "--set",
                "direct_lr=1.0",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "classwise"
    delta = Perturbation.load(out / "perturbation.safetensors").delta
    assert delta.shape == (3, 3, 64, 64) and manifest["working_size"] == 64  # fitted at the cpu working size
    protected = load_dataset(out, "train", cache=False)
    assert protected.images.shape == (300, 3, 224, 224)  # drawn at the photos' size
    assert main(["verify", str(out)]) == 0  # every file within 8/255 of its source
    # a folder of photos: the victim resizes and centre-crops them to its own input size (--input-size 224 here)
    assert (
        main(
            [
                "evaluate",
                "--train",
                str(out),
                "--data",
                str(photos),
                "--init",
                "imagenet",
                "--epochs",
                "1",
                "--batch-size",
                "30",
                "--input-size",
                "224",
                "--train-per-class",
                "10",
                "--test-per-class",
                "5",
                "--quiet",
                "--out",
                str(record),
            ]
        )
        == 0
    )
    rec = json.loads((record / "record.json").read_text())
    assert rec["input_size"] == 224 and rec["n_train"] == 30 and rec["n_test"] == 15
    assert 0.0 <= rec["final_test_acc"] <= 1.0 and len(rec["history"]) == 1


def test_victims_never_shrink_images_below_their_size_up_to_the_natural_resolution():
    from unlearnable.evaluate import victim_input_size

    assert victim_input_size("efficientnet_lite0", 64, 32) == 64  # CIFAR-10 enlarged for the CPU victim
    assert victim_input_size("efficientnet_lite0", 64, 128) == 128
    assert victim_input_size("efficientnet_lite0", 64, 600) == 224  # the model's natural resolution
    assert victim_input_size("small_cnn", None, 224) is None  # a scratch model reads the images as they are

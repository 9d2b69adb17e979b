"""Linear probe: keep an ImageNet-pretrained backbone frozen and train only a new last layer.
The frozen features cannot adapt to a shortcut, so only what they already encode is learned;
this is the weakest form of "starting from a pretrained model"."""

from __future__ import annotations

from .base import Defense, register_defense


@register_defense
class LinearProbe(Defense):
    name = "linear_probe"
    summary = "linear probe: frozen pretrained backbone, only the last layer is trained (needs --init imagenet)"
    protocol = "linear"

"""The perturbation generator of BAIT (an AdvGAN-style encoder / residual / decoder network).

Layout as described for the reference implementation: six 3x3 convolutions 3->16->...->512
(three of stride 2) with InstanceNorm+ReLU, eight residual blocks at 512 channels
(reflection padding, BatchNorm), six transposed convolutions back to 3 channels, tanh.
Its output lies in [-1, 1]; the attack scales it by eps.
"""

from __future__ import annotations

import torch.nn as nn

WIDTHS = (3, 16, 32, 64, 128, 256, 512)
STRIDES = (1, 2, 1, 2, 1, 2)


def _down(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=True), nn.InstanceNorm2d(cout), nn.ReLU(True))


def _up(cin: int, cout: int, stride: int, last: bool) -> nn.Sequential:
    conv = nn.ConvTranspose2d(cin, cout, 3, stride, 1, output_padding=stride - 1, bias=True)
    return nn.Sequential(conv, nn.Tanh()) if last else nn.Sequential(conv, nn.InstanceNorm2d(cout), nn.ReLU(True))


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x):
        return x + self.body(x)


class PerturbationGenerator(nn.Module):
    def __init__(self, width_scale: float = 1.0, blocks: int = 8):
        super().__init__()
        w = [3] + [max(4, int(c * width_scale)) for c in WIDTHS[1:]]
        self.encoder = nn.Sequential(*[_down(w[i], w[i + 1], s) for i, s in enumerate(STRIDES)])
        self.residual = nn.Sequential(*[ResidualBlock(w[-1]) for _ in range(blocks)])
        ups = list(zip(reversed(w[1:]), reversed(w[:-1]), reversed(STRIDES)))
        self.decoder = nn.Sequential(*[_up(a, b, s, i == len(ups) - 1) for i, (a, b, s) in enumerate(ups)])

    def forward(self, x):
        return self.decoder(self.residual(self.encoder(x)))

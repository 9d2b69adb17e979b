"""Perturbation generators: BAIT's (an AdvGAN-style encoder / residual / decoder network) and
GUE's UNet.

Layout as described for the reference implementation: six 3x3 convolutions 3->16->...->512
(three of stride 2) with InstanceNorm+ReLU, eight residual blocks at 512 channels
(reflection padding, BatchNorm), six transposed convolutions back to 3 channels, tanh.
Its output lies in [-1, 1]; the attack scales it by eps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body: torch.Tensor = self.body(x)
        return x + body


class PerturbationGenerator(nn.Module):
    def __init__(self, width_scale: float = 1.0, blocks: int = 8):
        super().__init__()
        w = [3] + [max(4, int(c * width_scale)) for c in WIDTHS[1:]]
        self.encoder = nn.Sequential(*[_down(w[i], w[i + 1], s) for i, s in enumerate(STRIDES)])
        self.residual = nn.Sequential(*[ResidualBlock(w[-1]) for _ in range(blocks)])
        ups = list(zip(reversed(w[1:]), reversed(w[:-1]), reversed(STRIDES)))
        self.decoder = nn.Sequential(*[_up(a, b, s, i == len(ups) - 1) for i, (a, b, s) in enumerate(ups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(self.residual(self.encoder(x)))
        return out


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    )


class UNet(nn.Module):
    """GUE's generator (as described for the authors' code): three average-pooled levels of two
    3x3 convolutions (width, 2, 4, 8 x width), bilinear upsampling with skip connections, a 1x1
    convolution, BatchNorm and tanh; output in [-1, 1], scaled by eps by the attack. Sizes that are
    not a multiple of 8 are padded (reflection) and cropped back."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = (width, 2 * width, 4 * width, 8 * width)
        self.down = nn.ModuleList([_double_conv(3, w[0]), _double_conv(w[0], w[1]), _double_conv(w[1], w[2])])
        self.bottom = _double_conv(w[2], w[3])
        self.up = nn.ModuleList(
            [_double_conv(w[3] + w[2], w[2]), _double_conv(w[2] + w[1], w[1]), _double_conv(w[1] + w[0], w[0])]
        )
        self.last = nn.Sequential(nn.Conv2d(w[0], 3, 1), nn.BatchNorm2d(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % 8, -w % 8
        z = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        skips = []
        for block in self.down:
            z = block(z)
            skips.append(z)
            z = F.avg_pool2d(z, 2)
        z = self.bottom(z)
        for block, skip in zip(self.up, reversed(skips)):
            z = F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=True)
            z = block(torch.cat([z, skip], 1))
        return torch.tanh(self.last(z))[..., :h, :w]

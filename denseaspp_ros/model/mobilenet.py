"""Dilated MobileNetV2 backbone at output stride 8, as in the original MobileNetDenseASPP.

The layout (``features.N.conv.M``) mirrors the release so its checkpoints load without renaming.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, channels c, repeats n, stride s, dilation d) of the inverted residual groups.
# The last four groups keep stride 8 and dilate instead of downsampling.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1, 1),
    (6, 24, 2, 2, 1),
    (6, 32, 3, 2, 1),
    (6, 64, 4, 1, 2),
    (6, 96, 3, 1, 2),
    (6, 160, 3, 1, 2),
    (6, 320, 1, 1, 2),
)
STEM_CHANNELS = 32
# Layers whose outputs a decoder takes as skips, coarse to fine: the 24 channels at stride 4
# (end of the second group) and the 16 at stride 2 (the first group).
SKIP_LAYERS = (3, 1)


class InvertedResidual(nn.Module):
    """pw conv-BN-ReLU6, dw 3x3 conv-BN-ReLU6, pw-linear conv-BN; the expansion conv exists even for t=1."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int, dilation: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, padding=dilation, dilation=dilation, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class DilatedMobileNetV2(nn.Module):
    """Stem conv 3x3 s2 then the inverted residual groups; 320 output channels, no final 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False),
                nn.BatchNorm2d(STEM_CHANNELS),
                nn.ReLU(inplace=True),
            )
        ]
        channels = STEM_CHANNELS
        for expansion, out_channels, repeats, stride, dilation in INVERTED_RESIDUAL_SETTING:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_channels, stride if i == 0 else 1, expansion, dilation))
                channels = out_channels
        self.features = nn.Sequential(*layers)
        self.out_channels = channels
        self.skip_channels = tuple(_out_channels(layers[index]) for index in SKIP_LAYERS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_with_skips(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The stride-8 features and the ``SKIP_LAYERS`` outputs (coarse to fine) a decoder refines them with."""
        skips: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in SKIP_LAYERS:
                skips[index] = x
        return x, [skips[index] for index in SKIP_LAYERS]


def _out_channels(layer: nn.Module) -> int:
    return [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features

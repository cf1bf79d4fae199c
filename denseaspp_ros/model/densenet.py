"""Dilated DenseNet-BC backbone at output stride 8, as in the original DenseASPP release.

Module names follow torchvision's DenseNet (``denselayerN.norm1``) so that the original
checkpoints, which used ``norm.1``, load through one key-renaming rule (see ``checkpoint.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DenseNetConfig:
    growth_rate: int
    num_init_features: int
    block_config: tuple[int, int, int, int]
    bn_size: int = 4


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv bottleneck, BN-ReLU-3x3 (dilated) conv; output concatenated after the input."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, dilation: int) -> None:
        super().__init__()
        bottleneck = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bottleneck, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            bottleneck, growth_rate, kernel_size=3, padding=dilation, dilation=dilation, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new_features = self.conv1(self.relu1(self.norm1(x)))
        new_features = self.conv2(self.relu2(self.norm2(new_features)))
        return torch.cat([x, new_features], 1)


class DenseBlock(nn.Sequential):
    def __init__(
        self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int, dilation: int
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, dilation)
            self.add_module(f"denselayer{i + 1}", layer)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv halving the channels; only the first transition downsamples (output stride 8)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_channels))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False))
        if downsample:
            self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


# Dilation of the 3x3 convolutions in dense blocks 1-4: blocks 3 and 4 keep the stride-8
# resolution and widen their receptive field instead of downsampling.
BLOCK_DILATIONS = (1, 1, 2, 4)


class DilatedDenseNet(nn.Sequential):
    """conv0/norm0/relu0/pool0, four dense blocks each followed by a transition, then norm5."""

    def __init__(self, config: DenseNetConfig) -> None:
        super().__init__()
        channels = config.num_init_features
        self.add_module("conv0", nn.Conv2d(3, channels, kernel_size=7, stride=2, padding=3, bias=False))
        self.add_module("norm0", nn.BatchNorm2d(channels))
        self.add_module("relu0", nn.ReLU(inplace=True))
        self.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        for index, (num_layers, dilation) in enumerate(zip(config.block_config, BLOCK_DILATIONS), 1):
            block = DenseBlock(num_layers, channels, config.growth_rate, config.bn_size, dilation)
            self.add_module(f"denseblock{index}", block)
            channels += num_layers * config.growth_rate
            self.add_module(f"transition{index}", Transition(channels, channels // 2, downsample=index == 1))
            channels //= 2
        self.add_module("norm5", nn.BatchNorm2d(channels))
        self.out_channels = channels

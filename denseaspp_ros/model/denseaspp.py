"""The DenseASPP network (Yang et al., CVPR 2018): a dilated backbone and a densely connected ASPP head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Atrous rates of the five cascaded ASPP blocks; each block sees the backbone features and
# every earlier block's output, so the receptive fields combine densely.
ASPP_DILATIONS = (3, 6, 12, 18, 24)
OUTPUT_STRIDE = 8
# The release's ASPP BatchNorms used this momentum (PyTorch convention: weight of the new batch).
ASPP_BN_MOMENTUM = 0.0003


class DenseASPPBlock(nn.Sequential):
    """[BN-ReLU] - 1x1 conv - BN-ReLU - 3x3 dilated conv - channel dropout.

    The first block has no BN-ReLU in front: the network feeds it features that are already
    ReLU'd (see ``DenseASPP.forward``).
    """

    def __init__(
        self, in_channels: int, mid_channels: int, out_channels: int, dilation: int, dropout: float, first: bool
    ) -> None:
        super().__init__()
        if not first:
            self.add_module("norm1", nn.BatchNorm2d(in_channels, momentum=ASPP_BN_MOMENTUM))
            self.add_module("relu1", nn.ReLU(inplace=True))
        self.add_module("conv1", nn.Conv2d(in_channels, mid_channels, kernel_size=1))
        self.add_module("norm2", nn.BatchNorm2d(mid_channels, momentum=ASPP_BN_MOMENTUM))
        self.add_module("relu2", nn.ReLU(inplace=True))
        self.add_module(
            "conv2", nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation)
        )
        self.add_module("dropout", nn.Dropout2d(dropout))


class DenseASPP(nn.Module):
    """Backbone -> ReLU -> five DenseASPP blocks (outputs prepended, newest first) -> 1x1 classifier -> x8 bilinear.

    ``forward`` maps a normalised NCHW batch to logits at the input resolution. Inputs whose sides
    are not multiples of 8 are padded (bottom/right, with zeros = the dataset mean after
    normalisation) and the logits cropped back, so every size sees the geometry the network was
    trained with.
    """

    def __init__(
        self,
        backbone: nn.Module,
        backbone_channels: int,
        num_classes: int,
        d_feature0: int,
        d_feature1: int,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.features = backbone
        self.aspp_names = tuple(f"ASPP_{d}" for d in ASPP_DILATIONS)
        channels = backbone_channels
        for index, (name, dilation) in enumerate(zip(self.aspp_names, ASPP_DILATIONS)):
            block = DenseASPPBlock(channels, d_feature0, d_feature1, dilation, dropout, first=index == 0)
            self.add_module(name, block)
            channels += d_feature1
        self.classification = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, kernel_size=1))
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        # The release's initialisation: Kaiming-uniform convolutions, unit-scale zero-shift BatchNorms.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_bottom, pad_right = -height % OUTPUT_STRIDE, -width % OUTPUT_STRIDE
        if pad_bottom or pad_right:
            x = F.pad(x, (0, pad_right, 0, pad_bottom))
        # The release's first ASPP block ReLU'd the backbone output in place, so every later
        # concatenation saw ReLU(norm5), not the raw BatchNorm output. Reproduce that explicitly.
        features = F.relu(self.features(x))
        for name in self.aspp_names:
            features = torch.cat([getattr(self, name)(features), features], 1)
        logits = self.classification(features)
        # 0.3.1's nn.Upsample(scale_factor=8, mode="bilinear") aligned corners; the weights expect it.
        logits = F.interpolate(
            logits, size=(height + pad_bottom, width + pad_right), mode="bilinear", align_corners=True
        )
        if pad_bottom or pad_right:
            logits = logits[..., :height, :width]
        return logits

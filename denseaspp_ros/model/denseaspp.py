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


class DecoderStage(nn.Module):
    """Upsample the coarser features to a skip's size, concatenate, depthwise 3x3 then pointwise conv."""

    def __init__(self, coarse_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        channels = coarse_channels + skip_channels
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor, align_corners: bool) -> torch.Tensor:
        coarse = F.interpolate(coarse, size=skip.shape[-2:], mode="bilinear", align_corners=align_corners)
        return self.fuse(torch.cat([coarse, skip], 1))


class Decoder(nn.Module):
    """Brings the stride-8 ASPP features back to the backbone's finer skips (strides 4 and 2).

    Not in the release: at stride 8 a pole or a traffic light a few pixels wide covers less than
    one output cell, so even perfect stride-8 logits upsampled bilinearly score about 40-50% IoU
    on them at 256x512. Depthwise-separable stages keep the cost small next to the backbone.
    """

    def __init__(self, in_channels: int, skip_channels: tuple[int, ...], widths: tuple[int, ...]) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(in_channels, widths[0], 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList(
            DecoderStage(coarse, skip, out) for coarse, skip, out in zip(widths, skip_channels, widths[1:])
        )
        self.out_channels = widths[-1]

    def forward(self, features: torch.Tensor, skips: list[torch.Tensor], align_corners: bool) -> torch.Tensor:
        features = self.project(features)
        for stage, skip in zip(self.stages, skips):
            features = stage(features, skip, align_corners)
        return features


class DenseASPP(nn.Module):
    """Backbone -> ReLU -> five DenseASPP blocks (outputs prepended, newest first) -> 1x1 classifier -> x8 bilinear.

    With ``decoder_widths`` (a backbone offering ``forward_with_skips``), a ``Decoder`` refines the
    ASPP features with the backbone's finer skips before the classifier, which then upsamples less.

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
        decoder_widths: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.features = backbone
        self.aspp_names = tuple(f"ASPP_{d}" for d in ASPP_DILATIONS)
        channels = backbone_channels
        for index, (name, dilation) in enumerate(zip(self.aspp_names, ASPP_DILATIONS)):
            block = DenseASPPBlock(channels, d_feature0, d_feature1, dilation, dropout, first=index == 0)
            self.add_module(name, block)
            channels += d_feature1
        self.decoder = Decoder(channels, backbone.skip_channels, decoder_widths) if decoder_widths else None
        if self.decoder is not None:
            channels = self.decoder.out_channels
        self.classification = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, kernel_size=1))
        self.num_classes = num_classes
        # The network input size the weights were trained to run at (e.g. a camera's frames upscaled
        # so that thin poles span more than one stride-2 cell), or None: the camera's own. It travels
        # in the checkpoint's metadata and is the Segmenter's default input size.
        self.input_size: tuple[int, int] | None = None
        # How the maps are upsampled. The release's nn.Upsample aligned corners, and its weights expect
        # it; but that stretches a map about its centre, up to half an output cell at the borders (at
        # stride 8, 2 pixels the other way in each decoder stage), so a boundary lands off by an amount
        # that depends on where it is in the image, which no convolution can learn. Weights trained
        # with False (half-pixel, as the images are resized) say so in their metadata.
        self.align_corners = True
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
        if self.decoder is None:
            features, skips = self.features(x), []
        else:
            features, skips = self.features.forward_with_skips(x)
        features = F.relu(features)
        for name in self.aspp_names:
            features = torch.cat([getattr(self, name)(features), features], 1)
        if self.decoder is not None:
            features = self.decoder(features, skips, self.align_corners)
        logits = self.classification(features)
        # x8 as the release's 0.3.1 nn.Upsample(scale_factor=8, mode="bilinear"); with a decoder x2 from its finest skip.
        logits = F.interpolate(
            logits, size=(height + pad_bottom, width + pad_right), mode="bilinear", align_corners=self.align_corners
        )
        if pad_bottom or pad_right:
            logits = logits[..., :height, :width]
        return logits

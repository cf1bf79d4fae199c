"""An independent, functional re-implementation of the original DenseASPP forward pass.

It works directly on a state dict in the original release's layout
(``module.features.denseblock1.denselayer1.norm.1.weight``, ``module.ASPP_3.conv.1.weight``, ...)
and takes the network's structure from the key names and tensor shapes plus the facts the
paper/release fix (dilations, strides, ASPP rates), so it shares no code with
``denseaspp_ros.model``: a mistake there cannot hide by being repeated here.

Facts followed literally:

* DenseNet backbone: conv0 7x7 stride 2 pad 3, norm0, ReLU, max-pool 3x3 stride 2 pad 1; four
  dense blocks whose 3x3 convolutions are dilated 1, 1, 2, 4; after each block a transition
  (BN-ReLU-1x1 conv) of which only the first average-pools 2x2; then norm5 (BN, no ReLU).
* MobileNetV2 backbone: stem conv 3x3 stride 2 pad 1-BN-ReLU, then inverted residuals from the
  (t, c, n, s, d) table below, each pw-BN-ReLU6, dw 3x3 (dilation d, padding d)-BN-ReLU6, pw-BN,
  with a residual connection when the stride is 1 and the channel count is kept.
* Head: ASPP blocks at rates 3, 6, 12, 18, 24, each [BN-ReLU]-1x1 conv-BN-ReLU-3x3 conv at the
  rate, its output concatenated in front of its input; the first block has no BN in front and
  its ReLU ran in place on its input, so later concatenations see ReLU(backbone output).
  Classifier: Dropout2d (identity in eval) and a 1x1 conv; bilinear x8 upsampling with
  ``align_corners=True`` (PyTorch 0.3.1's ``nn.Upsample`` behaviour).
* BatchNorm in eval mode with eps 1e-5.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping

import torch
import torch.nn.functional as F

BN_EPS = 1e-5
DATA_PARALLEL_PREFIX = "module."
DENSE_BLOCK_DILATIONS = (1, 1, 2, 4)
ASPP_RATES = (3, 6, 12, 18, 24)
OUTPUT_STRIDE = 8
# (expansion t, channels c, repeats n, stride s, dilation d)
MOBILENET_V2_SETTING = (
    (1, 16, 1, 1, 1),
    (6, 24, 2, 2, 1),
    (6, 32, 3, 2, 1),
    (6, 64, 4, 1, 2),
    (6, 96, 3, 1, 2),
    (6, 160, 3, 1, 2),
    (6, 320, 1, 1, 2),
)

_DENSE_LAYER_KEY = re.compile(r"^features\.denseblock(\d+)\.denselayer(\d+)\.")


def _batch_norm(weights: Mapping[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(
        x,
        weights[prefix + "running_mean"],
        weights[prefix + "running_var"],
        weights[prefix + "weight"],
        weights[prefix + "bias"],
        training=False,
        eps=BN_EPS,
    )


def _conv(
    weights: Mapping[str, torch.Tensor],
    prefix: str,
    x: torch.Tensor,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
) -> torch.Tensor:
    kernel = weights[prefix + "weight"]
    # Every convolution of the release pads "same": (k // 2) * dilation.
    padding = (kernel.shape[-1] // 2) * dilation
    return F.conv2d(x, kernel, weights.get(prefix + "bias"), stride, padding, dilation, groups)


def densenet_features(weights: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    assert weights["features.conv0.weight"].shape[-2:] == (7, 7)
    x = _conv(weights, "features.conv0.", x, stride=2)
    x = F.relu(_batch_norm(weights, "features.norm0.", x))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    layers_per_block: dict[int, int] = {}
    for key in weights:
        match = _DENSE_LAYER_KEY.match(key)
        if match:
            block, layer = int(match.group(1)), int(match.group(2))
            layers_per_block[block] = max(layers_per_block.get(block, 0), layer)
    assert sorted(layers_per_block) == [1, 2, 3, 4], layers_per_block
    for block, dilation in zip(range(1, 5), DENSE_BLOCK_DILATIONS):
        for layer in range(1, layers_per_block[block] + 1):
            prefix = f"features.denseblock{block}.denselayer{layer}."
            new = _conv(weights, prefix + "conv.1.", F.relu(_batch_norm(weights, prefix + "norm.1.", x)))
            new = F.relu(_batch_norm(weights, prefix + "norm.2.", new))
            new = _conv(weights, prefix + "conv.2.", new, dilation=dilation)
            x = torch.cat([x, new], 1)
        prefix = f"features.transition{block}."
        x = _conv(weights, prefix + "conv.", F.relu(_batch_norm(weights, prefix + "norm.", x)))
        if block == 1:
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
    return _batch_norm(weights, "features.norm5.", x)


def mobilenet_features(weights: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    x = _conv(weights, "features.features.0.0.", x, stride=2)
    x = F.relu(_batch_norm(weights, "features.features.0.1.", x))
    index = 1
    for expansion, channels, repeats, first_stride, dilation in MOBILENET_V2_SETTING:
        for repeat in range(repeats):
            prefix = f"features.features.{index}.conv."
            expand, depthwise, project = (weights[prefix + f"{i}.weight"] for i in (0, 3, 6))
            in_channels, hidden = expand.shape[1], expand.shape[0]
            # The table and the stored shapes must agree, or this is not the network the table describes.
            assert hidden == expansion * in_channels, (index, expand.shape)
            assert depthwise.shape == (hidden, 1, 3, 3) and project.shape[:2] == (channels, hidden), index
            stride = first_stride if repeat == 0 else 1
            out = F.relu6(_batch_norm(weights, prefix + "1.", _conv(weights, prefix + "0.", x)))
            out = _conv(weights, prefix + "3.", out, stride=stride, dilation=dilation, groups=hidden)
            out = F.relu6(_batch_norm(weights, prefix + "4.", out))
            out = _batch_norm(weights, prefix + "7.", _conv(weights, prefix + "6.", out))
            x = x + out if stride == 1 and in_channels == channels else out
            index += 1
    assert f"features.features.{index}.conv.0.weight" not in weights, "more inverted residuals than the table has"
    return x


def dense_aspp_head(
    weights: Mapping[str, torch.Tensor], features: torch.Tensor, inplace_relu_on_input: bool = True
) -> torch.Tensor:
    for rate in ASPP_RATES:
        prefix = f"ASPP_{rate}."
        if prefix + "norm.1.weight" in weights:
            out = F.relu(_batch_norm(weights, prefix + "norm.1.", features))
        else:
            # No BN in front: the block's nn.ReLU(inplace=True) overwrote the very tensor that
            # is concatenated after it.
            out = F.relu(features)
            if inplace_relu_on_input:
                features = out
        out = _conv(weights, prefix + "conv.1.", out)
        out = F.relu(_batch_norm(weights, prefix + "norm.2.", out))
        out = _conv(weights, prefix + "conv.2.", out, dilation=rate)
        features = torch.cat([out, features], 1)
    logits = _conv(weights, "classification.1.", features)
    return F.interpolate(logits, scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=True)


def original_forward(
    state_dict: Mapping[str, torch.Tensor], x: torch.Tensor, inplace_relu_on_input: bool = True
) -> torch.Tensor:
    """Logits of the original network for ``x`` (sides multiples of 8), from release-layout weights.

    ``inplace_relu_on_input=False`` computes what the network would give without the first ASPP
    block's in-place ReLU side effect, to show that detail matters.
    """
    assert all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict)
    weights = {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    if "features.conv0.weight" in weights:
        features = densenet_features(weights, x)
    elif "features.features.0.0.weight" in weights:
        features = mobilenet_features(weights, x)
    else:
        raise ValueError("neither a DenseNet nor a MobileNetV2 DenseASPP state dict")
    return dense_aspp_head(weights, features, inplace_relu_on_input)


def padded_original_forward(state_dict: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``original_forward`` of ``x`` zero-padded bottom/right to multiples of 8, cropped back."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (0, -width % OUTPUT_STRIDE, 0, -height % OUTPUT_STRIDE))
    return original_forward(state_dict, padded)[..., :height, :width]


def randomize_(tensors: MutableMapping[str, torch.Tensor], seed: int) -> None:
    """Overwrite floating-point weights in place with seeded random values that keep activations O(1).

    BatchNorms get running statistics and affine parameters far from identity (so a missing or
    misplaced BN changes the output); convolutions get He-scaled weights. Works on any key layout.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.rand(tensor.shape, generator=generator) * (high - low) + low

    with torch.no_grad():
        for key, tensor in tensors.items():
            if not tensor.is_floating_point():
                continue
            if key.endswith("running_mean") or key.endswith("bias"):
                value = torch.randn(tensor.shape, generator=generator) * 0.2
            elif key.endswith("running_var"):
                value = uniform(tensor, 0.5, 2.0)
            elif tensor.ndim == 1:  # BatchNorm scale
                value = uniform(tensor, 0.5, 1.5)
            else:
                fan_in = tensor[0].numel()
                value = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
            tensor.copy_(value)

"""Segmenter: uint8 camera images in, per-pixel class ids out, with all tensor work on the device.

The node, the CLI, evaluation and benchmarks all segment through this one class so that they
share one preprocessing and one post-processing path.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..declarations import format_size
from ..errors import Cancelled, DenseASPPError, ImageError
from ..image_messages import MAX_IMAGE_PIXELS
from ..model.weights import RELEASE_NORMALIZATION, Normalization, UncertaintyBand
from .backends import TorchBackend
from .preprocessing import preprocess

# Normalisation of the release (RGB/255, Cityscapes statistics).
MEAN_RGB, STD_RGB = RELEASE_NORMALIZATION.mean_rgb, RELEASE_NORMALIZATION.std_rgb
# Multi-scale test-time augmentation of the release; each scale is also run mirrored.
MULTISCALE_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.8)
# Batch shapes (cameras x sizes) whose host staging buffers are kept for reuse.
MAX_STAGING_BUFFERS = 8
# Class scores brought back to a frame's size take classes x 4 bytes a pixel (1.3 GB for a 4096x4096
# frame of 19 classes, twice that with confidence): beyond this many bytes they are made, argmaxed
# and dropped band of rows by band. Frames up to 2.5 MP at 19 classes (a 2048x1024 camera) stay
# below it: there one upsampling at once is 30% faster than bands (BENCHMARKS.md).
SCORE_BAND_BYTES = 192 << 20
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Segmentation:
    """The result for one image, at that image's resolution."""

    train_ids: np.ndarray  # HxW uint8 class ids
    confidence: np.ndarray | None = None  # HxW uint8, max softmax probability scaled to 0..255
    logits: torch.Tensor | None = None  # CxHxW float32 on the device (fused log-probabilities when multi-scale)
    finite: bool = True  # False: some logit was NaN/inf (bad weights, fp16 overflow): the ids mean nothing
    uncertainty: Uncertainty | None = None  # how sure the network was of this frame, at its own resolution


LOW_CONFIDENCE = 0.5  # a pixel whose most likely class has less probability than this is a guess
_UNCERTAINTY_PIXELS = 65_536  # scores at most this many pixels a frame are summarised (strided beyond)


@dataclass(frozen=True)
class Uncertainty:
    """A frame's network self-check: what share of its pixels were guesses (top probability below
    ``LOW_CONFIDENCE``) and the mean entropy of the class probabilities over log(classes), 0..1.
    A frame far outside what the weights gave on their validation data (``Weights.uncertainty_band``)
    is one the network is out of its depth on: blur, rain, a scene unlike its training."""

    low_confidence_share: float
    mean_entropy: float


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks the first CUDA device when there is one; ``cuda[:N]`` must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DenseASPPError(f"invalid device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DenseASPPError(f"device {spec!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DenseASPPError(f"device {spec!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise DenseASPPError(f"unsupported device {spec!r}: use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` is fp16 on CUDA and fp32 on the CPU, where half precision is slower, not faster."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise DenseASPPError(f"unknown precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    if precision != "fp32" and device.type != "cuda":
        raise DenseASPPError(f"precision {precision} needs a CUDA device; on {device} use fp32")
    return PRECISIONS[precision]


def check_image(image: object, index: int = 0, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Accept only HxWx3 uint8 arrays of at most ``max_pixels``, naming what was wrong otherwise."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image {index}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"image {index}: expected dtype uint8 (0..255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"image {index}: expected an HxWx3 colour image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"image {index}: empty image of shape {image.shape}")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(
            f"image {index}: {image.shape[1]}x{image.shape[0]} has more than the {max_pixels} pixels allowed (max_image_pixels)"
        )
    return image


class Segmenter:
    """Runs a DenseASPP model on batches of uint8 images.

    Images of equal size are batched together (up to ``max_batch``); normalisation, resizing,
    argmax and confidence run on the device and only uint8 maps come back to the host.
    Not thread-safe: give each worker thread its own Segmenter. ``channels_last`` (NHWC) is the
    default because it is faster on CPUs as well as on tensor cores (BENCHMARKS.md).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        input_size: tuple[int, int] | None = None,
        multiscale: bool = False,
        scales: Sequence[float] = MULTISCALE_SCALES,
        flip: bool = True,
        max_batch: int = 8,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        cancel: threading.Event | None = None,
        own_model: bool = False,
        normalize: Normalization = RELEASE_NORMALIZATION,
        backend: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if max_batch < 1:
            raise DenseASPPError(f"max_batch must be at least 1, got {max_batch}")
        if input_size is not None and min(input_size) < 1:
            raise DenseASPPError(f"input_size must be positive, got {input_size}")
        if multiscale and (not scales or min(scales) <= 0):
            raise DenseASPPError(f"multi-scale needs positive scales, got {tuple(scales)}")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # None: the size the weights were trained to run at when their header says one, else each image's own.
        input_size = input_size if input_size is not None else getattr(model, "input_size", None)
        self.input_size = tuple(input_size) if input_size is not None else None
        # Scores go back to the frame's size the way the network upsamples its own maps: weights trained
        # corner-aligned were validated so (the stage-6 demo weights: 83.8% held-out, 83.6% half-pixel).
        self.align_corners = bool(getattr(model, "align_corners", True))
        self.multiscale = multiscale
        self.scales = tuple(scales)
        self.flip = flip
        self.max_batch = max_batch
        self.max_image_pixels = max_image_pixels
        self.normalize = normalize  # what the weights expect of their input
        self.cancel = cancel  # set: stop between forward passes with Cancelled (a shutdown need not wait for 12)
        if not own_model:  # moving and casting happen in place: never to the caller's model (e.g. one in training)
            model = copy.deepcopy(model)
        self.model = model.eval().to(device=self.device, dtype=self.dtype, memory_format=self.memory_format)
        # What maps a normalised batch to logits: the network here, or an exported engine of it.
        self.backend = backend if backend is not None else TorchBackend(self.model)
        self.weights: Path | str | None = None  # what load_engine loaded, for reports and diagnostics
        self.model_name: str = getattr(model, "variant_name", type(model).__name__)
        self.label_set = None
        self.uncertainty_band: UncertaintyBand | None = None  # recorded with the weights: the network self-check's band
        self.num_classes = int(getattr(model, "num_classes", 0))
        self._staging: dict[tuple[int, ...], torch.Tensor] = {}
        self._upload_done = torch.cuda.Event() if self.device.type == "cuda" else None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # camera streams have fixed sizes

    @torch.inference_mode()
    def segment(
        self,
        images: Sequence[np.ndarray],
        *,
        bgr: bool | Sequence[bool] = False,
        confidence: bool = False,
        logits: bool = False,
    ) -> list[Segmentation]:
        """Segment images (HxWx3 uint8); results come back in input order.

        ``bgr`` says the channel order, for all images or per image (cameras of one batch may
        differ); images of one size and order are batched together.
        """
        images = [check_image(image, index, self.max_image_pixels) for index, image in enumerate(images)]
        orders = [bgr] * len(images) if isinstance(bgr, bool) else list(bgr)
        if len(orders) != len(images):
            raise DenseASPPError(f"got {len(orders)} bgr flags for {len(images)} images")
        groups: dict[tuple[int, int, bool], list[int]] = defaultdict(list)
        for index, (image, is_bgr) in enumerate(zip(images, orders)):
            groups[(*image.shape[:2], bool(is_bgr))].append(index)
        results: list[Segmentation | None] = [None] * len(images)
        for (_, _, is_bgr), indices in groups.items():
            for start in range(0, len(indices), self.max_batch):
                self._check_cancel()
                chunk = indices[start : start + self.max_batch]
                batch = self._upload([images[i] for i in chunk], is_bgr)
                for i, result in zip(chunk, self._segment_batch(batch, confidence, logits)):
                    results[i] = result
        return results  # type: ignore[return-value]

    def describe(self) -> dict[str, str]:
        """What runs: the device and precision of the Segmenter's tensors, the network input size, and
        the backend's own facts."""
        return {
            "device": str(self.device), "precision": next(name for name, dtype in PRECISIONS.items() if dtype == self.dtype),
            "input_size": format_size(self.input_size) if self.input_size else "each image's",
            "upsampling": "corner-aligned" if self.align_corners else "half-pixel",
            **self.backend.describe(),
        }

    def segment_one(self, image: np.ndarray, **options: bool) -> Segmentation:
        return self.segment([image], **options)[0]

    def preprocess(self, images: Sequence[np.ndarray], bgr: bool = False) -> torch.Tensor:
        """Equal-size uint8 images -> the normalised batch this Segmenter's network takes (for benchmarks)."""
        return self._upload([check_image(image, index, self.max_image_pixels) for index, image in enumerate(images)], bgr)

    def _upload(self, images: list[np.ndarray], bgr: bool) -> torch.Tensor:
        staging = self._staging_buffer((len(images), *images[0].shape))
        # One host copy into the staging buffer; also takes read-only message buffers and strided views.
        np.stack(images, out=staging.numpy())
        batch = staging.to(self.device, non_blocking=True)
        if self._upload_done is not None:
            self._upload_done.record()
        return preprocess(
            batch, self.device, bgr=bgr, dtype=self.dtype, memory_format=self.memory_format, normalize=self.normalize
        )

    def _staging_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A reusable uint8 host buffer per batch shape, pinned on CUDA so the upload is a DMA copy."""
        buffer = self._staging.get(shape)
        if buffer is None:
            if len(self._staging) >= MAX_STAGING_BUFFERS:
                self._staging.clear()
            buffer = torch.empty(shape, dtype=torch.uint8, pin_memory=self.device.type == "cuda")
            self._staging[shape] = buffer
        elif self._upload_done is not None:
            self._upload_done.synchronize()  # the previous asynchronous copy out of it has finished
        return buffer

    def _segment_batch(self, batch: torch.Tensor, want_confidence: bool, want_logits: bool) -> list[Segmentation]:
        output_size = tuple(batch.shape[-2:])
        if self.multiscale or want_logits:
            scores = self._scores(batch)
            train_ids, confidence, finite = _decide(scores, want_confidence)
        else:
            scores = self._forward(self._resize(batch, self.input_size or output_size), None)
            if tuple(scores.shape[-2:]) == output_size:
                train_ids, confidence, finite = _decide(scores, want_confidence)
            else:
                train_ids, confidence, finite = self._decide_upsampled(scores, output_size, want_confidence)
        train_ids = train_ids.to(torch.uint8).cpu().numpy()
        confidence = None if confidence is None else confidence.cpu().numpy()
        uncertainty = _uncertainty(scores)
        return [
            Segmentation(
                train_ids[i],
                None if confidence is None else confidence[i],
                scores[i] if want_logits else None,
                finite[i],
                uncertainty[i],
            )
            for i in range(len(train_ids))
        ]

    def _scores(self, batch: torch.Tensor) -> torch.Tensor:
        """Per-class scores at the batch's resolution, float32: logits, or averaged log-softmax."""
        output_size = tuple(batch.shape[-2:])
        base_size = self.input_size or output_size
        if not self.multiscale:
            return self._forward(self._resize(batch, base_size), output_size)
        total = None
        passes = 0
        for scale in self.scales:
            scaled = self._resize(batch, (round(base_size[0] * scale), round(base_size[1] * scale)))
            for mirrored in (False, True) if self.flip else (False,):
                self._check_cancel()
                view = scaled.flip(-1) if mirrored else scaled
                scores = self._forward(view, output_size)
                if mirrored:
                    scores = scores.flip(-1)
                scores = F.log_softmax(scores, dim=1)
                total = scores if total is None else total.add_(scores)
                passes += 1
        return total.div_(passes)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("segmentation cancelled")

    def _forward(self, batch: torch.Tensor, output_size: tuple[int, int] | None) -> torch.Tensor:
        """The network's scores, float32, at ``output_size`` (None: as the network gives them)."""
        scores = self.backend(batch).float()
        if output_size is not None and tuple(scores.shape[-2:]) != output_size:
            scores = self._upsample(scores, output_size)
        return scores

    def _upsample(self, scores: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(scores, size=output_size, mode="bilinear", align_corners=self.align_corners)

    def _decide_upsampled(
        self, scores: torch.Tensor, output_size: tuple[int, int], want_confidence: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[bool]]:
        """Class ids (and confidence) of ``scores`` brought to ``output_size``: at once when that fits
        SCORE_BAND_BYTES, else band of rows by band, each band from the network rows it needs."""
        count, classes = scores.shape[:2]
        height, width = output_size
        band = max(1, SCORE_BAND_BYTES // (count * classes * width * 4))
        if band >= height:
            return _decide(self._upsample(scores, output_size), want_confidence)
        rows = _source_rows(height, scores.shape[-2], self.align_corners)
        ids, confidences, finite = [], [], [True] * count
        for top in range(0, height, band):
            first, last = int(rows[top].floor()), min(int(rows[min(top + band, height) - 1].floor()) + 1, scores.shape[-2] - 1)
            # The band's own rows of the full upsampling: the network rows it reads, stretched by the
            # same source coordinates (a 2-row margin keeps the resampling of the slice exact).
            strip = _upsample_rows(scores[:, :, first : last + 1], rows[top : top + band] - first, width, self.align_corners)
            band_ids, band_confidence, band_finite = _decide(strip, want_confidence)
            ids.append(band_ids.to(torch.uint8))  # int64 ids of the whole frame would be 8 bytes a pixel
            confidences.append(band_confidence)
            finite = [a and b for a, b in zip(finite, band_finite)]
        return torch.cat(ids, 1), torch.cat(confidences, 1) if want_confidence else None, finite

    @staticmethod
    def _resize(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(batch.shape[-2:]) == tuple(size):
            return batch
        downscaling = size[0] < batch.shape[-2] or size[1] < batch.shape[-1]
        return F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=downscaling)


def _decide(scores: torch.Tensor, want_confidence: bool) -> tuple[torch.Tensor, torch.Tensor | None, list[bool]]:
    """Class ids, confidence (max softmax x 255, when wanted) and whether each frame's scores are finite."""
    best, train_ids = scores.max(1)
    # max propagates NaN and +inf, so checking the per-pixel best covers every logit at 1/C the cost.
    finite = torch.isfinite(best).flatten(1).all(1).tolist()
    confidence = None
    if want_confidence:
        # max softmax probability = 1 / sum(exp(s - max)): no full softmax tensor needed.
        probability = (scores - best.unsqueeze(1)).exp_().sum(1).reciprocal_()
        confidence = probability.mul_(255).round_().to(torch.uint8)
    return train_ids, confidence, finite


def _uncertainty(scores: torch.Tensor) -> list[Uncertainty]:
    """Each frame's ``Uncertainty`` from its scores (logits or log-probabilities: softmax takes both),
    on a strided sample of at most ``_UNCERTAINTY_PIXELS`` pixels; a few microseconds at 1/8 resolution."""
    height, width = scores.shape[-2:]
    stride = max(1, math.ceil(math.sqrt(height * width / _UNCERTAINTY_PIXELS)))
    sample = scores[..., ::stride, ::stride].float()
    log_probability = F.log_softmax(sample, dim=1)
    probability = log_probability.exp()
    top = probability.amax(1)
    entropy = -(probability * log_probability).sum(1) / math.log(scores.shape[1])
    shares = (top < LOW_CONFIDENCE).float().mean((1, 2)).tolist()
    entropies = entropy.mean((1, 2)).tolist()
    return [Uncertainty(share, mean) for share, mean in zip(shares, entropies)]


def _source_rows(height: int, size: int, align_corners: bool) -> torch.Tensor:
    """The source row (a coordinate) of each of ``height`` output rows, as bilinear F.interpolate takes it."""
    rows = torch.arange(height, dtype=torch.float32)
    if align_corners:
        return rows * ((size - 1) / (height - 1)) if height > 1 else torch.zeros(height)
    return ((rows + 0.5) * (size / height) - 0.5).clamp_(min=0)


def _upsample_rows(strip: torch.Tensor, rows: torch.Tensor, width: int, align_corners: bool) -> torch.Tensor:
    """``strip`` (N, C, h, w) resampled to the source ``rows`` (coordinates within the strip) and
    ``width`` columns: F.interpolate's bilinear, between the two rows around each first (at the
    network's width, where it is cheap), then across."""
    upper = rows.floor().long()
    lower = (upper + 1).clamp_(max=strip.shape[-2] - 1)
    share = (rows - upper).view(1, 1, -1, 1)
    between = strip[:, :, upper] * (1 - share) + strip[:, :, lower] * share
    return F.interpolate(between, size=(len(rows), width), mode="bilinear", align_corners=align_corners)

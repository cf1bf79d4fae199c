"""ONNX export that checks itself: the written file must reproduce the network on real frames.

The graph maps a normalised float32 batch (N, 3, H, W) to logits (N, C, h, w): argmax stays
outside, where the engine does it for every backend (TensorRT has known ArgMax pitfalls). The
spatial size is fixed (one file per camera resolution), the batch dimension dynamic. The
exporter is pinned: ``torch.onnx.export(dynamo=True)`` (torch.export based; the TorchScript
exporter is deprecated since torch 2.9), opset ``ONNX_OPSET``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import DenseASPPError, require

ONNX_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "images", "logits"
MAX_LOGIT_ERROR = 1e-3  # largest |ONNX - torch| logit accepted
MIN_ARGMAX_AGREEMENT = 0.999  # share of pixels whose class must agree
_MAX_BATCH = 64


class ExportError(DenseASPPError):
    """The exported file does not reproduce the network (it is not left behind)."""


@dataclass(frozen=True)
class ExportCheck:
    """How closely the written file reproduced torch on the check frames."""

    max_logit_error: float
    argmax_agreement: float
    frames: int
    non_finite: int = 0  # logits that are NaN or infinite, in torch's output or the file's

    def passed(self) -> bool:
        return (
            self.non_finite == 0 and self.max_logit_error <= MAX_LOGIT_ERROR
            and self.argmax_agreement >= MIN_ARGMAX_AGREEMENT
        )

    def describe(self) -> str:
        broken = f"{self.non_finite} non-finite logits (none allowed), " if self.non_finite else ""
        return (
            f"{broken}max |logit difference| {self.max_logit_error:.2e} (limit {MAX_LOGIT_ERROR:g}), "
            f"argmax agreement {100 * self.argmax_agreement:.3f}% (limit {100 * MIN_ARGMAX_AGREEMENT:g}%) "
            f"on {self.frames} frames"
        )


def export_onnx(
    model: nn.Module, path: str | Path, check_batch: torch.Tensor, metadata: dict[str, str], batch: int | None = None
) -> ExportCheck:
    """Write ``model`` (on the CPU, float32) as ONNX for ``check_batch``'s spatial size, then run the
    file under ONNX Runtime on ``check_batch`` (normalised real frames) and keep it only if it
    reproduces the network; ``metadata`` goes into the file's metadata_props. The batch dimension
    is dynamic, or fixed at ``batch`` (some TensorRT builds prefer static shapes)."""
    onnx = require("onnx", "onnx", "ONNX export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    check_batch = check_batch.detach().to("cpu", torch.float32).contiguous()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(descriptor)
    try:
        # A dynamic batch is traced at 2: torch.export specialises a dimension it sees at size 1.
        example = check_batch[:1].expand(batch or 2, -1, -1, -1).contiguous()
        _export(model, example, temporary, dynamic_batch=batch is None)
        graph = onnx.load(temporary)
        for key, value in {**metadata, "opset": str(ONNX_OPSET), "exporter": f"torch.onnx dynamo, torch {torch.__version__}"}.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(graph, temporary)
        check = verify_onnx(temporary, model, check_batch)
        if not check.passed():
            raise ExportError(f"the exported {path.name} does not reproduce the network: {check.describe()}")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return check


def _export(model: nn.Module, example: torch.Tensor, path: str, dynamic_batch: bool) -> None:
    shapes = ({0: torch.export.Dim("batch", min=1, max=_MAX_BATCH)},) if dynamic_batch else None
    # The exporter logs every torchvision operator it does not need, and tracebacks of what it
    # then raises (reported below in one line).
    quiet = logging.getLogger("torch")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecations, not the user's
            torch.onnx.export(
                model, (example,), path, dynamo=True, opset_version=ONNX_OPSET, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=shapes, external_data=False, verbose=False,
            )
    except Exception as error:  # the exporter raises many types; what matters is that it failed and why
        raise ExportError(f"torch.onnx.export failed: {type(error).__name__}: {error}") from None
    finally:
        quiet.setLevel(level)


def verify_onnx(path: str | Path, model: nn.Module, batch: torch.Tensor) -> ExportCheck:
    """Compare the file's logits under ONNX Runtime (CPU) with the network's, frame by frame."""
    onnxruntime = require("onnxruntime", "onnx", "checking an ONNX export")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst, agreeing, pixels, non_finite = 0.0, 0, 0, 0
    fixed = session.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) else 1
    with torch.no_grad():
        for index in range(len(batch)):
            frame = batch[index : index + 1].expand(step, -1, -1, -1).contiguous()
            expected = model(frame).float().numpy()
            actual = session.run([OUTPUT_NAME], {INPUT_NAME: frame.numpy()})[0]
            # NaN compares false to everything: without this count a NaN network "agrees" with itself.
            non_finite += int((~np.isfinite(expected)).sum() + (~np.isfinite(actual)).sum())
            worst = max(worst, float(np.nan_to_num(np.abs(actual - expected), nan=np.inf).max()))
            agreeing += int((actual.argmax(1) == expected.argmax(1)).sum())
            pixels += expected.shape[0] * expected.shape[2] * expected.shape[3]
    return ExportCheck(worst, agreeing / pixels, len(batch), non_finite)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file (model, classes, input size, normalisation, weights hash)."""
    onnx = require("onnx", "onnx", "reading ONNX metadata")
    return {entry.key: entry.value for entry in onnx.load(str(path), load_external_data=False).metadata_props}

"""``denseaspp export``: the network as a verified ONNX file for one camera resolution."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..declarations import add_flags
from ..inference.backends import BackendSettings
from ..serving.settings import NodeSettings
from .arguments import _count, _size


def register(commands) -> None:
    export = commands.add_parser(
        "export", help="write the network as ONNX (logits out, fixed HxW), checked against torch on real frames",
        description="The file is kept only if ONNX Runtime reproduces torch's logits within 1e-3 and its argmax on "
        "99.9%% of the pixels of real frames. Its metadata holds the model, classes, input size, normalisation "
        "and the weights' SHA-256.",
    )
    add_flags(export, NodeSettings, ["model.name"], flags={"model.name": "--model"})
    export.add_argument("--weights", required=True, help="checkpoint (.pkl, .pt, .safetensors) or demo")
    add_flags(export, NodeSettings, ["model.labels"])
    export.add_argument("--size", type=_size, required=True, help="input size HxW (one file per camera resolution; for weights that declare a size, that one)")
    export.add_argument("--batch", type=_count(1), help="fixed batch size; default: a dynamic batch dimension")
    export.add_argument("--output", type=Path, required=True, help="the .onnx file to write")
    add_flags(export, BackendSettings, ["calibration"])
    export.add_argument("--check-frames", type=_count(1), default=4, help="real frames the export is checked on")
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..inference import load_engine
    from ..inference.backends import EngineIdentity, export_verified

    engine = load_engine(args.weights, args.model, args.labels, device="cpu", precision="fp32")
    identity = EngineIdentity.of(engine.model, engine.model_name, engine.normalize)
    check = export_verified(
        engine.model, identity, args.output, args.size, batch=args.batch, calibration=args.calibration or None,
        frames=args.check_frames,
    )
    print(f"wrote {args.output}: {identity.model_name}, {identity.num_classes} classes, {args.size[0]}x{args.size[1]}, "
          f"batch {args.batch or 'dynamic'}; {check.describe()}")
    return 0

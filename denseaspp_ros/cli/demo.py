"""``denseaspp demo``: a drive replayed through segmentation_node, scored and pictured (see ros/demo.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..declarations import add_flags
from ..errors import DenseASPPError
from ..model import DEMO_WEIGHTS, MODEL_NAMES
from ..serving.settings import NodeSettings
from .arguments import _count, _size
from .synth import _faults


def register(commands) -> None:
    demo = commands.add_parser("demo", help="synthetic drive -> segmentation_node (demo weights, costmap) -> scores and pictures")
    demo.add_argument("--output", type=Path, default=Path("out/demo"))
    demo.add_argument("--frames", type=_count(1), default=60)
    demo.add_argument("--seed", type=_count(0), default=7, help="scene of the drive (the demo weights never saw seed 7)")
    demo.add_argument("--size", type=_size, default=(256, 512))
    demo.add_argument("--model", default=DEMO_WEIGHTS.model, choices=MODEL_NAMES)
    demo.add_argument("--weights", default=DEMO_WEIGHTS.name, help="checkpoint for the node; demo = the synthetic-world weights")
    add_flags(demo, NodeSettings, ["model.backend", "model.precision"])
    demo.add_argument(
        "--rate", type=float, help="replay speed factor on the recorded timing; default: the recorded rate, slowed to "
        "what the node sustains (measured first), so that every frame is processed",
    )
    demo.add_argument("--bag", type=Path, help="replay this bag instead of a synthetic drive")
    demo.add_argument("--cityscapes", type=Path, help="replay this Cityscapes-layout folder (as a 10 Hz drive) instead")
    demo.add_argument("--split", default="val", help="the --cityscapes split")
    demo.add_argument("--image-topic", default="/front/image_raw")
    demo.add_argument("--label-topic", default="/front/labels", help="mono8 trainIds matched by stamp (for mIoU)")
    demo.add_argument(
        "--domain-id", type=int, choices=range(0, 233), metavar="0..232",
        help="the DDS domain of the demo's node and replay; default: a random one in 10..100 other than $ROS_DOMAIN_ID, "
        "so a node already running on the shell's domain is neither fed nor counted",
    )
    demo.add_argument(
        "--faults", type=_faults, default=(), metavar="SPEC",
        help="camera faults in the synthetic drive, KIND@START-END in seconds, comma-separated (e.g. glare@2-3,frozen@4-5): "
        "health_timeline.png shows each fault, the health the node judged and the dangerous free cells with and without it",
    )
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from ..ros.demo import DemoOptions, run_demo

    if args.bag is not None and args.cityscapes is not None:
        raise DenseASPPError("give --bag or --cityscapes, not both")
    if args.faults and (args.bag is not None or args.cityscapes is not None):
        raise DenseASPPError("--faults goes into the synthetic drive: it cannot be given with --bag or --cityscapes")
    stamped = sorted({fault.kind for fault in args.faults if fault.kind.startswith("stamp_")})
    if stamped:
        # The demo's replay stamps each frame anew as it sends it (latency is measured from there).
        raise DenseASPPError(
            f"the demo's replay restamps every frame, so {', '.join(stamped)} would not reach the node: see them with "
            "denseaspp synth --faults and denseaspp eval --bag, or bench/camera_faults.py"
        )
    run_demo(DemoOptions(
        output=args.output, frames=args.frames, seed=args.seed, size=args.size, model=args.model, weights=args.weights,
        backend=args.backend, precision=args.precision,
        rate=args.rate, bag=args.bag, image_topic=args.image_topic, label_topic=args.label_topic,
        cityscapes=args.cityscapes, split=args.split, domain_id=args.domain_id, faults=args.faults,
    ))
    return 0

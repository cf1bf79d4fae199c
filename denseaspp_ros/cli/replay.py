"""``denseaspp replay``: a bag into a running segmentation node over DDS, measured (see ros/replay.py)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import DenseASPPError
from ..labels import get_label_set
from ..ros.names import SEGMENTATION_NODE
from .arguments import _count, write_json


def register(commands) -> None:
    replay = commands.add_parser("replay", help="replay a bag into a running segmentation node and measure it")
    replay.add_argument("bag", type=Path)
    replay.add_argument("--image-topic", required=True, help="the bag's Image or CompressedImage topic")
    replay.add_argument("--label-topic", help="mono8 trainIds in the bag: score the published masks")
    replay.add_argument("--camera-info-topic", help="the bag's CameraInfo topic, republished to --target-info-topic")
    replay.add_argument(
        "--odometry-topic", help="the bag's nav_msgs/Odometry topic (e.g. /odom), republished on its own name with the "
        "images' time base, for a node with costmap.odometry_topic",
    )
    replay.add_argument("--node", default=SEGMENTATION_NODE, help="name of the running node")
    replay.add_argument("--camera", default="front", help="the node's camera the frames are for")
    replay.add_argument("--target-topic", default="/front/image_raw", help="the node's image topic")
    replay.add_argument("--target-info-topic", default="/front/camera_info")
    replay.add_argument("--rate", type=float, default=1.0, help="factor on the recorded timing")
    replay.add_argument("--hz", type=float, help="fixed input rate instead of the recorded timing")
    replay.add_argument("--clock", action="store_true", help="keep the recorded stamps and publish /clock (use_sim_time)")
    replay.add_argument("--max-frames", type=_count(1))
    replay.add_argument(
        "--max-in-flight", type=_count(1), help="pause the drive while this many frames are unanswered, so that a slow spell "
        "delays frames instead of dropping them (1: none dropped; 2 keeps the node busier, but the frame waiting can "
        "still be replaced while the node finishes the last one's costmap); default: the schedule alone",
    )
    replay.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the node to subscribe")
    replay.add_argument("--find-peak", action="store_true", help="search the highest rate with < 5%% dropped frames")
    replay.add_argument("--labels", default="cityscapes")
    replay.add_argument("--json", type=Path)
    replay.set_defaults(run=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    if args.find_peak and args.max_in_flight:
        raise DenseASPPError("--max-in-flight pauses the drive instead of letting frames drop, so --find-peak would find "
                             "no limit: use one or the other")
    # Discovery stays on this machine unless the user says otherwise; the domain is the user's
    # (export the node's ROS_DOMAIN_ID), since replay talks to a node it did not start.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from ..ros.replay import Replayer, ReplayOptions

    options = ReplayOptions(
        bag=args.bag, image_topic=args.image_topic, node=args.node, camera=args.camera, target_topic=args.target_topic,
        camera_info_topic=args.camera_info_topic, target_info_topic=args.target_info_topic, label_topic=args.label_topic,
        odometry_topic=args.odometry_topic, rate=args.rate, hz=args.hz, clock=args.clock, max_frames=args.max_frames, wait=args.wait,
        max_in_flight=args.max_in_flight,
    )
    replayer = Replayer(get_label_set(args.labels))
    try:
        if args.find_peak:
            summary = replayer.find_peak(options)
            print(f"peak input rate with < 5% dropped: {summary['peak_hz'] or 'none of the rates tried'}")
        else:
            summary = replayer.replay(options).summary()
            print("  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    finally:
        replayer.close()
    if args.json:
        write_json(args.json, summary)
    return 0

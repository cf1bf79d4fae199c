"""``denseaspp eval``: mIoU of a model on a bag or a Cityscapes folder, or ``--merge`` of sharded reports."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from ..declarations import add_flags
from ..serving.settings import NodeSettings
from ..errors import DenseASPPError
from ..labels import LabelSet, get_label_set
from . import engine_options
from .arguments import _size, check_writable

if TYPE_CHECKING:  # the bag and evaluation modules load when the command runs, not for every command's parser
    from ..bags import MatchStats
    from ..eval.evaluate import Shard
    from ..eval.map_accuracy import DriveMapScorer
    from ..frames import Frame
    from ..inference import Segmentation


def register(commands) -> None:
    evaluation = commands.add_parser(
        "eval", help="mIoU of a model on a bag or a Cityscapes folder (official convention), or --merge shards"
    )
    evaluation.add_argument("--bag", type=Path, help="ROS 2 bag (folder or .mcap) or ROS 1 .bag")
    evaluation.add_argument("--image-topic", help="Image or CompressedImage topic")
    evaluation.add_argument("--label-topic", help="mono8 label topic, matched to images by header stamp")
    evaluation.add_argument("--label-format", choices=("trainid", "labelid"), default="trainid")
    evaluation.add_argument("--tolerance", type=float, default=0.001, help="stamp matching tolerance in seconds")
    evaluation.add_argument("--cityscapes", type=Path, help="Cityscapes-layout root (leftImg8bit/, gtFine/)")
    evaluation.add_argument("--split", default="val")
    evaluation.add_argument("--output", type=Path, required=True, help="report.json, report.md, confusion.png, per_class_iou.png")
    evaluation.add_argument("--save-predictions", type=Path, help="labelId PNGs for cityscapesscripts")
    evaluation.add_argument("--write-bag", type=Path, help="bag of the images, predicted masks and colour masks")
    evaluation.add_argument("--camera", type=Path, help="camera.yaml (as denseaspp synth writes it): costmaps in --write-bag too")
    evaluation.add_argument(
        "--odometry-topic", help="the bag's nav_msgs/Odometry (e.g. /odom): with --map-topic and --camera, score the costmap "
        "of the evaluated frames, anchored to it, against the true map",
    )
    evaluation.add_argument("--map-topic", help="the bag's true map in odom, an OccupancyGrid of trainIds (synthetic: /ground_truth/map)")
    evaluation.add_argument(
        "--faults-topic", default="/ground_truth/faults",
        help="the bag's camera fault truth (denseaspp synth --faults writes it; std_msgs/String JSON per frame): when the "
        "bag has it, each frame is judged by camera health as the node judges it and the report says how each fault "
        "was caught; '' to skip",
    )
    evaluation.add_argument("--shard", default="0/1", help="i/N: evaluate every N-th frame from the i-th")
    evaluation.add_argument("--merge", nargs="+", metavar="REPORT", help="merge the report.json of shards into --output")
    add_flags(evaluation, NodeSettings, ["model.multiscale"])
    evaluation.add_argument(
        "--input-size", type=_size, metavar="HxW",
        help="resize the network input to HxW; default: the size the weights declare, else the image's",
    )
    engine_options._add_engine_options(evaluation)
    evaluation.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from ..bags import BagWriter, MatchStats
    from ..eval.evaluate import Shard, evaluate
    from ..eval.outputs import PredictionWriter, camera_costmap
    from ..eval.report import build_report, format_percent, timing, write_report
    from ..synth.outputs import read_camera

    labels = get_label_set(args.labels)
    if args.merge:
        return _merge(args, labels)
    if (args.bag is None) == (args.cityscapes is None):
        raise DenseASPPError("give exactly one source: --bag PATH (with --image-topic and --label-topic) or --cityscapes ROOT")
    shard = Shard.parse(args.shard)
    for folder, option in ((args.output, "--output"), (args.save_predictions, "--save-predictions"),
                           (args.write_bag.parent if args.write_bag else None, "--write-bag")):
        if folder is not None:
            check_writable(folder, option)
    result_bag = BagWriter(args.write_bag) if args.write_bag else None  # refuses an existing bag now, not after the work
    stats = MatchStats()
    samples, total, unread_shard = _samples(args, labels, shard, stats)
    camera = read_camera(args.camera) if args.camera else None  # (model, mounting)
    costmap = camera_costmap(*camera, labels) if camera else None
    map_scorer = _map_scorer(args, labels, shard, camera)  # its inputs are checked before the model is built
    fault_truth = _fault_truth(args)
    segmenter = engine_options._build_segmenter(args, multiscale=args.multiscale, input_size=args.input_size)
    fault_scorer = None
    if fault_truth:
        from ..eval.fault_drive import FaultScorer

        fault_scorer = FaultScorer(fault_truth, segmenter.uncertainty_band)
    with ExitStack() as stack:
        bag = stack.enter_context(result_bag) if result_bag is not None else None
        writer = PredictionWriter(labels, bag, args.save_predictions, costmap, cityscapes_names=args.cityscapes is not None)

        def on_prediction(sample: Frame, segmentation: Segmentation) -> None:
            writer(sample, segmentation.train_ids)
            verdict = None
            if fault_scorer is not None:
                verdict = fault_scorer.judge(sample.pixels, sample.stamp_ns, segmentation.uncertainty)
            if map_scorer is not None:
                score = map_scorer(sample, segmentation.train_ids, verdict)
                if fault_scorer is not None:
                    fault_scorer.scored(score)

        result = evaluate(
            samples, segmenter, labels, unread_shard, on_prediction, total=total, stats=stats if args.bag else None,
            batch=args.batch,
        )
    if result.frames == 0:
        raise DenseASPPError("no frame was evaluated: " + ("; ".join(result.problems) or "the source is empty"))
    report = build_report(
        result.matrix, labels,
        frames_evaluated=result.frames, frames_unmatched_images=result.unmatched_images,
        frames_unmatched_labels=result.unmatched_labels, frames_corrupt=result.corrupt,
        frames_duplicate_stamps=result.duplicate_stamps, complete=result.complete,
        problems=result.problems, shard=f"{shard.index}/{shard.count}", source=str(args.bag or args.cityscapes),
        model=segmenter.model_name, weights=str(segmenter.weights or "random"),
        device=str(segmenter.device), precision=str(segmenter.dtype).removeprefix("torch."),
        input_size=segmenter.describe()["input_size"], **timing(result.seconds),
    )
    if map_scorer is not None:
        report["map"] = map_scorer.summary()
        map_scorer.plot(args.output)
    if fault_scorer is not None:
        report["camera_health"] = fault_scorer.summary()
    write_report(report, labels, args.output)
    if result.duplicate_stamps:
        _warn(f"{result.duplicate_stamps} messages were stamped like an earlier one of their topic: images and labels "
              "of equal stamps were paired in bag order (check the recorder's stamps)")
    print(f"mIoU {format_percent(report['miou'])} over {result.frames} frames"
          f" ({result.unmatched_images + result.unmatched_labels} unmatched, {result.corrupt} unreadable)"
          f"{'' if result.complete else ', INCOMPLETE'}; report in {args.output}/report.md")
    if map_scorer is not None:
        for source in map_scorer.SOURCES:
            summary = report["map"][source]
            if summary["frames"]:
                whole, mean = summary["accumulated"], summary["mean"]
                print(f"map of the drive from the {source.replace('_', ' ')}: free IoU {format_percent(whole['free_iou'])} "
                      f"(mean over the drive {format_percent(mean['free_iou'])}), obstacle contacts within a cell "
                      f"{format_percent(whole['contact_recall'])}, {whole['stray_lethal']} lethal cells away from any obstacle")
        if report["map"]["frames_without_pose"]:
            print(f"{report['map']['frames_without_pose']} frames had no odometry at their stamp: left out of the map")
    if fault_scorer is not None:
        _print_camera_health(report["camera_health"])
    return 0 if result.complete else 1


def _map_scorer(args: argparse.Namespace, labels: LabelSet, shard: Shard, camera: tuple | None) -> DriveMapScorer | None:
    """With --odometry-topic and --map-topic: the costmap of the evaluated frames against the bag's true map."""
    from ..bags import class_map, read_poses, read_topic
    from ..costmap import CostmapSettings, load_cost_table
    from ..eval.map_accuracy import DriveMapScorer

    if args.odometry_topic is None and args.map_topic is None:
        return None
    if args.bag is None or args.odometry_topic is None or args.map_topic is None or camera is None:
        raise DenseASPPError("map accuracy needs --bag with --odometry-topic, --map-topic and --camera (camera.yaml)")
    if shard.count != 1:
        raise DenseASPPError("map accuracy follows the whole drive: it cannot be sharded (--shard 0/1)")
    maps = read_topic(args.bag, args.map_topic, "nav_msgs/msg/OccupancyGrid")
    if not maps:
        raise DenseASPPError(f"{args.map_topic} in {args.bag} holds no map")
    truth, truth_grid = class_map(maps[-1][1])
    return DriveMapScorer(
        load_cost_table(None, labels), CostmapSettings(), *camera, read_poses(args.bag, args.odometry_topic, _warn),
        truth, truth_grid,
    )


def _fault_truth(args: argparse.Namespace) -> list[dict]:
    """The bag's fault truth records (none without a bag, a topic or such messages)."""
    from ..bags import count_messages, read_topic

    if args.bag is None or not args.faults_topic or not count_messages(args.bag, args.faults_topic):
        return []
    try:
        return [json.loads(message.data) for _, message in read_topic(args.bag, args.faults_topic, "std_msgs/msg/String")]
    except (json.JSONDecodeError, TypeError) as error:
        raise DenseASPPError(f"{args.faults_topic} in {args.bag} is not fault truth as denseaspp synth writes it: {error}") from None


def _print_camera_health(summary: dict) -> None:
    def frames(values: list) -> str:
        return "never" if any(v is None for v in values) else str(max(values))

    for kind, figures in summary["kinds"].items():
        dangerous = figures["dangerous_free_per_frame"]
        print(f"camera health, {kind}: {figures['frames_judged_not_ok']} of {figures['frames']} frames judged "
              f"({figures['frames_in_fault']} in FAULT, {figures['frames_withheld']} kept out of the free cells), "
              f"judged after {frames(figures['detected_after_frames'])} frames, "
              f"cleared {frames(figures['cleared_after_frames'])} frames after it"
              + ("" if dangerous is None else f", {dangerous:.2f} dangerous free cells a frame"))
    clean = summary["clean"]
    print(f"camera health, frames without a fault: {clean['frames_in_fault']} FAULT and {clean['frames_degraded']} DEGRADED "
          f"of {clean['frames']} (and {clean['frames_clearing_after_a_fault']} clearing after a fault)" + ("" if clean["dangerous_free_per_frame"] is None
                                     else f", {clean['dangerous_free_per_frame']:.2f} dangerous free cells a frame"))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _samples(
    args: argparse.Namespace, labels: LabelSet, shard: Shard, stats: MatchStats
) -> tuple[Iterator[Frame], int | None, Shard]:
    """The source's samples, how many this shard will take when the source can tell (for the ETA),
    and the shard still to pick from them: a folder reads only its shard's files, a bag reads all."""
    from ..bags import count_messages
    from ..eval.evaluate import Shard, bag_samples, cityscapes_samples

    if args.cityscapes is not None:
        return cityscapes_samples(args.cityscapes, args.split, labels, args.max_image_pixels, shard), None, Shard()
    if not args.image_topic or not args.label_topic:
        raise DenseASPPError("--bag needs --image-topic and --label-topic")
    samples = bag_samples(
        args.bag, args.image_topic, args.label_topic, labels, args.label_format, args.tolerance, stats, args.max_image_pixels,
    )
    total = count_messages(args.bag, args.image_topic)
    return samples, None if total is None else len(range(shard.index, total, shard.count)), shard


def _merge(args: argparse.Namespace, labels: LabelSet) -> int:
    from ..eval.report import format_percent, merge_reports, read_report, write_report

    report = merge_reports([read_report(Path(path)) for path in args.merge], labels)
    write_report(report, labels, args.output)
    print(f"merged {len(args.merge)} reports: mIoU {format_percent(report['miou'])} over {report['frames_evaluated']} frames; "
          f"see {args.output}/report.md")
    return 0

"""The end-to-end demo: a synthetic drive replayed through segmentation_node, scored and pictured.

1. render a drive of the synthetic street world into a bag (images, labels, ground-truth grids);
2. start segmentation_node as ``launch/seg.launch.py`` does: the package's config/params.yaml,
   with the weights (``demo``: the packaged synthetic-world weights) given on the command line;
3. replay the bag into it over DDS and record everything it publishes;
4. leave in the output folder: report.json/.md (mIoU of the masks the node published, FPS,
   latency, drops, costmap agreement), confusion.png, per_class_iou.png, drive.gif (the masks over
   the images), costmap.png (the node's costmap beside the ground truth) and published_bag/.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from ..bags import BagWriter, open_bag
from ..costmap import load_cost_table
from ..errors import DenseASPPError
from ..eval.report import build_report, write_report
from ..image_messages import class_mask_to_array, decode_image
from ..labels import CITYSCAPES
from ..synth.drive import DriveConfig
from ..synth.outputs import GRID_TOPIC, IMAGE_TOPIC, LABEL_TOPIC, write_drive
from .replay import Replayer, ReplayOptions

NODE = "segmentation_node"
_MARKER = "demo_report.json"  # what says a folder holds an earlier demo and may be replaced


@dataclass
class DemoOptions:
    output: Path = Path("out/demo")
    frames: int = 60
    seed: int = 7
    size: tuple[int, int] = (256, 512)
    model: str = "MobileNetDenseASPP"
    weights: str = "demo"
    rate: float = 1.0
    bag: Path | None = None  # a user's bag instead of the synthetic drive
    cityscapes: Path | None = None  # or a Cityscapes-layout folder, replayed as a 10 Hz drive
    split: str = "val"
    image_topic: str = IMAGE_TOPIC
    label_topic: str | None = LABEL_TOPIC


def package_config(name: str) -> Path:
    """A file of the package's config/: installed share (colcon or pip install .) or the source tree."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("denseaspp_ros")) / "config" / name)
    except Exception:  # not in the ament index: a virtual environment or an editable install
        pass
    candidates += [Path(sys.prefix) / "share" / "denseaspp_ros" / "config" / name,
                   Path(__file__).resolve().parents[2] / "config" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DenseASPPError(f"config/{name} of denseaspp_ros not found (looked in {', '.join(map(str, candidates))})")


def network_environment() -> dict[str, str]:
    """DDS stays on this machine, in a private domain; big images pass through shared memory."""
    profile = str(package_config("fastdds_large_images.xml"))
    return {
        **os.environ,
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", str(random.randint(10, 100))),
        "FASTDDS_DEFAULT_PROFILES_FILE": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", profile),
        "FASTRTPS_DEFAULT_PROFILES_FILE": os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
        "PYTHONUNBUFFERED": "1",
    }


def prepare_output(output: Path) -> None:
    if output.exists() and any(output.iterdir()):
        if not (output / _MARKER).is_file() and not (output / "node.log").is_file():
            raise DenseASPPError(f"{output} holds files that are not an earlier demo's: choose another --output")
        shutil.rmtree(output)
    output.mkdir(parents=True)


def run_demo(options: DemoOptions, say=print) -> dict:
    output = options.output
    prepare_output(output)
    bag = options.bag
    if options.cityscapes is not None:
        bag = output / "cityscapes_bag"
        say(f"[1/4] packing {options.cityscapes} ({options.split}) into {bag} as a 10 Hz drive")
        _cityscapes_bag(options.cityscapes, options.split, bag)
    elif bag is None:
        bag = output / "drive_bag"
        say(f"[1/4] rendering a {options.frames}-frame synthetic drive (seed {options.seed}) into {bag}")
        write_drive(DriveConfig(frames=options.frames, seed=options.seed, size=options.size), None, bag=bag, progress=False)
    else:
        say(f"[1/4] using {bag}")
    params = package_config("params.yaml")
    command = [
        sys.executable, "-m", "denseaspp_ros.ros.node", "--ros-args", "--params-file", str(params),
        "-p", f"model.name:={options.model}", "-p", f"model.weights:={options.weights}", "-r", f"__node:={NODE}",
    ]
    say(f"[2/4] starting {NODE} with {params} and model.weights:={options.weights} (as seg.launch.py weights:=...)")
    environment = network_environment()
    # This process replays into the node: the same domain, discovery range and Fast DDS profile
    # (FASTDDS_* for Fast DDS 3 on Kilted, FASTRTPS_* for Fast DDS 2 on Humble and Jazzy).
    os.environ.update({k: environment[k] for k in (
        "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
    )})
    log = (output / "node.log").open("wb")
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    replayer = Replayer(CITYSCAPES)
    try:
        costmap_topic = f"/{NODE}/costmap"
        replay_options = ReplayOptions(
            bag=bag, image_topic=options.image_topic, label_topic=options.label_topic, node=NODE, rate=options.rate,
            record=[(costmap_topic, OccupancyGrid)],
        )
        say(f"[3/4] replaying {bag} into the node at {options.rate}x the recorded rate")
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if replayer.spin_for(0.2, lambda: replayer.node.count_subscribers(IMAGE_TOPIC) > 0):
                break
        if process.poll() is not None:
            raise DenseASPPError(f"{NODE} exited ({process.returncode}); see {output / 'node.log'}")
        result = replayer.replay(replay_options)
    finally:
        replayer.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    say("[4/4] scoring and drawing")
    return _write_results(options, bag, result, output, say)


def _write_results(options: DemoOptions, bag: Path, result, output: Path, say) -> dict:
    mask_topic = f"/{NODE}/front/mask"
    costmap_topic = f"/{NODE}/costmap"
    to_original = result.sent_stamps
    recorded = _read_topics(bag, (options.image_topic, GRID_TOPIC))  # one pass over the input bag
    agreement = _costmap_agreement(recorded[GRID_TOPIC], result.recorded.get(costmap_topic, []), to_original, output)
    details = {**result.summary(), "costmap": agreement, "model": options.model, "weights": options.weights,
               "source": str(bag), "complete": True}
    details.pop("miou")
    if result.matrix is not None and result.matrix.counts.any():
        report = build_report(result.matrix, CITYSCAPES, frames_evaluated=result.received, **details)
        write_report(report, CITYSCAPES, output)
    else:
        report = {"miou": None, **details}
    (output / _MARKER).write_text(json.dumps(report, indent=2))
    _write_gif(recorded[options.image_topic], result.recorded.get(mask_topic, []), to_original, output / "drive.gif")
    with BagWriter(output / "published_bag") as writer:
        for topic, kind in ((mask_topic, "sensor_msgs/msg/Image"), (costmap_topic, "nav_msgs/msg/OccupancyGrid")):
            for received, raw in result.recorded.get(topic, []):
                writer.write_raw(topic, kind, received, raw)
    say(
        f"mIoU of the published masks {_percent(report.get('miou'))}; {result.received}/{result.sent} frames came back "
        f"({_number(details['output_rate_hz'])} Hz out, latency p50 {_number(details['latency_ms_p50'])} ms, "
        f"p95 {_number(details['latency_ms_p95'])} ms); costmap free IoU {_percent(agreement.get('free_iou'))}, "
        f"lethal IoU {_percent(agreement.get('lethal_iou'))}"
    )
    say(f"results in {output}/: report.md, confusion.png, per_class_iou.png, drive.gif, costmap.png, published_bag/, node.log")
    return report


def _cityscapes_bag(root: Path, split: str, bag: Path) -> None:
    from ..eval.evaluate import cityscapes_samples
    from ..synth.drive import START_STAMP_NS
    from ..synth.outputs import CAMERA_FRAME

    with BagWriter(bag) as writer:
        for sample in cityscapes_samples(root, split, CITYSCAPES):
            stamp = START_STAMP_NS + sample.stamp_ns
            writer.write_image(IMAGE_TOPIC, stamp, CAMERA_FRAME, sample.image, "rgb8")
            writer.write_image(LABEL_TOPIC, stamp, CAMERA_FRAME, sample.truth, "mono8")


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _read_topics(bag: Path, topics: tuple[str, ...]) -> dict[str, dict[int, object]]:
    """topic -> {header stamp: message} for the given topics (empty for those the bag lacks)."""
    found: dict[str, dict[int, object]] = {topic: {} for topic in topics}
    reader = open_bag(bag)
    try:
        connections = [c for c in reader.connections if c.topic in found]
        for connection, _, raw in reader.messages(connections=connections):
            message = reader.deserialize(raw, connection.msgtype)
            found[connection.topic][message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec] = message
        return found
    finally:
        reader.close()


def _costmap_agreement(
    truths: dict[int, object], grids: list[tuple[int, bytes]], to_original: dict[int, int], output: Path
) -> dict:
    """IoU of free (cost 0) and lethal (100) cells between the node's costmaps and the ground truth,
    over the cells the costmap knows; and costmap.png of the last pair."""
    if not grids or not truths:
        return {"frames": 0, "free_iou": None, "lethal_iou": None}
    table = load_cost_table(None, CITYSCAPES)
    class_cost = np.full(256, -1, np.int16)
    for train_id, entry in enumerate(table.classes):
        class_cost[train_id] = -1 if entry.cost is None else entry.cost
    counts = {"free": [0, 0], "lethal": [0, 0]}  # intersection, union
    known_cells = total_cells = frames = 0
    last = None
    for _, raw in grids:
        grid = deserialize_message(raw, OccupancyGrid)
        stamp = to_original.get(grid.header.stamp.sec * 1_000_000_000 + grid.header.stamp.nanosec)
        truth = truths.get(stamp)
        if truth is None:
            continue
        predicted = np.array(grid.data, np.int16).reshape(grid.info.height, grid.info.width)
        classes = np.asarray(truth.data).astype(np.int16).reshape(truth.info.height, truth.info.width)
        expected = class_cost[np.where(classes < 0, 255, classes)]
        known = (predicted >= 0) & (expected >= 0)
        for name, value in (("free", 0), ("lethal", 100)):
            a, b = (predicted == value) & known, (expected == value) & known
            counts[name][0] += int((a & b).sum())
            counts[name][1] += int((a | b).sum())
        known_cells += int((predicted >= 0).sum())
        total_cells += predicted.size
        frames += 1
        last = (predicted, expected, classes)
    if last is not None:
        _plot_costmaps(*last, output / "costmap.png")
    return {
        "frames": frames,
        "free_iou": counts["free"][0] / counts["free"][1] if counts["free"][1] else None,
        "lethal_iou": counts["lethal"][0] / counts["lethal"][1] if counts["lethal"][1] else None,
        "known_fraction": known_cells / total_cells if total_cells else None,
    }


def _plot_costmaps(predicted: np.ndarray, expected: np.ndarray, classes: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def picture(costs: np.ndarray) -> np.ndarray:
        colours = plt.get_cmap("RdYlGn_r")(np.clip(costs, 0, 100) / 100.0)[..., :3]
        colours[costs < 0] = 0.25
        return colours.transpose(1, 0, 2)[::-1, ::-1]  # forward up, left on the left

    palette = np.full((256, 3), 64, np.uint8)
    palette[: CITYSCAPES.num_classes] = CITYSCAPES.colors
    figure, axes = plt.subplots(1, 3, figsize=(12, 5.5))
    axes[0].imshow(picture(predicted))
    axes[0].set_title("node's ~/costmap (grey: unknown)")
    axes[1].imshow(picture(expected))
    axes[1].set_title("ground truth, as costs")
    axes[2].imshow(palette[np.where(classes < 0, 255, classes)].transpose(1, 0, 2)[::-1, ::-1])
    axes[2].set_title("ground truth classes")
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("bird's-eye view around base_link, forward up (last frame of the drive)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _write_gif(
    images: dict[int, object], masks: list[tuple[int, bytes]], to_original: dict[int, int], path: Path, limit: int = 80
) -> None:
    """The published masks blended over their input images, in drive order."""
    from PIL import Image as Picture

    if not masks:
        return
    frames = []
    for _, raw in masks[:limit]:
        mask = deserialize_message(raw, Image)
        original = images.get(to_original.get(mask.header.stamp.sec * 1_000_000_000 + mask.header.stamp.nanosec))
        if original is None:
            continue
        image, is_bgr = decode_image(original)
        rgb = np.ascontiguousarray(image[..., ::-1]) if is_bgr else image
        overlay = CITYSCAPES.overlay(rgb, np.ascontiguousarray(class_mask_to_array(mask)), 0.5)
        frames.append(Picture.fromarray(np.concatenate([rgb, overlay], axis=0)))
    if frames:
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, optimize=True)

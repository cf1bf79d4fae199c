"""The end-to-end demo: a synthetic drive replayed through segmentation_node, scored and pictured.

1. render a drive of the synthetic street world into a bag (images, labels, ground-truth grids);
2. start segmentation_node as ``launch/seg.launch.py`` does: the package's config/params.yaml,
   with the weights (``demo``: the packaged synthetic-world weights) given on the command line;
3. replay the bag into it over DDS and record everything it publishes;
4. leave in the output folder: report.json/.md (mIoU of the masks the node published, FPS,
   latency, drops, costmap accuracy), confusion.png, per_class_iou.png, drive.gif (the masks over
   the images), costmap.png and published_bag/.

A bag with odometry (synthetic drives carry ``/odom``) is replayed with it and the node keeps its
costmap in odom (``costmap.odometry_topic``). With the drive's true map (``/ground_truth/map``)
each published grid is scored against it, and so is the map accumulated over the drive:
costmap.png shows that map above the truth, costmap_window.gif the rolling window beside the truth
under it. Without them the grids are scored against the vehicle-centric ground-truth grids.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import OccupancyGrid
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image

from ..bags import COMPRESSED_IMAGE, BagWriter, class_map, grid_spec, open_bag, read_topic
from ..costmap import load_cost_table
from ..declarations import format_size
from ..errors import DenseASPPError
from ..costmap.render import cost_image
from ..eval.costmap_agreement import CostmapAgreement
from ..eval.map_accuracy import DriveMap, MapAccuracy
from ..eval.report import build_report, format_number, format_percent, write_report
from ..image_messages import class_mask_to_array, decode_frame
from ..labels import CITYSCAPES
from ..model import DEMO_WEIGHTS
from ..serving.camera_health import State
from ..synth.drive import MAP_FRAME, DriveConfig
from ..synth.faults import Fault, format_faults
from ..synth.outputs import FAULTS_TOPIC, GRID_TOPIC, IMAGE_TOPIC, LABEL_TOPIC, MAP_TOPIC, ODOMETRY_TOPIC, write_drive
from ..frames import stamp_ns
from . import names
from .names import SEGMENTATION_NODE, camera_output_topic, of_node
from .replay import Replayer, ReplayOptions, ReplayResult

NODE = SEGMENTATION_NODE
MASK_TOPIC = of_node(NODE, camera_output_topic("front", "mask"))
COSTMAP_TOPIC = of_node(NODE, names.COSTMAP_TOPIC)
HEALTH_TOPIC = of_node(NODE, camera_output_topic("front", "health"))
# Configure loads the weights and, on its first start with an exported backend, builds the engine.
_CONFIGURE_WAIT_S = 600
_MARKER = "demo_report.json"  # what says a folder holds an earlier demo and may be replaced
# Replayed at most at this share of the rate the node sustains one frame at a time: what it holds
# with the jitter of a shared CPU, so that (nearly) every frame is processed.
HEADROOM = 0.8
# A paced replay also pauses the drive until the node has answered the frame before: a slower spell
# on a shared CPU delays frames rather than dropping them. (With two out, the second can still be
# replaced: the node takes the next frame only once the last one's costmap is done, after its mask.)
IN_FLIGHT = 1
_WORST_CLASSES = 5  # the summary names this many of the classes that scored lowest


@dataclass
class DemoOptions:
    output: Path = Path("out/demo")
    frames: int = 60
    seed: int = 7
    size: tuple[int, int] = (256, 512)
    model: str = DEMO_WEIGHTS.model  # the network of the demo weights
    weights: str = DEMO_WEIGHTS.name
    backend: str = "auto"  # model.backend of the node: on a CPU, the fastest installed exported runtime
    precision: str = "auto"
    rate: float | None = None  # factor on the recorded timing; None: what the node sustains (measured first)
    bag: Path | None = None  # a user's bag instead of the synthetic drive
    cityscapes: Path | None = None  # or a Cityscapes-layout folder, replayed as a 10 Hz drive
    split: str = "val"
    image_topic: str = IMAGE_TOPIC
    label_topic: str | None = LABEL_TOPIC
    odometry_topic: str = ODOMETRY_TOPIC  # used when the bag has it
    domain_id: int | None = None  # the DDS domain of the node and the replay; None: a random one not the shell's
    faults: tuple[Fault, ...] = ()  # camera faults in the synthetic drive: health_timeline.png shows what they did


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


def fastdds_profile_variable(distro: str | None = None) -> str:
    """The variable the installed Fast DDS reads its XML profile from: Fast DDS 2 (Humble, Jazzy)
    reads only FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3 (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE
    and warns at every start when the old name is set."""
    distro = distro or os.environ.get("ROS_DISTRO") or _installed_distro()
    return "FASTRTPS_DEFAULT_PROFILES_FILE" if distro in ("humble", "iron", "jazzy") else "FASTDDS_DEFAULT_PROFILES_FILE"


def _installed_distro() -> str:
    """The distro of the ROS 2 wheels in this environment (ros-jazzy-rclpy: jazzy; ros-rclpy: the newest)."""
    from importlib.metadata import distributions

    names = {distribution.metadata["Name"] or "" for distribution in distributions()}
    return next((name.split("-")[1] for name in names if name.startswith("ros-") and name.endswith("-rclpy")), "")


def network_environment(domain_id: int | None = None) -> dict[str, str]:
    """The DDS variables of the demo's processes: discovery on this machine, a domain of its own
    (``domain_id``, else a random one other than the shell's, so a node running on the shell's
    domain is never fed or counted), and the profile that lets big images through shared memory,
    under the one name the installed Fast DDS reads."""
    if domain_id is None:
        taken = os.environ.get("ROS_DOMAIN_ID")
        domain_id = random.choice([domain for domain in range(10, 101) if str(domain) != taken])
    variable = fastdds_profile_variable()
    return {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(domain_id),
        variable: os.environ.get(variable, str(package_config("fastdds_large_images.xml"))),
    }


@contextmanager
def environment_while(variables: dict[str, str]) -> Iterator[None]:
    """``variables`` set in this process only while DDS reads them (rclpy.init and the first node),
    then the process's own values back."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def prepare_output(output: Path) -> None:
    if output.exists() and any(output.iterdir()):
        if not (output / _MARKER).is_file() and not (output / "node.log").is_file():
            raise DenseASPPError(f"{output} holds files that are not an earlier demo's: choose another --output")
        shutil.rmtree(output)
    output.mkdir(parents=True)


def run_demo(options: DemoOptions, say=print) -> dict:
    output = options.output
    prepare_output(output)
    bag = _input_bag(options, say)
    dds = network_environment(options.domain_id)
    say(f"DDS: domain {dds['ROS_DOMAIN_ID']}, discovery on this machine only")
    with (output / "node.log").open("wb") as log:
        odometry = _odometry_topic(options, bag)
        input_size = _network_input_size(options, bag)
        node_topic = _node_image_topic(options, bag)
        process = _start_node(options, input_size, odometry, node_topic, {**os.environ, **dds, "PYTHONUNBUFFERED": "1"}, log, say)
        try:
            result, pacing = _replay(options, bag, odometry, node_topic, process, dds, say)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    say("[4/4] scoring and drawing")
    return _write_results(options, bag, result, pacing, input_size, int(dds["ROS_DOMAIN_ID"]), output, say)


def _input_bag(options: DemoOptions, say) -> Path:
    """The bag to replay: the user's, a Cityscapes split packed into one, or a freshly rendered drive."""
    if options.cityscapes is not None:
        bag = options.output / "cityscapes_bag"
        say(f"[1/4] packing {options.cityscapes} ({options.split}) into {bag} as a 10 Hz drive")
        _cityscapes_bag(options.cityscapes, options.split, bag)
    elif options.bag is None:
        bag = options.output / "drive_bag"
        say(f"[1/4] rendering a {options.frames}-frame synthetic drive (seed {options.seed}) into {bag}")
        if options.faults:
            say(f"      with camera faults {format_faults(options.faults)}")
        write_drive(_drive_config(options), None, bag=bag, progress=False)
    else:
        bag = options.bag
        say(f"[1/4] using {bag}")
    return bag


def _drive_config(options: DemoOptions) -> DriveConfig:
    return DriveConfig(frames=options.frames, seed=options.seed, size=options.size, faults=options.faults)


def _network_input_size(options: DemoOptions, bag: Path) -> tuple[int, int]:
    """The size the weights declare they run at, else the bag images': given to the node, so an
    exported engine is built (or taken from the cache) while it configures, not while the drive plays."""
    from ..model import declared_input_size  # torch: only here, the rest of the demo does without it

    return declared_input_size(options.weights) or _image_size(bag, options.image_topic)


def _node_image_topic(options: DemoOptions, bag: Path) -> str:
    """Where the node's front camera listens: the replayed image topic, with /compressed when the
    bag holds CompressedImages (the node then subscribes to those)."""
    reader = open_bag(bag)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
    finally:
        reader.close()
    if options.image_topic not in types:
        raise DenseASPPError(f"{bag} has no topic {options.image_topic} (--image-topic); it has: {', '.join(sorted(types))}")
    return IMAGE_TOPIC + ("/compressed" if types[options.image_topic] == COMPRESSED_IMAGE else "")


def _start_node(
    options: DemoOptions, input_size: tuple[int, int], odometry: str | None, image_topic: str, environment: dict[str, str],
    log, say,
) -> subprocess.Popen:
    """segmentation_node as seg.launch.py starts it: the package's params.yaml, the weights on the
    command line, the network input size, and a camera of the bag's image type."""
    params = package_config("params.yaml")
    settings = {
        "model.name": options.model, "model.weights": options.weights, "model.backend": options.backend,
        "model.precision": options.precision, "model.input_height": input_size[0], "model.input_width": input_size[1],
        "front.image_topic": image_topic, "front.compressed": str(image_topic.endswith("/compressed")).lower(),
    }
    if odometry:
        settings["costmap.odometry_topic"] = odometry
    command = [
        sys.executable, "-m", "denseaspp_ros.ros.node", "--ros-args", "--params-file", str(params),
        *(argument for name, value in settings.items() for argument in ("-p", f"{name}:={value}")), "-r", f"__node:={NODE}",
    ]
    say(f"[2/4] starting {NODE} with {params} and model.weights:={options.weights} (as seg.launch.py weights:=...), "
        f"model.backend:={options.backend}, network input {format_size(input_size)}")
    return subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)


def _odometry_topic(options: DemoOptions, bag: Path) -> str | None:
    """The bag's odometry topic when it has one and a true map in odom to score against: the node then
    anchors its costmap in odom. Otherwise its grid stays vehicle-centric, like the truth grids it is
    scored against."""
    reader = open_bag(bag)
    try:
        topics = {c.topic for c in reader.connections}
    finally:
        reader.close()
    return options.odometry_topic if {options.odometry_topic, MAP_TOPIC} <= topics else None


def _image_size(bag: Path, topic: str) -> tuple[int, int]:
    """(height, width) of the bag's first image on ``topic``."""
    reader = open_bag(bag)
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        for connection, _, raw in reader.messages(connections=connections):
            pixels = decode_frame(reader.deserialize(raw, connection.msgtype)).pixels
            return pixels.shape[0], pixels.shape[1]
    finally:
        reader.close()
    raise DenseASPPError(f"{bag} has no image on {topic}")


@dataclass
class Pacing:
    """The rate the drive was replayed at, and why."""

    rate: float  # factor on the recorded timing
    recorded_hz: float | None
    node_seconds: float | None = None  # per frame, measured one at a time; None when --rate was given

    @property
    def replayed_hz(self) -> float | None:
        return None if self.recorded_hz is None else self.rate * self.recorded_hz


def _replay(
    options: DemoOptions, bag: Path, odometry: str | None, node_topic: str, process: subprocess.Popen,
    dds: dict[str, str], say,
) -> tuple[ReplayResult, Pacing]:
    """Wait for the node to subscribe (ten minutes at most, while it lives); without --rate measure
    what it sustains and slow the drive to fit; then replay the bag into it, recording its costmaps."""
    with environment_while(dds):  # the replayer joins the node's domain; this process keeps its own
        replayer = Replayer(CITYSCAPES)
    try:
        replay_options = ReplayOptions(
            bag=bag, image_topic=options.image_topic, label_topic=options.label_topic, node=NODE, rate=1.0,
            odometry_topic=odometry, record=[(COSTMAP_TOPIC, OccupancyGrid), (HEALTH_TOPIC, DiagnosticStatus)],
        )
        deadline = time.monotonic() + _CONFIGURE_WAIT_S
        while process.poll() is None and time.monotonic() < deadline:
            if replayer.spin_for(0.2, lambda: replayer.node.count_subscribers(node_topic) > 0):
                break
        if process.poll() is not None:
            raise DenseASPPError(f"{NODE} exited ({process.returncode}); see {options.output / 'node.log'}")
        pacing = _pace(options, replayer, replay_options, _recorded_rate(bag, options.image_topic), say)
        in_flight = IN_FLIGHT if options.rate is None else None  # a rate asked for is kept to, drops and all
        return replayer.replay(replace(replay_options, rate=pacing.rate, max_in_flight=in_flight)), pacing
    finally:
        replayer.close()


def _pace(options: DemoOptions, replayer: Replayer, replay_options: ReplayOptions, recorded_hz: float | None, say) -> Pacing:
    """--rate as given, or the recorded rate slowed to what the node holds (never sped up)."""
    if options.rate is not None:
        say(f"[3/4] replaying {replay_options.bag} into the node at {options.rate:g}x the recorded rate")
        return Pacing(options.rate, recorded_hz)
    seconds = replayer.pace(replay_options)
    if seconds is None or recorded_hz is None:
        say(f"[3/4] replaying {replay_options.bag} at the recorded rate (the node's pace could not be measured)")
        return Pacing(1.0, recorded_hz, seconds)
    rate = min(1.0, HEADROOM / (seconds * recorded_hz))
    say(f"[3/4] the node takes {1000 * seconds:.0f} ms a frame: replaying {replay_options.bag} at "
        f"{rate * recorded_hz:.1f} Hz ({rate:.2f}x the recorded {recorded_hz:.1f} Hz, paused while a frame is "
        f"unanswered; --rate R sets it)")
    return Pacing(rate, recorded_hz, seconds)


def _recorded_rate(bag: Path, topic: str) -> float | None:
    """Images per second of the bag's ``topic``, from their recording times (None with fewer than two)."""
    reader = open_bag(bag)
    try:
        times = [t for _, t, _ in reader.messages(connections=[c for c in reader.connections if c.topic == topic])]
    finally:
        reader.close()
    if len(times) < 2 or times[-1] == times[0]:
        return None
    return (len(times) - 1) / ((times[-1] - times[0]) / 1e9)


def _write_results(
    options: DemoOptions, bag: Path, result: ReplayResult, pacing: Pacing, input_size: tuple[int, int], domain_id: int,
    output: Path, say,
) -> dict:
    to_original = result.sent_stamps
    recorded = _read_topics(bag, (options.image_topic, GRID_TOPIC, MAP_TOPIC))  # one pass over the input bag
    grids = [deserialize_message(raw, OccupancyGrid) for _, raw in result.recorded.get(COSTMAP_TOPIC, [])]
    anchored = [grid for grid in grids if grid.header.frame_id == MAP_FRAME]
    truth_maps = list(recorded[MAP_TOPIC].values())
    scored: list[MapAccuracy] = []
    if truth_maps and anchored:
        agreement, window, scored = _map_accuracy(truth_maps[0], anchored, output)
    else:
        agreement, window = _costmap_agreement(recorded[GRID_TOPIC], grids, to_original, output)
    verdicts = [deserialize_message(raw, DiagnosticStatus) for _, raw in result.recorded.get(HEALTH_TOPIC, [])]
    details = {**result.summary(), "replay_rate": pacing.rate, "recorded_hz": pacing.recorded_hz,
               "replayed_hz": pacing.replayed_hz, "node_ms_per_frame": None if pacing.node_seconds is None
               else 1000 * pacing.node_seconds, "costmap": agreement, "model": options.model, "weights": options.weights,
               "input_size": format_size(input_size), "source": str(bag), "domain_id": domain_id, "complete": True,
               "health": _health_counts(verdicts)}
    details.pop("miou")
    masks = result.recorded.get(MASK_TOPIC, [])
    _write_gif(recorded[options.image_topic], masks, to_original, output / "drive.gif")
    if result.matrix is not None and result.matrix.counts.any():
        report = build_report(result.matrix, CITYSCAPES, frames_evaluated=result.received, **details)
    else:
        report = {"miou": None, "per_class": {}, **details}
    if options.faults and options.bag is None and options.cityscapes is None:
        report["faults"] = _write_timeline(
            options, bag, anchored, scored, verdicts, to_original, output / "health_timeline.png", say)
    report["summary"] = summary_lines(report)
    _write_overview(recorded[options.image_topic], masks, to_original, window, report, output / "overview.png")
    plotted = {"per_class_iou.png", "confusion.png"} if "confusion" in report else set()  # by write_report
    report["pictures"] = {name: caption for name, caption in PICTURES.items() if name in plotted or (output / name).is_file()}
    if "confusion" in report:
        write_report(report, CITYSCAPES, output)
    (output / _MARKER).write_text(json.dumps(report, indent=2))
    with BagWriter(output / "published_bag") as writer:
        for topic, kind in ((MASK_TOPIC, "sensor_msgs/msg/Image"), (COSTMAP_TOPIC, "nav_msgs/msg/OccupancyGrid")):
            for received, raw in result.recorded.get(topic, []):
                writer.write_raw(topic, kind, received, raw)
    say("\n".join(report["summary"]))
    say(f"results in {output}/: overview.png first; report.md links every picture; published_bag/, node.log")
    return report


PICTURES = {
    "overview.png": "a frame, its published mask, the costmap beside the truth, per-class IoU",
    "drive.gif": "the published masks over the drive's images",
    "costmap.png": "the costmap (accumulated along the drive, in odom, when the bag has odometry) above the truth",
    "costmap_window.gif": "the rolling window the node published, beside the truth under it",
    "health_timeline.png": "with --faults: each fault, the health the node judged, dangerous free cells with and without it",
    "per_class_iou.png": "IoU of each class",
    "confusion.png": "confusion matrix",
}


def summary_lines(report: dict) -> list[str]:
    """The demo's figures as a short table: segmentation, frames, rates, latency, costmap."""
    scored = {name: value for name, value in report.get("per_class", {}).items() if value is not None}
    worst = ", ".join(f"{name} {format_percent(value)}" for name, value in sorted(scored.items(), key=lambda i: i[1])[:_WORST_CLASSES])
    sent, received, dropped = report["frames_sent"], report["frames_received"], report["frames_dropped"]
    lines = [
        f"  segmentation  mIoU {format_percent(report.get('miou'))} of the masks the node published"
        + (f" (network input {report['input_size']})" if report.get("input_size") else "")
        + (f"; lowest: {worst}" if worst else ""),
        f"  frames        {sent} in, {received} out, {dropped} dropped ({format_percent(report['dropped_fraction'])})"
        + (f"; paused {report['pauses']} time{'' if report['pauses'] == 1 else 's'}, "
           f"{format_number(report['paused_s'])} s in all, for the node to catch up" if report.get("pauses") else ""),
        f"  rates         {format_number(report['input_rate_hz'])} Hz in, {format_number(report['output_rate_hz'])} Hz out"
        + (f" (the recorded {format_number(report['recorded_hz'])} Hz at {report['replay_rate']:.2f}x"
           + (f"; the node takes {format_number(report['node_ms_per_frame'])} ms a frame)" if report["node_ms_per_frame"] else ")")
           if report.get("recorded_hz") else ""),
        f"  latency       p50 {format_number(report['latency_ms_p50'])} ms, p95 {format_number(report['latency_ms_p95'])} ms",
        _health_line(report["health"]),
    ]
    costmap = report["costmap"]
    if "accumulated" in costmap:
        whole = costmap["accumulated"]
        lines.append(f"  costmap       map of the drive in odom: free IoU {format_percent(whole['free_iou'])}, obstacle "
                     f"contacts within a cell {format_percent(whole['contact_recall'])}, {whole['stray_lethal']} lethal "
                     f"cells away from any obstacle")
    else:
        lines.append(f"  costmap       free IoU {format_percent(costmap['free_iou'])}, lethal IoU "
                     f"{format_percent(costmap['lethal_iou'])} against the ground-truth grids")
    return lines


def _cityscapes_bag(root: Path, split: str, bag: Path) -> None:
    from ..eval.evaluate import cityscapes_samples
    from ..synth.drive import START_STAMP_NS
    from ..synth.outputs import CAMERA_FRAME

    with BagWriter(bag) as writer:
        for sample in cityscapes_samples(root, split, CITYSCAPES):
            stamp = START_STAMP_NS + sample.stamp_ns
            writer.write_image(IMAGE_TOPIC, stamp, CAMERA_FRAME, sample.rgb(), "rgb8")
            writer.write_image(LABEL_TOPIC, stamp, CAMERA_FRAME, sample.labels, "mono8")


def _read_topics(bag: Path, topics: tuple[str, ...]) -> dict[str, dict[int, object]]:
    """topic -> {header stamp: message} for the given topics (empty for those the bag lacks)."""
    found: dict[str, dict[int, object]] = {topic: {} for topic in topics}
    reader = open_bag(bag)
    try:
        connections = [c for c in reader.connections if c.topic in found]
        for connection, _, raw in reader.messages(connections=connections):
            message = reader.deserialize(raw, connection.msgtype)
            found[connection.topic][stamp_ns(message.header)] = message
        return found
    finally:
        reader.close()


def _costmap_agreement(
    truths: dict[int, object], grids: list[OccupancyGrid], to_original: dict[int, int], output: Path
) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """The node's costmaps against the ground-truth grids of the same frames; costmap.png of the last pair."""
    agreement = CostmapAgreement(load_cost_table(None, CITYSCAPES))
    for grid in grids:
        truth = truths.get(to_original.get(stamp_ns(grid.header)))
        if truth is not None:
            agreement.update(_cells(grid), class_map(truth)[0])
    agreement.plot_last(output / "costmap.png", "node's ~/costmap (grey: unknown)")
    window = None if agreement.last is None else (agreement.last[0], agreement.last[1])
    return agreement.summary(), window


def _map_accuracy(
    truth: OccupancyGrid, grids: list[OccupancyGrid], output: Path
) -> tuple[dict, tuple[np.ndarray, np.ndarray], list[MapAccuracy]]:
    """The node's grids in odom against the drive's true map: each window, their mean, and the map
    accumulated over the drive (costmap.png); the rolling window beside the truth (costmap_window.gif).
    Also returns the middle window's costs and the truth under it, as costs (for the overview), and
    each grid's score."""
    table = load_cost_table(None, CITYSCAPES)
    drive_map = DriveMap(table, *class_map(truth))
    for grid in grids:
        drive_map.add(_cells(grid), grid_spec(grid))
    drive_map.plot(output / "costmap.png", "the node's ~/costmap accumulated along the drive, in odom")
    _write_window_gif(drive_map, grids, output / "costmap_window.gif")
    summary = drive_map.summary()
    middle = grids[len(grids) // 2]
    scores = {**summary["mean"], "frames": summary["frames"], "final": summary["final"], "accumulated": summary["accumulated"]}
    return scores, (_cells(middle), drive_map.truth_costs(grid_spec(middle))), drive_map.frames


_LEVELS = {0: "OK", 1: "DEGRADED", 2: "FAULT"}  # DiagnosticStatus levels as camera health states


def _health_counts(verdicts: list[DiagnosticStatus]) -> dict:
    """How the node judged the front camera's frames (~/front/health): frames per state, and the kinds named."""
    states = [_LEVELS.get(verdict.level[0], "STALE") for verdict in verdicts]
    kinds: dict[str, int] = {}
    for verdict in verdicts:
        for value in verdict.values:
            if value.key.startswith("health.") and value.value in ("DEGRADED", "FAULT"):
                kind = value.key.removeprefix("health.")
                kinds[kind] = kinds.get(kind, 0) + 1
    return {"frames": len(states), **{state: states.count(state) for state in _LEVELS.values()}, "kinds": kinds}


def _health_line(health: dict) -> str:
    if not health["frames"]:
        return "  health        the node published no camera health (camera_health.enabled false?)"
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(health["kinds"].items()))
    return (f"  health        front camera: {health['OK']} frames OK, {health['DEGRADED']} DEGRADED, {health['FAULT']} FAULT"
            + (f" (frames per kind: {kinds})" if kinds else ""))


def _write_timeline(
    options: DemoOptions, bag: Path, grids: list[OccupancyGrid], scored: list[MapAccuracy],
    verdicts: list[DiagnosticStatus], to_original: dict[int, int], path: Path, say,
) -> dict:
    """health_timeline.png: per frame of the faulty drive, its faults, the node's verdict and the
    dangerous free cells of the node's grid, beside the same drive through the costmap without camera
    health (the demo weights run again on the delivered frames, offline); returns those figures."""
    from ..costmap import CostmapSettings
    from ..eval.fault_drive import RenderedDrive, plot_timeline, run_fault_drive
    from ..inference import BackendSettings, load_engine

    truth = [json.loads(message.data) for _, message in read_topic(bag, FAULTS_TOPIC, "std_msgs/msg/String")]
    # The replay stamps what it sends anew: back to the stamps the camera gave, then to the drive's frames.
    stamps = [int(next((v.value for v in verdict.values if v.key == "frame_stamp_ns"), -1)) for verdict in verdicts]
    states: list[State | None] = _by_frame(
        truth, [to_original.get(stamp, stamp) for stamp in stamps], [State(min(verdict.level[0], 2)) for verdict in verdicts])
    protected = _by_frame(truth, [to_original.get(stamp_ns(grid.header), stamp_ns(grid.header)) for grid in grids],
                          [score.dangerous_free for score in scored])
    say("      the same drive without camera health, offline, for health_timeline.png")
    engine = load_engine(options.weights, model=options.model, backend=BackendSettings(backend=options.backend), log=lambda m: None)
    config = _drive_config(options)

    def masks(rgb: np.ndarray):
        result = engine.segment([rgb])[0]
        return result.train_ids, result.uncertainty

    unprotected = [o.score.dangerous_free for o in run_fault_drive(
        RenderedDrive.render(config), options.faults, load_cost_table(None, CITYSCAPES), CostmapSettings(grid=config.grid),
        masks, protected=False)]
    plot_timeline(path, [tuple(record["faults"]) for record in truth], states, protected, unprotected,
                  f"camera faults {format_faults(options.faults)} on the seed-{options.seed} drive")
    return {"faults": format_faults(options.faults), "dangerous_free_with_health": protected,
            "dangerous_free_without_health": unprotected, "states": [None if s is None else s.name for s in states]}


def _by_frame(truth: list[dict], stamps: list[int], values: list) -> list:
    """``values`` (one per output the node published, with the stamp of its frame) placed at their
    drive frames by the truth's camera stamps (in order where a stuck clock repeats one); None where none."""
    frames: dict[int, list[int]] = {}
    for record in truth:
        frames.setdefault(int(record["camera_stamp_ns"]), []).append(int(record["frame"]))
    placed: list = [None] * len(truth)
    for stamp, value in zip(stamps, values):
        if frames.get(stamp):
            placed[frames[stamp].pop(0)] = value
    return placed


def _cells(grid: OccupancyGrid) -> np.ndarray:
    return np.asarray(grid.data, np.int8).reshape(grid.info.height, grid.info.width)


def _write_window_gif(drive_map: DriveMap, grids: list[OccupancyGrid], path: Path, limit: int = 80) -> None:
    """The published rolling window (forward up) beside the true map under it, grid after grid."""
    from PIL import Image as Picture

    frames = []
    for grid in grids[-limit:]:
        truth = drive_map.truth_costs(grid_spec(grid))
        frames.append(Picture.fromarray(np.concatenate([cost_image(_cells(grid)), cost_image(truth)], axis=1)))
    if frames:
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, optimize=True)


def _write_overview(
    images: dict[int, object], masks: list[tuple[int, bytes]], to_original: dict[int, int],
    window: tuple[np.ndarray, np.ndarray] | None, report: dict, path: Path,
) -> None:
    """One picture to look at first: a frame of the middle of the drive, the mask the node published
    for it, its costmap beside the truth, and the per-class IoU with the summary beneath."""
    from ..eval.report import pyplot, save_figure

    plt = pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(13, 9), gridspec_kw={"height_ratios": [1, 1.25]})
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    pair = _middle_pair(images, masks, to_original)
    if pair is not None:
        rgb, mask = pair
        axes[0, 0].imshow(rgb)
        axes[0, 0].set_title("a frame of the drive")
        axes[0, 1].imshow(CITYSCAPES.overlay(rgb, mask, 0.6))
        axes[0, 1].set_title("the mask the node published for it")
    if window is not None:
        costs, expected = window
        gap = np.full((costs.shape[1], 8, 3), 255, np.uint8)
        axes[1, 0].imshow(np.concatenate([cost_image(costs), gap, cost_image(expected)], axis=1))
        axes[1, 0].set_title("~/costmap (forward up; grey unknown) | the truth")
    scored = {name: value for name, value in report.get("per_class", {}).items() if value is not None}
    if scored:
        names = list(scored)
        axes[1, 1].barh(range(len(names)), [scored[n] for n in names], color=[c / 255 for c in _colors(names)])
        axes[1, 1].set_yticks(range(len(names)), names, fontsize=8)
        axes[1, 1].invert_yaxis()
        axes[1, 1].set_xlim(0, 1)
        axes[1, 1].set_xticks([0, 0.5, 1.0])
        axes[1, 1].set_title(f"IoU per class (mIoU {format_percent(report.get('miou'))})")
    figure.text(0.01, 0.005, "\n".join(line.strip() for line in report["summary"]), family="monospace", fontsize=8,
                va="bottom")
    figure.tight_layout(rect=(0, 0.09, 1, 1))
    save_figure(figure, path, dpi=80)


def _colors(names: list[str]) -> list[np.ndarray]:
    index = {name: i for i, name in enumerate(CITYSCAPES.class_names)}
    return [np.asarray(CITYSCAPES.colors[index[name]], np.float64) for name in names]


def _middle_pair(
    images: dict[int, object], masks: list[tuple[int, bytes]], to_original: dict[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The RGB image and published mask of the middle frame that came back."""
    for _, raw in masks[len(masks) // 2:] + masks[: len(masks) // 2]:
        mask = deserialize_message(raw, Image)
        original = images.get(to_original.get(stamp_ns(mask.header)))
        if original is not None:
            return np.ascontiguousarray(decode_frame(original).rgb()), np.ascontiguousarray(class_mask_to_array(mask))
    return None


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
        original = images.get(to_original.get(stamp_ns(mask.header)))
        if original is None:
            continue
        rgb = np.ascontiguousarray(decode_frame(original).rgb())
        overlay = CITYSCAPES.overlay(rgb, np.ascontiguousarray(class_mask_to_array(mask)), 0.5)
        frames.append(Picture.fromarray(np.concatenate([rgb, overlay], axis=0)))
    if frames:
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, optimize=True)

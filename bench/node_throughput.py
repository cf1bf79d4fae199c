"""Throughput, latency and drops of a running segmentation_node, fed through real DDS.

Starts the node as its own process (as launch would), publishes synthetic camera frames at a
fixed rate and at saturation for 1 and 3 cameras, and reports the node's output rate, end-to-end
latency (receive time - header.stamp) percentiles and the fraction of inputs that got no output.
The Segmenter's own throughput at the same size and batch is measured first, in this process,
as the reference. Usage:

    .venv/bin/python bench/node_throughput.py --size 256x512 --weights demo --backend auto
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # before rclpy: discovery stays on this machine
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(10, 100)))
# Several 400 KB best-effort frames published at once overflow Fast DDS's default ~512 KB
# shared-memory segment and all but the last are lost: use the package's profile in this
# process (the sender) and the node (inherits the environment).
_PROFILE = Path(__file__).resolve().parent.parent / "config" / "fastdds_large_images.xml"
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(_PROFILE))  # Fast DDS 3 (Kilted)
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(_PROFILE))  # Fast DDS 2 (Humble, Jazzy)

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, qos_profile_sensor_data  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from denseaspp_ros.cli import _size  # noqa: E402
from denseaspp_ros.inference import BackendSettings, load_engine  # noqa: E402
from denseaspp_ros.inference.benchmark import Contender, describe_machine, run_benchmarks  # noqa: E402
from denseaspp_ros.ros.conversions import rgb8_msg  # noqa: E402

NODE = "bench_segmentation_node"


def start_node(args: argparse.Namespace, cameras: list[str], max_batch: int, log: Path) -> subprocess.Popen:
    height, width = args.size
    model = {"name": args.model, "weights": args.weights or "", "backend": args.backend, "precision": args.precision,
             "input_height": height, "input_width": width, "device": args.device}
    params = {
        NODE: {
            "ros__parameters": {
                "model": model,
                "allow_untrained": not args.weights,
                "max_batch": max_batch,
                "cameras": cameras,
                "publish": {"mask": True, "mask_color": False},
                **{camera: {"image_topic": f"/bench/{camera}/image_raw"} for camera in cameras},
            }
        }
    }
    params_file = Path(tempfile.mkstemp(suffix=".yaml")[1])
    params_file.write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "denseaspp_ros.ros.node", "--ros-args", "--params-file", str(params_file),
               "-r", f"__node:={NODE}"]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop_node(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def measure(node, executor, cameras: list[str], size: tuple[int, int], rate: float, duration: float) -> dict:
    """Publish every camera at ``rate`` Hz for ``duration`` s; collect the masks that come back."""
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    publishers = [node.create_publisher(Image, f"/bench/{c}/image_raw", qos_profile_sensor_data) for c in cameras]
    latencies: list[float] = []
    subscriptions = [
        node.create_subscription(
            Image,
            f"/{NODE}/{c}/mask",
            lambda msg: latencies.append((node.get_clock().now().nanoseconds - _stamp_ns(msg)) / 1e9),
            10,
        )
        for c in cameras
    ]
    node_side: dict[str, str] = {}  # the node's own view: its batch time and latency at publication

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": engine") or status.name.endswith(f"camera {cameras[0]}"):
                node_side.update({kv.key: kv.value for kv in status.values})

    subscriptions.append(node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10))
    _spin_for(executor, 2.0)  # let discovery match the new endpoints
    sent = 0
    start = time.monotonic()
    next_time = start
    while time.monotonic() - start < duration:
        header = rgb8_msg_header(node)
        for publisher in publishers:
            publisher.publish(rgb8_msg(header, image))
            sent += 1
        next_time += 1.0 / rate
        while time.monotonic() < next_time:
            executor.spin_once(timeout_sec=max(0.0, next_time - time.monotonic()))
    _spin_for(executor, 2.0)  # collect what is still in flight
    for publisher in publishers:
        node.destroy_publisher(publisher)
    for subscription in subscriptions:
        node.destroy_subscription(subscription)
    received = len(latencies)
    milliseconds = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "cameras": len(cameras),
        "input_rate_hz": rate * len(cameras),
        "output_rate_hz": received / duration,
        "dropped_fraction": 1 - received / sent,
        "latency_ms_p50": float(np.percentile(milliseconds, 50)),
        "latency_ms_p95": float(np.percentile(milliseconds, 95)),
        "latency_ms_p99": float(np.percentile(milliseconds, 99)),
        "node_batch_ms_p50": _number(node_side.get("inference_ms_per_batch_p50")),
        "node_latency_ms_p50_at_publish": _number(node_side.get("latency_ms_p50")),
    }


def _ratio(numerator: float, denominator: float | None) -> float | None:
    return None if not denominator else numerator / denominator


def _format(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else format("n/a", f">{spec.split('.')[0]}")


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def rgb8_msg_header(node):
    from std_msgs.msg import Header

    header = Header(frame_id="bench_camera")
    header.stamp = node.get_clock().now().to_msg()
    return header


def _stamp_ns(msg: Image) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _spin_for(executor, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)


def wait_for_labels(node, executor, timeout: float) -> bool:
    latched = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    got: list[String] = []
    subscription = node.create_subscription(String, f"/{NODE}/labels", got.append, latched)
    end = time.monotonic() + timeout
    while not got and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.1)
    node.destroy_subscription(subscription)
    return bool(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="network; default: auto (the weights') with --weights, else MobileNetDenseASPP")
    parser.add_argument("--weights", help="checkpoint or demo; default: random weights (auto backend: torch)")
    parser.add_argument("--backend", default="auto", help="model.backend of the node and of the reference engine")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=_size, default=(256, 512))
    parser.add_argument("--camera-counts", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--fixed-rate", type=float, default=2.0, help="per-camera Hz of the fixed-rate run")
    parser.add_argument("--saturation-rate", type=float, default=15.0, help="per-camera Hz of the saturating run")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.model = args.model or ("auto" if args.weights else "MobileNetDenseASPP")

    rclpy.init()
    node = rclpy.create_node("node_throughput_bench")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    rows = []
    for count in args.camera_counts:
        cameras = ["front", "left", "right", "rear"][:count] if count <= 4 else [f"cam{i}" for i in range(count)]
        # The reference: the same engine (backend, precision, input size, batch) in this process.
        segmenter = load_engine(
            args.weights, args.model, allow_untrained=not args.weights, warn=lambda _: None,
            backend=BackendSettings(backend=args.backend), device=args.device, precision=args.precision,
            input_size=args.size, max_batch=count,
        )
        contender = Contender.of(segmenter)
        model_name = segmenter.model_name
        table = run_benchmarks([contender], model_name, args.size, count, warmup=2, iterations=8)
        reference = table.row(contender.backend, contender.precision, "engine")
        del segmenter, contender
        log = Path(tempfile.mkstemp(suffix=".log")[1])
        process = start_node(args, cameras, count, log)
        try:
            if not wait_for_labels(node, executor, 600):  # a first start with an exported backend builds it
                sys.exit(f"the node did not come up; its log: {log}")
            for mode, rate in (("fixed", args.fixed_rate), ("saturation", args.saturation_rate)):
                row = measure(node, executor, cameras, args.size, rate, args.duration)
                row.update(mode=mode, backend=reference.backend, precision=reference.precision,
                           segmenter_images_per_second=reference.images_per_s, segmenter_batch_ms_p50=reference.p50_ms)
                rows.append(row)
                print(json.dumps(row))
        finally:
            stop_node(process)
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()

    print(f"\n{model_name} {args.size[0]}x{args.size[1]}, {rows[0]['backend']} {rows[0]['precision']}; machine: {describe_machine(__import__('torch').device('cpu'))}")
    print(f"{'cameras':>7} {'mode':>10} {'in Hz':>7} {'out Hz':>7} {'Segmenter img/s':>15} {'out/Seg':>7} "
          f"{'dropped':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'p95/batch':>9} {'node batch ms':>13} {'p95/node batch':>14}")
    for r in rows:
        print(f"{r['cameras']:7d} {r['mode']:>10} {r['input_rate_hz']:7.1f} {r['output_rate_hz']:7.2f} "
              f"{r['segmenter_images_per_second']:15.2f} {r['output_rate_hz'] / r['segmenter_images_per_second']:7.1%} "
              f"{r['dropped_fraction']:7.1%} {r['latency_ms_p50']:7.0f} {r['latency_ms_p95']:7.0f} "
              f"{r['latency_ms_p99']:7.0f} {r['latency_ms_p95'] / r['segmenter_batch_ms_p50']:9.2f} "
              f"{_format(r['node_batch_ms_p50'], '13.0f')} {_format(_ratio(r['latency_ms_p95'], r['node_batch_ms_p50']), '14.2f')}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Which best-effort CompressedImage sizes Fast DDS delivers between two processes, with and without
the package's profile (config/fastdds_large_images.xml).

    .venv/bin/python bench/transport_threshold.py [--count 20]

For each size, a publisher sends ``count`` messages at 10 Hz (best effort, as camera drivers do)
to a subscriber in another process on this machine; prints how many arrived.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from denseaspp_ros.ros.demo import fastdds_profile_variable

SIZES_KB = (256, 448, 500, 512, 560, 640, 1024, 4096)
TOPIC = "/transport_threshold/image/compressed"
ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_images.xml"

SUBSCRIBER = """
import sys, time, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage
rclpy.init()
node = rclpy.create_node("transport_threshold_subscriber")
counts = {}
node.create_subscription(CompressedImage, sys.argv[1], lambda m: counts.__setitem__(m.format, counts.get(m.format, 0) + 1),
                         qos_profile_sensor_data)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
print(repr(counts), flush=True)
"""


def measure(count: int, with_profile: bool) -> dict[int, int]:
    environment = {key: value for key, value in os.environ.items() if not key.endswith("_DEFAULT_PROFILES_FILE")}
    environment.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(random.randint(101, 200)))
    if with_profile:
        environment[fastdds_profile_variable()] = str(PROFILE)
    seconds = 6 + len(SIZES_KB) * (count / 10 + 1)
    subscriber = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, TOPIC, str(seconds)], env=environment,
                                  stdout=subprocess.PIPE, text=True)
    publisher = subprocess.run([sys.executable, __file__, "--publish", str(count)], env=environment, check=True)
    assert publisher.returncode == 0
    counts = eval(subscriber.communicate(timeout=seconds + 30)[0])  # the repr of a dict of ints
    return {size: counts.get(f"jpeg {size}", 0) for size in SIZES_KB}


def publish(count: int) -> None:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    rclpy.init()
    node = rclpy.create_node("transport_threshold_publisher")
    publisher = node.create_publisher(CompressedImage, TOPIC, qos_profile_sensor_data)
    deadline = time.monotonic() + 10
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(1.0)
    for size in SIZES_KB:
        message = CompressedImage(format=f"jpeg {size}", data=os.urandom(size * 1024))
        for _ in range(count):
            publisher.publish(message)
            time.sleep(0.1)
        time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--publish", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        publish(args.publish)
        return
    default, profiled = measure(args.count, False), measure(args.count, True)
    print(f"best-effort CompressedImage at 10 Hz between two processes, {args.count} sent per size:")
    print("| size | Fast DDS defaults | with config/fastdds_large_images.xml |\n| ---: | ---: | ---: |")
    for size in SIZES_KB:
        print(f"| {size} KB | {default[size]} / {args.count} | {profiled[size]} / {args.count} |")


if __name__ == "__main__":
    main()

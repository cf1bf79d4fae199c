"""denseaspp replay against a running segmentation_node over real DDS: every frame accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message

from denseaspp_ros import cli
from denseaspp_ros.frames import stamp_ns
from denseaspp_ros.ros.replay import Replayer, ReplayOptions
from denseaspp_ros.synth.drive import DriveConfig
from denseaspp_ros.synth.outputs import write_drive
from node_harness import NodeProcess, RosClient, wait_until_ready, write_params

NAME = "replay_test_node"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp(NAME)
    cameras = {
        "front": {"image_topic": "/front/image_raw"},
        "comp": {"image_topic": "/comp/image_raw/compressed", "compressed": True},
    }
    params = write_params(directory / "params.yaml", cameras)
    process = NodeProcess(NAME, params, directory / "node.log")
    client = RosClient("replay_test_client")
    try:
        wait_until_ready(client, process, ["/front/image_raw", "/comp/image_raw/compressed"])
        yield process
    finally:
        client.close()
        process.assert_clean_exit()


@pytest.mark.parametrize("compressed", [False, True])
def test_replay_accounts_for_every_frame_and_scores_the_published_masks(node, tmp_path, compressed):
    bag = tmp_path / "drive"
    write_drive(DriveConfig(frames=8, seed=2, size=(64, 128)), None, bag=bag, compressed=compressed, progress=False)
    topic = "/front/image_raw" + ("/compressed" if compressed else "")
    camera = "comp" if compressed else "front"
    code = cli.main([
        "replay", str(bag), "--image-topic", topic, "--label-topic", "/front/labels", "--node", NAME,
        "--camera", camera, "--target-topic", f"/{camera}/image_raw", "--hz", "4", "--json", str(tmp_path / "replay.json"),
    ])
    assert code == 0, node.log()
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["frames_sent"] == 8
    assert summary["frames_received"] + summary["frames_dropped"] == 8
    assert summary["frames_received"] >= 6, node.log()  # 4 Hz is well within a 64x128 MobileNet's rate
    assert 0 < summary["latency_ms_p50"] < 2000
    assert summary["miou"] is not None and 0 <= summary["miou"] <= 1  # random weights: any value, but scored


def test_a_replay_holding_frames_back_loses_none_to_a_node_it_outpaces(node, tmp_path):
    """At 1 kHz the node cannot keep up: with one frame in flight at most, each waits for the last
    one's mask instead of replacing the frame the node has waiting, so every mask comes back."""
    bag = tmp_path / "drive"
    write_drive(DriveConfig(frames=12, seed=3, size=(64, 128)), None, bag=bag, progress=False)
    code = cli.main([
        "replay", str(bag), "--image-topic", "/front/image_raw", "--node", NAME, "--hz", "1000", "--max-in-flight", "1",
        "--json", str(tmp_path / "replay.json"),
    ])
    assert code == 0, node.log()
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["frames_sent"] == summary["frames_received"] == 12, node.log()
    assert summary["pauses"] > 0 and summary["paused_s"] > 0


def test_a_paused_drive_keeps_poses_and_images_on_one_time_base_and_gives_up_on_lost_frames(node, tmp_path):
    """Masks listened for on another camera never come, so each frame is lost after lost_after: the
    drive pauses that long before the next pose, and every frame still goes out. Poses pause with
    the images: each image is stamped with its own pose's time, as recorded (a node would otherwise
    look up the image's pose at a later point of the drive)."""
    bag = tmp_path / "drive"
    write_drive(DriveConfig(frames=4, seed=3, size=(64, 128)), None, bag=bag, progress=False)
    replayer = Replayer()
    try:
        result = replayer.replay(ReplayOptions(
            bag=bag, image_topic="/front/image_raw", node=NAME, camera="comp", odometry_topic="/odom",
            max_in_flight=1, lost_after=0.3, grace=0.5, record=[("/odom", Odometry)],
        ))
    finally:
        replayer.close()
    assert result.sent == 4 and result.dropped == 4
    assert result.pauses == 3 and result.paused_s >= 3 * 0.15  # lost after 0.3 s, the next pose due 0.1 s after
    poses = [stamp_ns(deserialize_message(raw, Odometry).header) for _, raw in result.recorded["/odom"]]
    images = list(result.sent_stamps)
    assert len(poses) == len(images) == 4
    assert max(abs(image - pose) for image, pose in zip(images, poses)) < 0.05e9, (images, poses)


def test_replay_refuses_to_search_a_peak_while_pausing_the_drive(tmp_path, capsys):
    code = cli.main(["replay", str(tmp_path / "bag"), "--image-topic", "/x", "--find-peak", "--max-in-flight", "2"])
    assert code == 2
    assert "--max-in-flight pauses the drive" in capsys.readouterr().err


def test_replay_says_when_nothing_listens(tmp_path, capsys):
    bag = tmp_path / "drive"
    write_drive(DriveConfig(frames=1, size=(32, 64)), None, bag=bag, progress=False)
    code = cli.main(["replay", str(bag), "--image-topic", "/front/image_raw", "--target-topic", "/nobody/listens",
                     "--wait", "2"])
    assert code == 2
    assert "nothing subscribes to /nobody/listens" in capsys.readouterr().err


def ros1_copy(bag: Path, path: Path) -> Path:
    """The ROS 2 bag's messages written into a ROS 1 .bag, as a user's older recordings are."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    from denseaspp_ros.bags import convert_message, open_bag

    ros1 = get_typestore(Stores.ROS1_NOETIC)
    reader = open_bag(bag)
    try:
        with Writer(path) as writer:
            added = {}
            for connection, timestamp, raw in reader.messages():
                if connection.topic not in added:
                    added[connection.topic] = writer.add_connection(connection.topic, connection.msgtype, typestore=ros1)
                message = convert_message(reader.deserialize(raw, connection.msgtype), ros1)
                writer.write(added[connection.topic], timestamp, ros1.serialize_ros1(message, connection.msgtype))
    finally:
        reader.close()
    return path


def test_a_ros1_bag_replays_like_the_ros2_bag_it_was_made_from(node, tmp_path):
    """rclpy deserialises CDR: a ROS 1 bag's messages are rebuilt in their ROS 2 types first (no
    Header.seq), so anything eval reads can be replayed, odometry included."""
    bag = tmp_path / "drive"
    write_drive(DriveConfig(frames=6, seed=2, size=(64, 128)), None, bag=bag, progress=False)
    old = ros1_copy(bag, tmp_path / "drive.bag")
    code = cli.main([
        "replay", str(old), "--image-topic", "/front/image_raw", "--label-topic", "/front/labels", "--node", NAME,
        "--camera", "front", "--odometry-topic", "/odom", "--hz", "4", "--json", str(tmp_path / "replay.json"),
    ])
    assert code == 0, node.log()
    summary = json.loads((tmp_path / "replay.json").read_text())
    assert summary["frames_sent"] == 6 and summary["frames_received"] >= 5, summary
    assert summary["miou"] is not None

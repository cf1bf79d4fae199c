"""Where a synthetic drive goes: a Cityscapes-layout folder and/or a ROS 2 bag.

Folder: ``leftImg8bit/<split>/<city>/<city>_000000_<frame>_leftImg8bit.png`` with
``gtFine/.../*_gtFine_labelIds.png`` and ``*_gtFine_labelTrainIds.png`` beside it (what
cityscapesscripts and the dataset loader read), ``bev/.../*_bev_labelTrainIds.png`` (the
ground-truth class grid around the vehicle, row-major like the OccupancyGrid), and
``camera.yaml`` (the camera and drive, in the node's parameter names).

Bag: the node's default topics, so ``ros2 bag play`` feeds an unconfigured node directly:
``/front/image_raw`` (rgb8 Image, or ``/front/image_raw/compressed`` JPEG), ``/front/camera_info``,
``/front/labels`` (mono8 trainIds, same stamps), ``/ground_truth/grid`` (OccupancyGrid in
base_link whose cells hold trainIds, -1 where unknown), ``/odom`` (nav_msgs/Odometry of base_link
in odom, as the drive's odometry reports it, before each image) and ``/ground_truth/map`` (the
true classes of the whole drive in odom, once, at the first stamp).

With camera faults (``DriveConfig.faults``), the images are what the faulty camera delivers,
recorded when they arrive (the drive's time) with the stamps the camera gave them; the labels and
camera_info carry the same stamps (so tools pair them), and ``/ground_truth/faults`` says, for
every frame at its true time, which faults were active: a std_msgs/String of JSON
``{"frame": i, "stamp_ns": true stamp, "camera_stamp_ns": stamp delivered, "faults": [kinds]}``.

``read_camera`` and ``bags.grid_classes`` read back what these write, for whoever consumes a drive.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import json

import numpy as np
import yaml
from tqdm import tqdm

from ..atomic import atomic_write
from ..bags import BagWriter
from ..costmap import CameraModel, CameraPose
from ..errors import DenseASPPError
from ..imageio import write_png
from ..labels import CITYSCAPES, IGNORE_INDEX
from .drive import MAP_FRAME, DriveConfig, DriveFrame, drive, truth_map
from .faults import format_faults

IMAGE_TOPIC = "/front/image_raw"
CAMERA_INFO_TOPIC = "/front/camera_info"
LABEL_TOPIC = "/front/labels"
GRID_TOPIC = "/ground_truth/grid"
ODOMETRY_TOPIC = "/odom"  # the drive's odometry, nav_msgs/Odometry of base_link in odom
MAP_TOPIC = "/ground_truth/map"  # the whole drive's true classes in odom (OccupancyGrid of trainIds)
FAULTS_TOPIC = "/ground_truth/faults"  # per frame, the camera faults active in it (std_msgs/String, JSON)
CAMERA_FRAME = "front_camera_optical"
CAMERA_FILE = "camera.yaml"


def city_name(seed: int) -> str:
    return f"synth{seed:04d}"


def describe(config: DriveConfig) -> dict:
    """The camera and the drive, with the camera in segmentation_node's parameter names."""
    camera = config.camera()
    mount = config.mount
    return {
        "seed": config.seed,
        "frames": config.frames,
        "fps": config.fps,
        "speed": config.speed,
        "odometry_noise": config.odometry_noise,
        "odometry_drift": config.odometry_drift,
        "faults": format_faults(config.faults),
        "camera": {
            "intrinsics": [float(camera.K[0, 0]), float(camera.K[1, 1]), float(camera.K[0, 2]), float(camera.K[1, 2])],
            "image_width": camera.width,
            "image_height": camera.height,
            "pose": [mount.x, mount.y, mount.z, mount.roll, mount.pitch, mount.yaw],
        },
        "grid": {
            "resolution": config.grid.resolution, "length_x": config.grid.length_x, "length_y": config.grid.length_y,
            "origin_x": config.grid.origin_x, "origin_y": config.grid.origin_y, "frame_id": config.grid.frame_id,
        },
    }


def write_drive(
    config: DriveConfig,
    output: Path | None = None,
    split: str = "train",
    bag: Path | None = None,
    compressed: bool = False,
    storage: str = "mcap",
    progress: bool = True,
) -> int:
    """Render ``config`` into a Cityscapes-layout folder and/or a bag; returns the frames written."""
    city = city_name(config.seed)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(describe(config), sort_keys=False)
        atomic_write(output / CAMERA_FILE, lambda temporary: Path(temporary).write_text(text))
    count = 0
    with ExitStack() as stack:
        writer = stack.enter_context(BagWriter(bag, storage)) if bag is not None else None
        if writer is not None:
            truth, truth_grid = truth_map(config)
            writer.write_grid(MAP_TOPIC, config.stamp_ns(0), truth_grid, grid_cells(truth))
        frames = drive(config)
        for item in tqdm(frames, total=config.frames, desc=f"synth {city}", unit="frame", disable=not progress):
            if output is not None:
                stem = f"{city}_000000_{item.index:06d}"
                images = output / "leftImg8bit" / split / city
                labels = output / "gtFine" / split / city
                bev = output / "bev" / split / city
                for folder in (images, labels, bev):
                    folder.mkdir(parents=True, exist_ok=True)
                write_png(images / f"{stem}_leftImg8bit.png", item.camera.rgb[..., ::-1])
                write_png(labels / f"{stem}_gtFine_labelTrainIds.png", item.frame.train_ids)
                write_png(labels / f"{stem}_gtFine_labelIds.png", CITYSCAPES.to_label_ids(item.frame.train_ids))
                write_png(bev / f"{stem}_bev_labelTrainIds.png", item.ground_truth)
            if writer is not None:
                _write_frame(writer, config, item, compressed)
            count += 1
    return count


def _write_frame(writer: BagWriter, config: DriveConfig, item: DriveFrame, compressed: bool) -> None:
    """One frame's messages, each recorded at the drive's time; the camera's carry the stamp it gave."""
    arrival, stamp, camera = item.stamp_ns, item.camera.stamp_ns, config.camera()
    pose = item.odometry  # first: a node replayed in order has the pose before the image
    writer.write_odometry(ODOMETRY_TOPIC, arrival, MAP_FRAME, config.grid.frame_id, pose.x, pose.y, pose.yaw, config.speed)
    if compressed:
        writer.write_jpeg(IMAGE_TOPIC + "/compressed", stamp, CAMERA_FRAME, item.camera.rgb, log_ns=arrival)
    else:
        writer.write_image(IMAGE_TOPIC, stamp, CAMERA_FRAME, item.camera.rgb, "rgb8", log_ns=arrival)
    writer.write_camera_info(CAMERA_INFO_TOPIC, stamp, CAMERA_FRAME, camera, log_ns=arrival)
    writer.write_image(LABEL_TOPIC, stamp, CAMERA_FRAME, item.frame.train_ids, "mono8", log_ns=arrival)
    writer.write_grid(GRID_TOPIC, arrival, config.grid, grid_cells(item.ground_truth))
    if config.faults:
        truth = {"frame": item.index, "stamp_ns": arrival, "camera_stamp_ns": stamp, "faults": list(item.faults)}
        writer.write_text(FAULTS_TOPIC, arrival, json.dumps(truth))


def read_camera(path: Path) -> tuple[CameraModel, CameraPose]:
    """The camera of a camera.yaml as ``describe`` writes it (or any file with its ``camera`` keys)."""
    try:
        camera = yaml.safe_load(path.read_text())["camera"]
        model = CameraModel.from_intrinsics(camera["intrinsics"], camera["image_width"], camera["image_height"])
        pose = CameraPose.from_list(camera["pose"], f"{path}: camera.pose")
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        raise DenseASPPError(
            f"{path} is not a camera description (camera: intrinsics, image_width, image_height, pose): {error}"
        ) from None
    return model, pose


def grid_cells(ground_truth: np.ndarray) -> np.ndarray:
    """A trainId grid as the cells of ``GRID_TOPIC``: OccupancyGrid data is int8, so unknown is -1, not 255."""
    return np.where(ground_truth == IGNORE_INDEX, -1, ground_truth).astype(np.int8)

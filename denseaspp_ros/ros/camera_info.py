"""What a sensor_msgs/CameraInfo says about the images its camera publishes (REP 104: ROI, then binning)."""

from __future__ import annotations

from sensor_msgs.msg import CameraInfo

from ..costmap import CameraModel, camera


def published_size(info: CameraInfo) -> tuple[int, int]:
    """(height, width) of the images a CameraInfo describes: its ROI (when set), then binning."""
    roi = info.roi
    width, height = camera.published_size(
        info.width, info.height, (info.binning_x, info.binning_y), (roi.x_offset, roi.y_offset, roi.width, roi.height)
    )
    return height, width


def camera_model_from_info(info: CameraInfo) -> CameraModel:
    """The geometry of the images a camera publishes, from its CameraInfo (binning and ROI applied)."""
    roi = info.roi
    return CameraModel.from_camera_info(
        info.k, info.d, info.distortion_model, info.width, info.height,
        binning=(info.binning_x, info.binning_y),
        roi=(roi.x_offset, roi.y_offset, roi.width, roi.height),
    )

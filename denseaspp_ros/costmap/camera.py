"""Pinhole camera model with lens distortion, for the image (or mask) as it is delivered.

Built from the fields of a sensor_msgs/CameraInfo (no ROS import here) or from plain intrinsics.
Binning, the region of interest and a mask resized away from the calibrated resolution all only
rescale and shift K: the distortion polynomial acts on normalised coordinates
((u - cx) / fx, ...), which such an affine pixel change leaves untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import DenseASPPError

# CameraInfo distortion models and how many coefficients OpenCV reads for each.
DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8}
# Iterative undistortion: OpenCV's default 5 iterations leave pixel-sized errors at the image
# corners of wide-angle lenses; these settle every ray to well below a thousandth of a pixel.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)


class CameraModelError(DenseASPPError, ValueError):
    """Intrinsics that cannot describe a camera: zero focal length, non-finite values, bad sizes."""


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsics ``K`` (3x3) and distortion ``D`` of images of ``width`` x ``height`` pixels."""

    K: np.ndarray
    D: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        D = np.asarray(self.D, dtype=np.float64).ravel()
        if K.shape != (3, 3):
            raise CameraModelError(f"K must be 3x3, got shape {K.shape}")
        if not (np.isfinite(K).all() and np.isfinite(D).all()):
            raise CameraModelError(f"intrinsics must be finite numbers, got K={K.ravel().tolist()} D={D.tolist()}")
        fx, fy = K[0, 0], K[1, 1]
        if fx <= 0 or fy <= 0:
            raise CameraModelError(
                f"focal lengths must be positive, got fx={fx}, fy={fy} (an uncalibrated camera_info has K all zeros)"
            )
        if int(self.width) < 1 or int(self.height) < 1:
            raise CameraModelError(f"image size must be positive, got {self.width}x{self.height}")
        K.setflags(write=False)
        D.setflags(write=False)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_intrinsics(cls, intrinsics: Sequence[float], width: int, height: int) -> CameraModel:
        """``[fx, fy, cx, cy]`` of an undistorted (or rectified) image of width x height pixels."""
        values = list(intrinsics)
        if len(values) != 4:
            raise CameraModelError(f"intrinsics must be [fx, fy, cx, cy], got {values}")
        fx, fy, cx, cy = (float(v) for v in values)
        return cls(np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), np.zeros(0), width, height)

    @classmethod
    def from_camera_info(
        cls,
        k: Sequence[float],
        d: Sequence[float],
        distortion_model: str,
        width: int,
        height: int,
        binning: tuple[int, int] = (0, 0),
        roi: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> CameraModel:
        """The model of the images a camera publishes, from its CameraInfo fields.

        ``k``/``d`` are calibrated at full ``width`` x ``height``; ``binning`` is
        (binning_x, binning_y), 0 meaning 1; ``roi`` is (x_offset, y_offset, width, height) in
        full-resolution pixels, all zero meaning the whole sensor (REP 104).
        """
        K = np.asarray(k, dtype=np.float64)
        if K.size != 9:
            raise CameraModelError(f"camera_info K must have 9 values, got {K.size}")
        K = K.reshape(3, 3).copy()
        if K[2, 2] != 1.0 and K[2, 2] != 0.0:
            K /= K[2, 2]
        D = _distortion(d, distortion_model)
        x_offset, y_offset, roi_width, roi_height = (int(v) for v in roi)
        if roi_width and roi_height:
            if x_offset + roi_width > width or y_offset + roi_height > height:
                raise CameraModelError(
                    f"camera_info ROI {roi_width}x{roi_height}+{x_offset}+{y_offset} lies outside the {width}x{height} sensor"
                )
            K[0, 2] -= x_offset
            K[1, 2] -= y_offset
        model = cls(K, D, *published_size(width, height, (0, 0), roi))
        binning_x, binning_y = (max(int(b), 1) for b in binning)
        if binning_x > 1 or binning_y > 1:
            model = model.scaled_to(*published_size(width, height, binning, roi), (1 / binning_x, 1 / binning_y))
        return model

    def scaled_to(self, width: int, height: int, scale: tuple[float, float] | None = None) -> CameraModel:
        """The same camera seen through images resized to width x height (a mask of another size).

        Pixel centres map as (u + 0.5) * s - 0.5, which is how cv2.resize and binning sample.
        ``scale`` overrides width/self.width when the new size was rounded down (binning).
        """
        if width < 1 or height < 1:
            raise CameraModelError(f"image size must be positive, got {width}x{height}")
        sx, sy = scale if scale is not None else (width / self.width, height / self.height)
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return CameraModel(K, self.D, width, height)

    def uniformly_scales_to(self, width: int, height: int) -> bool:
        """Whether width x height is this camera's image at one scale, to within the pixel a
        resize rounds off (1241x376 halved is 620x188)."""
        return abs(width - height * self.width / self.height) <= 1 or abs(height - width * self.height / self.width) <= 1

    @property
    def key(self) -> tuple:
        """Hashable identity: equal keys project identically (caches rebuild only when it changes)."""
        return (self.width, self.height, tuple(self.K.ravel()), tuple(self.D))

    def pixel_rays(self) -> np.ndarray:
        """Directions of every pixel centre, row-major, as (N, 3) optical-frame rays with z = 1."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        pixels = np.stack([u.ravel(), v.ravel()], axis=1)
        return self.normalize(pixels)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) -> undistorted optical-frame rays (N, 3) with z = 1."""
        pixels = np.ascontiguousarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        if self.D.any():
            normalised = _undistort(pixels, self.K, self.D).reshape(-1, 2)
        else:
            fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
            skew = self.K[0, 1]
            y = (pixels[:, 0, 1] - cy) / fy
            normalised = np.stack([(pixels[:, 0, 0] - cx - skew * y) / fx, y], axis=1)
        return np.concatenate([normalised, np.ones((len(normalised), 1))], axis=1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """Optical-frame points (N, 3) with z > 0 -> pixel coordinates (N, 2), distortion applied."""
        points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 1, 3)
        if len(points) == 0:
            return np.zeros((0, 2))
        pixels, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), self.K, self.D)
        return pixels.reshape(-1, 2)

    def field_of_view(self) -> tuple[float, float, float, float]:
        """Bounds (x_min, x_max, y_min, y_max) of the normalised coordinates the image border sees.

        Distortion polynomials fold back on themselves far outside the calibrated field, so a
        point is only projected when its ray lies inside these bounds.
        """
        w, h = self.width - 1, self.height - 1
        steps = np.linspace(0.0, 1.0, 65)
        border = np.concatenate(
            [
                np.stack([steps * w, np.zeros_like(steps)], 1),
                np.stack([steps * w, np.full_like(steps, h)], 1),
                np.stack([np.zeros_like(steps), steps * h], 1),
                np.stack([np.full_like(steps, w), steps * h], 1),
            ]
        )
        rays = self.normalize(border)
        return (rays[:, 0].min(), rays[:, 0].max(), rays[:, 1].min(), rays[:, 1].max())


def published_size(width: int, height: int, binning: tuple[int, int], roi: tuple[int, int, int, int]) -> tuple[int, int]:
    """(width, height) of the images a camera publishes (REP 104): the ROI when it is set, then
    binning (0 meaning 1); ``roi`` is (x_offset, y_offset, width, height)."""
    if roi[2] and roi[3]:
        width, height = int(roi[2]), int(roi[3])
    return width // max(int(binning[0]), 1), height // max(int(binning[1]), 1)


def _undistort(pixels: np.ndarray, K: np.ndarray, D: np.ndarray) -> np.ndarray:
    if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4 (ROS Humble/Jazzy's python3-opencv)
        return cv2.undistortPointsIter(pixels, K, D, None, None, _UNDISTORT_CRITERIA)
    return cv2.undistortPoints(pixels, K, D, criteria=_UNDISTORT_CRITERIA)  # OpenCV 5 merged the two


def _distortion(d: Sequence[float], model: str) -> np.ndarray:
    D = np.asarray(d, dtype=np.float64).ravel()
    if not D.any():
        return np.zeros(0)  # no distortion, whatever the model's name says
    expected = DISTORTION_MODELS.get(model)
    if expected is None:
        raise CameraModelError(
            f"unsupported distortion model {model!r}: use {' or '.join(DISTORTION_MODELS)}, or rectified images"
            " (image_rect with D all zeros)"
        )
    if D.size < expected:
        D = np.concatenate([D, np.zeros(expected - D.size)])
    elif D.size > expected and D[expected:].any():
        raise CameraModelError(f"{model} takes {expected} distortion coefficients, got {D.size}: {D.tolist()}")
    return D[:expected].copy()


def check_finite(values: Sequence[float], what: str) -> list[float]:
    """Floats from a parameter list, refusing NaN and infinity with a message naming ``what``."""
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        raise CameraModelError(f"{what} must be finite numbers, got {numbers}")
    return numbers

"""sensor_msgs images to arrays (denseaspp_ros.image_messages) and results back to messages
(denseaspp_ros.ros.conversions), without DDS or rclpy.init."""

from __future__ import annotations

import array
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from denseaspp_ros.costmap import GridSpec, Snapshot
from denseaspp_ros.errors import DenseASPPError, ImageError
from denseaspp_ros.image_messages import SUPPORTED_ENCODINGS, MessageError, compressed_to_array, image_to_array
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.ros import conversions
from denseaspp_ros.ros.conversions import labels_json, mono8_msg, obstacle_cloud_msg, occupancy_grid_msg, rgb8_msg
from street_scene import CAR, ROAD, TABLE

HEIGHT, WIDTH = 6, 10
BAYER_COLOUR = (200, 100, 30)  # distinct channels, so a shifted pattern shows as a wrong colour
BAYER_CHANNELS = {"r": 0, "g": 1, "b": 2}


def random_rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def bt601_video_range(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V as camera drivers produce them (ITU-R BT.601, 16..235 luma), written independently of OpenCV."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return tuple(np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, u, v))


def yuv422(byte_order: str) -> tuple[np.ndarray, np.ndarray]:
    """An image whose pixel pairs share a colour (so 4:2:2 loses nothing) and its packed bytes."""
    pairs = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH // 2, 3), dtype=np.uint8)
    y, u, v = bt601_video_range(pairs)
    channel = {"Y": y, "U": u, "V": v}
    packed = np.stack([channel[c] for c in byte_order], axis=-1)  # one 4-byte group per pixel pair
    return pairs.repeat(2, axis=1), packed.reshape(HEIGHT, WIDTH, 2)


def bayer(pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """A flat-colour image and its mosaic, sampling channels in ``pattern`` (top-left 2x2, row-major)."""
    rgb = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    rgb[:] = BAYER_COLOUR
    mosaic = np.empty((HEIGHT, WIDTH), np.uint8)
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, BAYER_CHANNELS[colour]]
    return rgb, mosaic[..., None]


def reference(encoding: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(expected RGB, HxWxC message pixels, tolerance) for one encoding."""
    rgb = random_rgb()
    alpha = np.full((HEIGHT, WIDTH, 1), 77, np.uint8)
    if encoding == "rgb8":
        return rgb, rgb, 0
    if encoding == "bgr8":
        return rgb, rgb[..., ::-1], 0
    if encoding == "rgba8":
        return rgb, np.concatenate([rgb, alpha], axis=-1), 0
    if encoding == "bgra8":
        return rgb, np.concatenate([rgb[..., ::-1], alpha], axis=-1), 0
    if encoding == "mono8":
        grey = rgb[..., :1]
        return grey.repeat(3, axis=-1), grey, 0
    if encoding == "yuv422":  # ROS's yuv422 is UYVY
        return (*yuv422("UYVY"), 2)
    if encoding == "yuv422_yuy2":
        return (*yuv422("YUYV"), 2)
    if encoding.startswith("bayer_"):
        return (*bayer(encoding[len("bayer_") : -1]), 0)
    raise AssertionError(f"no reference for {encoding}")


def image_msg(encoding: str, pixels: np.ndarray, padding: int = 0) -> Image:
    """An Image whose rows are ``padding`` bytes longer than the pixels, filled with junk."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    junk = np.full((height, padding), 0xEE, np.uint8)
    data = np.ascontiguousarray(np.concatenate([rows, junk], axis=1))
    msg = Image(height=height, width=width, encoding=encoding, step=data.shape[1])
    msg.data = array.array("B", data.tobytes())
    return msg


def round_trip(msg):
    """The message as a subscriber receives it: serialised to CDR and back."""
    return deserialize_message(serialize_message(msg), type(msg))


def as_rgb(image: np.ndarray, is_bgr: bool) -> np.ndarray:
    return image[..., ::-1] if is_bgr else image


# --- image_to_array -----------------------------------------------------------------------------


def test_every_supported_encoding_has_a_reference():
    for encoding in SUPPORTED_ENCODINGS:
        reference(encoding)
    assert len(set(SUPPORTED_ENCODINGS)) == 11


@pytest.mark.parametrize("received", [False, True], ids=["built", "deserialised"])
@pytest.mark.parametrize("padding", [0, 5], ids=["packed", "padded"])
@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_image_to_array_matches_reference(encoding, padding, received):
    expected, pixels, tolerance = reference(encoding)
    msg = image_msg(encoding, pixels, padding)
    if received:
        msg = round_trip(msg)
    image, is_bgr = image_to_array(msg)
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    rgb = as_rgb(image, is_bgr).astype(int)
    if encoding.startswith("bayer_"):  # demosaicing only interpolates correctly away from the border
        rgb, expected = rgb[2:-2, 2:-2], expected[2:-2, 2:-2]
    assert np.abs(rgb - expected).max() <= tolerance


def test_deserialised_data_is_an_array_array():
    # The buffer image_to_array views: documents what rclpy hands to callbacks.
    msg = round_trip(image_msg("rgb8", random_rgb()))
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"


@pytest.mark.parametrize("received", [False, True], ids=["built", "deserialised"])
@pytest.mark.parametrize("padding", [0, 5], ids=["packed", "padded"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_three_channel_images_are_views_of_the_message(encoding, padding, received):
    _, pixels, _ = reference(encoding)
    msg = image_msg(encoding, pixels, padding)
    if received:
        msg = round_trip(msg)
    image, is_bgr = image_to_array(msg)
    assert is_bgr == (encoding == "bgr8")
    assert np.shares_memory(image, np.frombuffer(msg.data, np.uint8))
    msg.data[msg.step + 3] = 123  # row 1, pixel 1, first channel
    assert image[1, 1, 0] == 123


@pytest.mark.parametrize("encoding", [e for e in SUPPORTED_ENCODINGS if e not in ("rgb8", "bgr8")])
def test_converted_images_are_contiguous_rgb(encoding):
    # The Segmenter's staging copy is ~30x slower from views with unpacked pixels (bench/conversions.py).
    _, pixels, _ = reference(encoding)
    image, is_bgr = image_to_array(image_msg(encoding, pixels, padding=3))
    assert image.flags.c_contiguous and not is_bgr


def test_image_to_array_accepts_bytes_data():
    # Messages from other sources (tests, bag readers) may carry bytes: a read-only view, still no copy.
    rgb = random_rgb()
    data = rgb.tobytes()
    msg = SimpleNamespace(encoding="rgb8", height=HEIGHT, width=WIDTH, step=WIDTH * 3, data=data)
    image, is_bgr = image_to_array(msg)
    assert not is_bgr and np.array_equal(image, rgb)
    assert np.shares_memory(image, np.frombuffer(data, np.uint8))


def test_image_to_array_ignores_bytes_beyond_step_times_height():
    msg = image_msg("rgb8", random_rgb())
    msg.data.extend(b"\x01\x02\x03")
    assert np.array_equal(image_to_array(msg)[0], random_rgb())


def bad_image(**changes) -> Image:
    msg = image_msg("rgb8", random_rgb())
    for field, value in changes.items():
        setattr(msg, field, value)
    return msg


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        (bad_image(encoding="32FC1"), ["unsupported", "'32FC1'", "rgb8", "bayer_grbg8", "CompressedImage"]),
        (bad_image(data=array.array("B", bytes(WIDTH * 3 * HEIGHT - 1))), ["179 bytes", "30 x 6 = 180"]),
        (bad_image(data=array.array("B")), ["0 bytes", "expected"]),
        (bad_image(width=0, step=0), ["0x6", "positive"]),
        (bad_image(height=0), ["10x0", "positive"]),
        (bad_image(step=WIDTH * 3 - 1), ["step 29", "30 bytes"]),
        (image_msg("yuv422", np.zeros((2, 5, 2), np.uint8)), ["yuv422 image 5x2", "even"]),
        (image_msg("yuv422_yuy2", np.zeros((2, 3, 2), np.uint8)), ["3x2", "even"]),
        (image_msg("rgba8", np.zeros((2, 3, 3), np.uint8)), ["step 9", "12 bytes"]),
    ],
    ids=["unsupported", "short-data", "no-data", "zero-width", "zero-height", "small-step", "odd-uyvy", "odd-yuy2", "rgba-step"],
)
def test_bad_images_raise_message_error_saying_why(msg, words):
    with pytest.raises(MessageError) as caught:
        image_to_array(msg)
    assert isinstance(caught.value, DenseASPPError)
    for word in words:
        assert word in str(caught.value)


# --- compressed_to_array ------------------------------------------------------------------------


def smooth_bgr() -> np.ndarray:
    """A gradient, which jpeg reproduces closely (random noise it would not)."""
    y, x = np.mgrid[0:32, 0:48]
    return np.stack([x * 5, y * 7, 255 - x * 5], axis=-1).astype(np.uint8)


def compressed_msg(extension: str, image: np.ndarray) -> CompressedImage:
    ok, encoded = cv2.imencode(extension, image)
    assert ok
    msg = CompressedImage(format=extension.lstrip("."))
    msg.data = array.array("B", encoded.tobytes())
    return msg


@pytest.mark.parametrize("received", [False, True], ids=["built", "deserialised"])
@pytest.mark.parametrize(("extension", "tolerance"), [(".png", 0), (".jpg", 12)])
def test_compressed_images_decode_to_bgr(extension, tolerance, received):
    bgr = smooth_bgr()
    msg = compressed_msg(extension, bgr)
    if received:
        msg = round_trip(msg)
    image, is_bgr = compressed_to_array(msg)
    assert is_bgr and image.shape == bgr.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - bgr).max() <= tolerance


def test_compressed_grey_png_becomes_three_channels():
    grey = smooth_bgr()[..., 0]
    image, _ = compressed_to_array(compressed_msg(".png", grey))
    assert image.shape == (*grey.shape, 3) and np.array_equal(image[..., 2], grey)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", ["no data", "'jpeg'"]),
        (b"\xff\xd8\xff\xe0 not really a jpeg" * 4, ["corrupt or truncated", "'jpeg'", "88 bytes"]),
        (None, ["corrupt or truncated", "'jpeg'"]),  # a real jpeg cut in half
    ],
    ids=["empty", "garbage", "truncated"],
)
def test_bad_compressed_images_raise_message_error(data, words):
    if data is None:
        whole = compressed_msg(".jpg", smooth_bgr()).data
        data = whole[: len(whole) // 2].tobytes()
    msg = CompressedImage(format="jpeg")
    msg.data = array.array("B", data)
    with pytest.raises(MessageError) as caught:
        compressed_to_array(msg)
    for word in words:
        assert word in str(caught.value)


# --- output messages ----------------------------------------------------------------------------


def camera_header() -> Header:
    header = Header(frame_id="camera_front_optical")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    return header


@pytest.mark.parametrize(
    ("build", "image", "encoding", "step"),
    [
        (mono8_msg, random_rgb()[..., 0], "mono8", WIDTH),
        (rgb8_msg, random_rgb(), "rgb8", WIDTH * 3),
        (rgb8_msg, random_rgb()[:, ::-1], "rgb8", WIDTH * 3),  # a strided view is packed on the way
    ],
    ids=["mono8", "rgb8", "rgb8-strided"],
)
def test_output_messages(build, image, encoding, step):
    header = camera_header()
    msg = build(header, image)
    assert msg.header is header
    assert msg.header.frame_id == "camera_front_optical" and msg.header.stamp.nanosec == 123_456_789
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == (encoding, HEIGHT, WIDTH, step, 0)
    assert isinstance(msg.data, array.array) and len(msg.data) == step * HEIGHT
    assert msg.data.tobytes() == np.ascontiguousarray(image).tobytes()
    received = round_trip(msg)
    back, is_bgr = image_to_array(received)
    assert not is_bgr
    assert np.array_equal(back if image.ndim == 3 else back[..., 0], image)


@pytest.mark.parametrize(
    ("build", "image"),
    [
        (mono8_msg, np.zeros((HEIGHT, WIDTH), np.int64)),  # argmax indices before the uint8 cast
        (mono8_msg, np.zeros((HEIGHT, WIDTH, 1), np.uint8)),
        (rgb8_msg, np.zeros((HEIGHT, WIDTH), np.uint8)),
        (rgb8_msg, np.zeros((HEIGHT, WIDTH, 4), np.uint8)),
        (rgb8_msg, np.zeros((HEIGHT, WIDTH, 3), np.float32)),
    ],
)
def test_output_messages_reject_wrong_arrays(build, image):
    with pytest.raises(ImageError, match=str(image.dtype)):
        build(camera_header(), image)


# --- labels_json --------------------------------------------------------------------------------


def test_labels_json_describes_the_label_set():
    document = json.loads(labels_json(CITYSCAPES))
    assert document["name"] == "cityscapes" and document["ignore_index"] == 255
    assert document["classes"] == CITYSCAPES.to_json_list()
    assert document["classes"][0] == {
        "id": 0, "name": "road", "color": [128, 64, 128], "label_id": 7, "category": "flat"
    }
    assert len(document["classes"]) == 19


# --- the costmap's grid and obstacle cloud --------------------------------------------------------

GRID = GridSpec(resolution=0.5, length_x=2.0, length_y=1.5, origin_x=-1.0, origin_y=-0.5, frame_id="base_link")


def key_of(train_id: int, contact: bool) -> int:
    return int(np.flatnonzero((TABLE.key_class == train_id) & (TABLE.key_is_contact == contact))[0])


def street_snapshot() -> Snapshot:
    """A 3x4 grid: road in row 0, a car's ground contact in cells 5 and 10, the rest unknown."""
    keys = np.zeros((GRID.height, GRID.width), np.uint8)
    keys[0] = key_of(ROAD, False)
    keys.flat[[5, 10]] = key_of(CAR, True)
    return Snapshot(keys=keys, table=TABLE, grid=GRID)


def test_occupancy_grid_message_is_the_snapshot_in_nav2_conventions():
    header = camera_header()
    msg = occupancy_grid_msg(street_snapshot(), header)
    assert msg.header is header and msg.info.map_load_time == header.stamp
    assert (msg.info.width, msg.info.height, msg.info.resolution) == (4, 3, 0.5)
    assert (msg.info.origin.position.x, msg.info.origin.position.y, msg.info.origin.orientation.w) == (-1.0, -0.5, 1.0)
    cells = np.array(round_trip(msg).data, np.int8).reshape(3, 4)
    assert (cells[0] == 0).all() and cells.flat[5] == cells.flat[10] == 100
    assert (np.delete(cells[1:].ravel(), [1, 6]) == -1).all()


@pytest.fixture(params=["numpy", "sensor_msgs_py"])
def cloud_builder(request, monkeypatch) -> str:
    """Both ways of building the cloud: packed here, or by sensor_msgs_py's create_cloud (faked where it is
    not installed, checking what it asserts: the points' dtype is the one the fields describe)."""
    if request.param == "sensor_msgs_py" and conversions.create_cloud is None:
        def create_cloud(header, fields, points):
            described = np.dtype({"names": [f.name for f in fields], "offsets": [f.offset for f in fields],
                                  "formats": ["<f4", "<f4", "<f4", "<u4"], "itemsize": points.dtype.itemsize})
            assert points.dtype == described and [f.datatype for f in fields] == [7, 7, 7, 6]
            calls.append(len(points))
            return PointCloud2(header=header, height=1, width=len(points), fields=fields, is_bigendian=False,
                               point_step=points.dtype.itemsize, row_step=points.dtype.itemsize * len(points),
                               is_dense=False, data=points.tobytes())

        calls: list[int] = []
        monkeypatch.setattr(conversions, "create_cloud", create_cloud)
        yield request.param
        assert calls, "create_cloud was not used"
        return
    if request.param == "numpy":
        monkeypatch.setattr(conversions, "create_cloud", None)
    yield request.param


def test_obstacle_cloud_holds_the_contact_cells_centres_on_the_ground(cloud_builder):
    header = camera_header()
    msg = round_trip(obstacle_cloud_msg(street_snapshot(), header))
    assert msg.header == header and (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 16, 32)
    assert [(f.name, f.offset) for f in msg.fields] == [("x", 0), ("y", 4), ("z", 8), ("class_id", 12)]
    points = np.frombuffer(bytes(msg.data), np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("class_id", "<u4")]))
    # cell 5: row 1, column 1; cell 10: row 2, column 2
    assert points["x"].tolist() == [-0.25, 0.25] and points["y"].tolist() == [0.25, 0.75]
    assert (points["z"] == 0).all() and (points["class_id"] == CAR).all()


def test_an_empty_obstacle_cloud_is_a_valid_message(cloud_builder):
    snapshot = Snapshot(keys=np.zeros((GRID.height, GRID.width), np.uint8), table=TABLE, grid=GRID)
    msg = round_trip(obstacle_cloud_msg(snapshot, camera_header()))
    assert (msg.width, len(msg.data)) == (0, 0)

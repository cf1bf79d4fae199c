"""Fail safe (issue 9): bad weights, bad clocks and hostile inputs never turn into free space.

Each case runs the real component: checkpoint files in the release's layout, the ``denseaspp``
command on real files, and the nodes as their own processes over DDS. A planner drives on the
cells this package calls free, so what is asserted is mostly what must *not* come out.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import qos_profile_sensor_data
from safetensors.torch import save_file
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from denseaspp_ros import cli
from denseaspp_ros.errors import CheckpointError, ImageError
from denseaspp_ros.image_messages import ImageTooLarge, MessageError, decode_image
from denseaspp_ros.imageio import read_bgr
from denseaspp_ros.inference import Segmenter
from denseaspp_ros.model import build_model, read_checkpoint, save_checkpoint, save_safetensors, to_original_state_dict
from denseaspp_ros.model.checkpoint import from_original_keys
from denseaspp_ros.synth.drive import DriveConfig, drive
from denseaspp_ros.synth.faults import Fault
from legacy_pickle import write_original_checkpoint
from node_harness import (
    LATCHED,
    DiagnosticsLog,
    NodeProcess,
    RosClient,
    camera_status,
    engine_status,
    image_msg,
    jpeg_msg,
    number,
    pattern_image,
    pixels,
    status,
    values,
    wait_until_ready,
    write_params,
)
from original_reference import randomize_

MOBILE = "MobileNetDenseASPP"
HEIGHT, WIDTH = 48, 64
# A label set whose every class has a cost: any mask marks cells as known, so a blanked grid shows.
LABELS = (
    "name: everything_costs\nclasses:\n"
    "  - {name: free, color: [0, 255, 0]}\n  - {name: rough, color: [255, 255, 0]}\n  - {name: block, color: [255, 0, 0]}\n"
)
COSTS = "label_set: everything_costs\nclasses:\n  free: 0\n  rough: 50\n  block: 100\n"
POSE = [0.0, 0.0, 1.5, 0.0, 0.3, 0.0]  # 1.5 m up, looking down the road
INTRINSICS = [50.0, 50.0, 31.5, 23.5]  # for 64x48 images


def mobilenet(num_classes: int = 19, seed: int = 0) -> torch.nn.Module:
    model = build_model(MOBILE, num_classes)
    randomize_(model.state_dict(), seed)
    return model


def overflowing(model: torch.nn.Module) -> torch.nn.Module:
    """Finite weights whose logits overflow float32 (as fp16 overflows on a GPU): inf/NaN at run time."""
    with torch.no_grad():
        model.classification[1].weight.fill_(3e38)
    return model


def poisoned_state(model: torch.nn.Module, value: float) -> dict[str, torch.Tensor]:
    """The model's release-layout tensors with one value of one tensor replaced (a NaN or an inf)."""
    state = to_original_state_dict(model)
    key = next(k for k in state if k.endswith("classification.1.bias"))
    state[key] = state[key].clone()
    state[key][7] = value
    return state


# --- weights -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("kind", ["original", "project", "safetensors"])
def test_a_single_non_finite_weight_is_refused_naming_the_tensor(tmp_path, kind, value):
    model = mobilenet()
    state = poisoned_state(model, value)
    path = tmp_path / ("weights.safetensors" if kind == "safetensors" else "weights.pkl")
    if kind == "original":
        write_original_checkpoint(state, path, on_gpu=True)
    else:
        model.load_state_dict(from_original_keys(state), strict=False)
        (save_safetensors if kind == "safetensors" else save_checkpoint)(model, path)
    with pytest.raises(CheckpointError, match=r"tensor classification\.1\.bias holds 1 non-finite value"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="refusing to load it"):
        build_model("auto", 19, path)


def test_infer_with_nan_weights_is_one_error_and_a_failing_exit_code(tmp_path, capsys):
    weights = tmp_path / "nan.pkl"
    write_original_checkpoint(poisoned_state(mobilenet(), float("nan")), weights)
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), pattern_image(HEIGHT, WIDTH))
    code = cli.main(["infer", str(image.parent), "--output", str(tmp_path / "out"), "--model", MOBILE,
                     "--weights", str(weights), "--device", "cpu"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code != 0
    assert len(errors) == 1 and "classification.1.bias" in errors[0] and "NaN" in errors[0], errors


def test_a_safetensors_header_with_a_non_integer_class_count_is_one_clean_error(tmp_path, capsys):
    weights = tmp_path / "odd.safetensors"
    tensors = {k: v.contiguous() for k, v in mobilenet().state_dict().items()}
    save_file(tensors, str(weights), metadata={"model": MOBILE, "num_classes": "nineteen"})
    code = cli.main(["bench", "--model", MOBILE, "--weights", str(weights), "--iterations", "1", "--size", "32x32"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if "error" in line] == [
        f"denseaspp bench: error: {weights}: the header's num_classes is 'nineteen', not a whole number"
    ]


def test_model_auto_identifies_the_variant_and_checks_the_class_count(tmp_path):
    path = tmp_path / "release_layout.pkl"
    write_original_checkpoint(to_original_state_dict(mobilenet(num_classes=3)), path)  # no header: shapes only
    assert build_model("auto", 3, path).variant_name == MOBILE
    with pytest.raises(Exception, match=r"3 classes, but 19 are expected: use --labels with 3 classes"):
        build_model("auto", 19, path)


def test_logits_that_overflow_are_flagged_and_finite_ones_are_not():
    images = [pattern_image(HEIGHT, WIDTH)]
    good = Segmenter(mobilenet(), device="cpu").segment(images)[0]
    bad = Segmenter(overflowing(mobilenet()), device="cpu").segment(images)[0]
    assert good.finite and not bad.finite


def test_a_cancelled_segmenter_stops_between_forward_passes():
    """A shutting-down node waits for one forward pass, not for all twelve of multi-scale."""
    import threading

    from denseaspp_ros.errors import Cancelled

    cancel = threading.Event()
    segmenter = Segmenter(mobilenet(), device="cpu", multiscale=True, cancel=cancel)
    passes = []
    def count_and_cancel(*_) -> None:  # returning None keeps the pass's output
        passes.append(1)
        cancel.set()

    segmenter.model.register_forward_hook(count_and_cancel)
    with pytest.raises(Cancelled):
        segmenter.segment([pattern_image(HEIGHT, WIDTH)])
    assert len(passes) == 1


# --- images that would take the machine down ---------------------------------------------------


def png_declaring(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` (its pixel data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_by_its_header(tmp_path):
    bomb = png_declaring(30000, 30000)
    assert len(bomb) < 200
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="900000000 pixels"):
        decode_image(CompressedImage(format="png", data=bomb), max_pixels=4096 * 4096)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(ImageError, match="900000000 pixels"):
        read_bgr(path, max_pixels=4096 * 4096)
    moderate = CompressedImage(format="png", data=png_declaring(5000, 5000))  # 25 MP: under PIL's own limit
    with pytest.raises(ImageTooLarge, match="5000x5000 = 25.0 MP, above max_image_pixels"):
        decode_image(moderate, max_pixels=4096 * 4096)
    assert time.perf_counter() - start < 5.0  # a header read, not an 18 s decode (generous: shared CI)


def test_infer_skips_an_image_declaring_too_many_pixels_and_segments_the_rest(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(png_declaring(30000, 30000))
    cv2.imwrite(str(folder / "good.png"), pattern_image(HEIGHT, WIDTH))
    code = cli.main(["infer", str(folder), "--output", str(tmp_path / "out"), "--model", MOBILE, "--device", "cpu",
                     "--save", "trainid"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "bomb.png" in err and "900000000 pixels" in err
    assert (tmp_path / "out" / "trainid" / "good.png").is_file()
    assert not (tmp_path / "out" / "trainid" / "bomb.png").exists()


def test_a_raw_image_declaring_too_many_pixels_is_refused_before_its_data_is_looked_at():
    huge = Image(height=20000, width=20000, encoding="rgb8", step=60000, data=b"\0" * 10)
    with pytest.raises(ImageTooLarge, match="20000x20000"):
        decode_image(huge, max_pixels=4096 * 4096)


def test_the_segmenter_refuses_images_beyond_its_bound_and_keeps_no_buffer_for_them():
    segmenter = Segmenter(mobilenet(), device="cpu", max_image_pixels=32 * 32)
    with pytest.raises(ImageError, match="max_image_pixels"):
        segmenter.segment([np.zeros((33, 32, 3), np.uint8)])
    assert not segmenter._staging


@pytest.mark.parametrize(
    "fmt, reason",
    [
        ("16UC1; png compressed mono16", "not an 8-bit"),
        ("16UC1; compressedDepth png", "depth image"),
        ("32FC1; compressedDepth", "depth image"),
        ("png", "16-bit or float"),  # a plain format string, but the PNG's header says 16 bits
    ],
)
def test_depth_and_16_bit_compressed_images_are_refused_with_the_reason(fmt, reason):
    ok, depth_png = cv2.imencode(".png", np.full((HEIGHT, WIDTH), 1234, np.uint16))
    assert ok
    with pytest.raises(MessageError, match=reason):
        decode_image(CompressedImage(format=fmt, data=depth_png.tobytes()))


@pytest.mark.parametrize("fmt", ["jpeg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8", "mono8; jpeg compressed mono8"])
def test_8_bit_compressed_formats_of_image_transport_are_decoded(fmt):
    message = jpeg_msg(Header(), pattern_image(HEIGHT, WIDTH))
    message.format = fmt
    image, is_bgr = decode_image(message)
    assert image.shape == (HEIGHT, WIDTH, 3) and is_bgr


# --- segmentation_node over DDS ----------------------------------------------------------------


def write_labels(folder: Path) -> tuple[Path, Path]:
    labels, costs = folder / "labels.yaml", folder / "costs.yaml"
    labels.write_text(LABELS)
    costs.write_text(COSTS)
    return labels, costs


def set_parameter(client: RosClient, node: str, name: str, value: ParameterValue):
    request = SetParameters.Request(parameters=[Parameter(name=name, value=value)])
    return client.call(SetParameters, f"/{node}/set_parameters", request).results[0]


def log_has(client: RosClient, process: NodeProcess, text: str, timeout: float = 30.0) -> bool:
    return client.spin_until(lambda: text in process.log() or not process.alive(), timeout) and text in process.log()


def test_nan_weights_fail_configure_with_the_tensor_named_and_so_does_any_other_error(client, tmp_path):
    name = "fail_safe_nan"
    weights = tmp_path / "nan.pkl"
    write_original_checkpoint(poisoned_state(mobilenet(), float("nan")), weights)
    odd = tmp_path / "odd.safetensors"
    save_file({k: v.contiguous() for k, v in mobilenet().state_dict().items()}, str(odd),
              metadata={"model": MOBILE, "num_classes": "many"})
    settings = {"model.name": "auto", "model.weights": str(weights), "allow_untrained": False}
    params = write_params(tmp_path / "autostart.yaml", {"cam": {"image_topic": "/fail_safe_nan/image"}}, **settings)
    assert "classification.1.bias holds 1 non-finite value" in NodeProcess(name, params, tmp_path / "autostart.log").assert_failed_exit()
    # Driven by a lifecycle manager, the node stays up and refuses each configure with the reason.
    params = write_params(tmp_path / "params.yaml", {"cam": {"image_topic": "/fail_safe_nan/image"}}, **settings, autostart=False)
    process = NodeProcess(name, params, tmp_path / "node.log")
    try:
        assert client.change_state(name, "configure", timeout=60.0) is False
        assert log_has(client, process, "configure failed"), process.log()
        assert "classification.1.bias holds 1 non-finite value" in process.log()
        assert client.lifecycle_state(name) == "unconfigured"
        assert client.node.count_publishers(f"/{name}/cam/mask") == 0
        # A parameter set while unconfigured is accepted and said to apply at configure.
        result = set_parameter(client, name, "model.weights", ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(odd)))
        assert result.successful
        assert log_has(client, process, "takes effect when the node is configured")
        assert not client.change_state(name, "configure")
        assert log_has(client, process, "num_classes is 'many'")
        assert process.alive()
    finally:
        process.assert_clean_exit()


def test_logits_that_overflow_at_run_time_never_reach_the_masks_or_the_costmap(client, tmp_path):
    name = "fail_safe_overflow"
    labels, costs = write_labels(tmp_path)
    weights = tmp_path / "overflow.safetensors"
    save_safetensors(overflowing(mobilenet(num_classes=3)), weights)
    topic = "/fail_safe_overflow/image"
    camera = {"image_topic": topic, "pose": POSE, "intrinsics": INTRINSICS}
    params = write_params(tmp_path / "params.yaml", {"cam": camera}, **{
        "model.name": "auto", "model.weights": str(weights), "allow_untrained": False,
        "model.labels": str(labels), "costmap.classes_file": str(costs),
    })
    process = NodeProcess(name, params, tmp_path / "node.log")
    try:
        wait_until_ready(client, process, [topic])
        masks = client.collect(Image, f"/{name}/cam/mask")
        grids = client.collect(OccupancyGrid, f"/{name}/costmap", LATCHED)
        diagnostics = DiagnosticsLog(client)
        publisher = client.node.create_publisher(Image, topic, qos_profile_sensor_data)

        def erroring(array) -> bool:
            status = camera_status(array, name, "cam")
            return status is not None and status.level == DiagnosticStatus.ERROR

        def send() -> None:
            publisher.publish(image_msg(Header(stamp=client.now_stamp(), frame_id="cam"), pattern_image(HEIGHT, WIDTH)))

        def counted() -> bool:
            arrays = diagnostics.of(name)
            return bool(arrays) and number(camera_status(arrays[-1][1], name, "cam"), "errors.nonfinite_logits") >= 3

        assert client.publish_until(send, counted, 30.0, period=0.3), process.log()
        array = diagnostics.wait(name, erroring, 5.0)
        assert array is not None, "diagnostics did not turn ERROR"
        assert "non-finite logits" in camera_status(array, name, "cam").message
        client.spin_for(1.0)
        assert masks == [], "a mask of non-finite logits was published"
        assert all((np.array(g.data) == -1).all() for g in grids), "non-finite logits reached the costmap"
        assert "non-finite logits (NaN/inf): masks withheld" in process.log()
    finally:
        process.assert_clean_exit()


GUARDED = "fail_safe_guarded"
CAMERAS = {
    "front": {"image_topic": "/fail_safe/front/image", "pose": POSE, "intrinsics": INTRINSICS},
    "roi": {"image_topic": "/fail_safe/roi/image", "camera_info_topic": "/fail_safe/roi/camera_info"},
    "big": {"image_topic": "/fail_safe/big/image/compressed", "compressed": True},
    "bad": {"image_topic": "/fail_safe/bad/image"},
    "idle": {"image_topic": "/fail_safe/idle/image"},
}


class Guarded:
    """A node with a costmap camera and cameras for hostile input, and the test's ends of them."""

    def __init__(self, client: RosClient, process: NodeProcess) -> None:
        self.client, self.process = client, process
        node = client.node
        self.publishers = {
            camera: node.create_publisher(CompressedImage if settings.get("compressed") else Image,
                                          settings["image_topic"], qos_profile_sensor_data)
            for camera, settings in CAMERAS.items()
        }
        self.info = node.create_publisher(CameraInfo, CAMERAS["roi"]["camera_info_topic"], qos_profile_sensor_data)
        self.masks = {camera: client.collect(Image, f"/{GUARDED}/{camera}/mask") for camera in ("front", "roi", "big", "bad")}
        self.grids = client.collect(OccupancyGrid, f"/{GUARDED}/costmap", LATCHED)
        self.diagnostics = DiagnosticsLog(client)
        assert client.spin_until(lambda: all(p.get_subscription_count() for p in self.publishers.values()), 15.0)

    def send(self, camera: str, stamp=None, frame_id: str = "frame") -> Header:
        stamped = Header(stamp=self.client.now_stamp() if stamp is None else stamp, frame_id=frame_id)
        self.publishers[camera].publish(image_msg(stamped, pattern_image(HEIGHT, WIDTH)))
        return stamped

    def status(self, camera: str, predicate=lambda status: True, timeout: float = 8.0) -> DiagnosticStatus:
        array = self.diagnostics.wait(
            GUARDED, lambda a: camera_status(a, GUARDED, camera) is not None and predicate(camera_status(a, GUARDED, camera)),
            timeout,
        )
        assert array is not None, f"no diagnostics of {camera} as expected; log:\n{self.process.log()}"
        return camera_status(array, GUARDED, camera)

    def latest(self, camera: str, key: str) -> float:
        """A counter in the newest diagnostics received so far (0 before any)."""
        arrays = self.diagnostics.of(GUARDED)
        return number(camera_status(arrays[-1][1], GUARDED, camera), key) if arrays else 0.0

    def grid_after(self, header: Header, timeout: float = 10.0) -> OccupancyGrid:
        """Send front frames like ``header`` (restamped now) until a grid stamped like one of them arrives."""
        sent: list[Header] = []

        def stamped_like_sent() -> bool:
            return any(g.header.stamp == h.stamp for g in self.grids for h in sent)

        assert self.client.publish_until(lambda: sent.append(self.send("front")), stamped_like_sent, timeout, period=0.3), (
            self.process.log()
        )
        return next(g for g in reversed(self.grids) if any(g.header.stamp == h.stamp for h in sent))


@pytest.fixture(scope="module")
def guarded(client, tmp_path_factory):
    folder = tmp_path_factory.mktemp(GUARDED)
    labels, costs = write_labels(folder)
    weights = folder / "release_layout.pkl"  # no header: model auto identifies it by its shapes
    write_original_checkpoint(to_original_state_dict(mobilenet(num_classes=3)), weights)
    params = write_params(folder / "params.yaml", CAMERAS, **{
        "model.name": "auto", "model.weights": str(weights), "allow_untrained": False, "model.labels": str(labels),
        "costmap.classes_file": str(costs), "publish.mask_color": False, "max_image_pixels": 1_000_000,
        "costmap.decay_time": 2.0,  # above the latency of a loaded CI machine
        "camera_health.unknown_masks": True,
    })
    process = NodeProcess(GUARDED, params, folder / "node.log")
    try:
        wait_until_ready(client, process, [c["image_topic"] for c in CAMERAS.values()])
        yield Guarded(client, process)
    finally:
        process.assert_clean_exit()


def grid_cells(grid: OccupancyGrid) -> np.ndarray:
    return np.array(grid.data, np.int8)


def stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def test_model_auto_took_the_variant_from_the_checkpoint(guarded):
    guarded.send("front")
    engine = engine_status(guarded.diagnostics.wait(GUARDED, timeout=5.0), GUARDED)
    assert values(engine)["model"] == MOBILE


def test_a_future_stamped_frame_neither_blanks_the_costmap_nor_moves_its_clock(guarded):
    client = guarded.client
    grid = guarded.grid_after(Header())
    assert (grid_cells(grid) >= 0).sum() > 50, "the camera should mark cells"
    before = number(guarded.status("front"), "errors.costmap_stamp")
    future = client.now_stamp()
    future.sec = 2**31 - 1  # 2038, the last second a ROS stamp can hold: a camera clock gone wrong
    assert client.publish_until(lambda: guarded.send("front", stamp=future),
                                lambda: guarded.latest("front", "errors.costmap_stamp") > before, 15.0, period=0.5)
    assert all(stamp_seconds(g.header) < time.time() + 5 for g in guarded.grids), "the grid's clock moved to the future"
    assert "ahead of this node's clock" in guarded.process.log()
    # Frames stamped in 2038 in a row are a camera clock gone wrong: camera health keeps the camera
    # off the free cells until leave_frames good frames have come; then its view is back.
    assert "stamps" in guarded.status("front", lambda s: "stamps" in s.message).message
    since = len(guarded.grids)
    assert client.publish_until(lambda: guarded.send("front"),
                                lambda: any((grid_cells(g) >= 0).sum() > 50 for g in guarded.grids[since:]), 15.0, period=0.2)


def test_a_frame_stamped_before_1970_keeps_its_mask_but_stays_out_of_the_costmap(guarded):
    before = number(guarded.status("front"), "errors.costmap_stamp")
    stamp = Header().stamp
    stamp.sec = -5
    masks = guarded.masks["front"]
    assert guarded.client.publish_until(lambda: guarded.send("front", stamp=stamp, frame_id="old"),
                                        lambda: any(m.header.frame_id == "old" for m in masks), 10.0, period=0.3)
    guarded.status("front", lambda s: number(s, "errors.costmap_stamp") > before)
    assert all(g.header.stamp.sec >= 0 for g in guarded.grids)


def test_cells_decay_to_unknown_on_the_clock_when_frames_stop(guarded):
    last = guarded.grid_after(Header())
    assert (grid_cells(last) >= 0).sum() > 50
    stopped = time.time()
    # decay_time is 2 s: within a few seconds a grid stamped later, all unknown, must come.
    assert guarded.client.spin_until(
        lambda: any(stamp_seconds(g.header) > stamp_seconds(last.header) and (grid_cells(g) == -1).all() for g in guarded.grids),
        8.0,
    ), "the last grid stood after its frames stopped"
    decayed = next(g for g in guarded.grids if (grid_cells(g) == -1).all() and stamp_seconds(g.header) > stamp_seconds(last.header))
    assert stamp_seconds(decayed.header) >= stopped - 0.5  # stamped on the clock, not with the old frame's stamp


def test_a_compressed_image_declaring_900_megapixels_is_refused_before_decoding(guarded):
    before = number(guarded.status("big"), "errors.too_large")
    bomb = CompressedImage(header=Header(stamp=guarded.client.now_stamp(), frame_id="bomb"), format="png",
                           data=png_declaring(30000, 30000))
    start = time.monotonic()
    assert guarded.client.publish_until(lambda: guarded.publishers["big"].publish(bomb),
                                        lambda: guarded.latest("big", "errors.too_large") > before, 15.0, period=0.5)
    print(f"bomb refused after {time.monotonic() - start:.2f} s; node RSS {guarded.process.rss_bytes() / 2**20:.0f} MB")
    assert guarded.process.rss_bytes() < 2 * 2**30  # decoding would take 2.7 GB
    assert not any(m.header.frame_id == "bomb" for m in guarded.masks["big"])
    good = jpeg_msg(Header(stamp=guarded.client.now_stamp(), frame_id="big_after"), pattern_image(HEIGHT, WIDTH))
    assert guarded.client.publish_until(lambda: guarded.publishers["big"].publish(good),
                                        lambda: any(m.header.frame_id == "big_after" for m in guarded.masks["big"]), 10.0)


def test_a_depth_image_on_a_compressed_camera_is_refused_not_segmented_as_colour(guarded):
    ok, depth = cv2.imencode(".png", np.full((HEIGHT, WIDTH), 1500, np.uint16))
    before = number(guarded.status("big"), "errors.bad_message")
    message = CompressedImage(header=Header(stamp=guarded.client.now_stamp(), frame_id="depth"),
                              format="16UC1; png compressed mono16", data=depth.tobytes())
    assert guarded.client.publish_until(lambda: guarded.publishers["big"].publish(message),
                                        lambda: guarded.latest("big", "errors.bad_message") > before, 15.0, period=0.5)
    assert not any(m.header.frame_id == "depth" for m in guarded.masks["big"])
    assert "not an 8-bit colour or grey encoding" in guarded.process.log()


def test_camera_info_with_a_region_of_interest_is_not_a_size_mismatch(guarded):
    info = CameraInfo(header=Header(frame_id="roi"), width=4 * WIDTH, height=4 * HEIGHT)
    info.k = [100.0, 0.0, 2 * WIDTH, 0.0, 100.0, 2 * HEIGHT, 0.0, 0.0, 1.0]
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 10, 20, WIDTH, HEIGHT
    masks = guarded.masks["roi"]
    for index in range(5):
        guarded.info.publish(info)
        guarded.client.spin_for(0.05)
        frame_id = f"roi_{index}"
        assert guarded.client.publish_until(lambda: guarded.send("roi", frame_id=frame_id),
                                            lambda: any(m.header.frame_id == frame_id for m in masks), 10.0, period=0.3)
    status = guarded.status("roi", lambda s: number(s, "published") >= 5)
    assert number(status, "errors.camera_info_mismatch") == 0, values(status)
    info.roi.width = WIDTH // 2  # the same camera_info with a ROI that does not fit: now it is a mismatch
    assert guarded.client.publish_until(
        lambda: (guarded.info.publish(info), guarded.client.spin_for(0.05), guarded.send("roi")),
        lambda: guarded.latest("roi", "errors.camera_info_mismatch") > 0, 15.0, period=0.3,
    )


def test_a_camera_whose_every_frame_fails_is_an_error_and_an_unwatched_one_is_idle(guarded):
    bad = Image(encoding="32FC1", height=HEIGHT, width=WIDTH, step=4 * WIDTH, data=bytes(4 * WIDTH * HEIGHT))
    for _ in range(35):
        bad.header = Header(stamp=guarded.client.now_stamp(), frame_id="bad")
        guarded.publishers["bad"].publish(bad)
        guarded.send("idle")
        guarded.client.spin_for(0.05)
    status = guarded.status("bad", lambda s: s.level == DiagnosticStatus.ERROR)
    assert "failed" in status.message and number(status, "errors.bad_message") >= 10, (status.message, values(status))
    idle = guarded.status("idle", lambda s: number(s, "received") >= 10)
    assert idle.message == "idle (no subscribers)" and idle.level == DiagnosticStatus.OK, idle.message


def test_parameters_set_at_run_time_are_checked_said_and_survive_reconfiguration(guarded):
    """Runs last among the guarded tests: it reconfigures the node."""
    client = guarded.client
    pose = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[0.0, 0.0, 1.6, 0.0, 0.3, 0.0])
    assert set_parameter(client, GUARDED, "front.pose", pose).successful
    short = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[1.0, 2.0])
    refused = set_parameter(client, GUARDED, "front.pose", short)
    assert not refused.successful and "front.pose must be [x, y, z, roll, pitch, yaw]" in refused.reason
    cameras = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["front", "extra"])
    refused = set_parameter(client, GUARDED, "cameras", cameras)
    assert not refused.successful and "restart the node" in refused.reason
    assert set_parameter(client, GUARDED, "max_batch", ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=2)).successful
    assert log_has(client, guarded.process, "parameter max_batch = 2 accepted: it takes effect at the next configure")
    for transition in ("deactivate", "cleanup", "configure", "activate"):
        assert client.change_state(GUARDED, transition), f"{transition} failed; log:\n{guarded.process.log()}"
    engine = engine_status(guarded.diagnostics.wait(GUARDED, timeout=5.0), GUARDED)
    assert values(engine)["max_batch"] == "2"
    assert (grid_cells(guarded.grid_after(Header())) >= 0).sum() > 50  # the new pose is in use


# --- semantic_costmap_node: the same clock rules, and ids outside the label set -------------------


def test_costmap_node_refuses_future_masks_decays_on_its_clock_and_counts_unknown_ids(client, tmp_path):
    name = "fail_safe_costmap"
    labels, costs = write_labels(tmp_path)
    topic = "/fail_safe_costmap/front/mask"
    parameters = {"cameras": ["front"], "labels": str(labels), "costmap": {"classes_file": str(costs)},
                  "front": {"mask_topic": topic, "pose": POSE, "intrinsics": INTRINSICS}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    process = NodeProcess(name, params, tmp_path / "node.log", program="semantic_costmap_node")
    try:
        publisher = client.node.create_publisher(Image, topic, 10)
        grids = client.collect(OccupancyGrid, f"/{name}/costmap", LATCHED)
        assert client.spin_until(lambda: publisher.get_subscription_count() > 0 or not process.alive(), 60.0), process.log()
        mask = np.full((HEIGHT, WIDTH), 2, np.uint8)

        def send(stamp=None, pixels=mask) -> Header:
            stamped = Header(stamp=client.now_stamp() if stamp is None else stamp, frame_id="front")
            publisher.publish(image_msg(stamped, pixels, "mono8"))
            return stamped

        sent: list[Header] = []
        assert client.publish_until(lambda: sent.append(send()), lambda: bool(grids), 20.0, period=0.3), process.log()
        assert (grid_cells(grids[-1]) == 100).sum() > 10
        future = client.now_stamp()
        future.sec += 2  # a camera whose clock runs 2 s ahead
        send(future)
        assert log_has(client, process, "ahead of this node's clock")
        fresh = send()
        assert client.spin_until(lambda: any(g.header.stamp == fresh.stamp for g in grids), 5.0)
        assert (grid_cells(next(g for g in grids if g.header.stamp == fresh.stamp)) == 100).sum() > 10
        assert all(stamp_seconds(g.header) <= stamp_seconds(fresh) for g in grids)
        assert client.spin_until(lambda: (grid_cells(grids[-1]) == -1).all(), 6.0), "cells did not decay on the clock"
        old = client.now_stamp()
        old.sec -= 5  # older than decay_time on arrival: it could only ever be unknown
        send(old)
        assert log_has(client, process, "older than costmap.decay_time")
        strange = mask.copy()
        strange[:4] = 40
        send(pixels=strange)
        assert log_has(client, process, "outside the label set's 0..2")
        assert "class ids [40]" in process.log()
    finally:
        process.assert_clean_exit()


def test_costmap_node_on_sim_time_waits_for_the_clock_and_forgets_when_it_jumps_back(client, tmp_path):
    """use_sim_time, as a replay runs it: no /clock yet means no time to age by (nothing counted as
    the camera's fault); a clock that jumps back (a looped bag) clears the grid instead of freezing it."""
    from rosgraph_msgs.msg import Clock

    name = "fail_safe_sim_time"
    labels, costs = write_labels(tmp_path)
    topic = "/fail_safe_sim_time/front/mask"
    parameters = {"use_sim_time": True, "cameras": ["front"], "labels": str(labels), "costmap": {"classes_file": str(costs)},
                  "front": {"mask_topic": topic, "pose": POSE, "intrinsics": INTRINSICS}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    process = NodeProcess(name, params, tmp_path / "node.log", program="semantic_costmap_node")
    clock = client.node.create_publisher(Clock, "/clock", 10)
    try:
        publisher = client.node.create_publisher(Image, topic, 10)
        grids = client.collect(OccupancyGrid, f"/{name}/costmap", LATCHED)
        assert client.spin_until(lambda: publisher.get_subscription_count() > 0 or not process.alive(), 60.0), process.log()
        mask = np.full((HEIGHT, WIDTH), 2, np.uint8)

        def at(seconds: int):
            stamp = Header().stamp
            stamp.sec = seconds
            return stamp

        def send(seconds: int) -> None:
            publisher.publish(image_msg(Header(stamp=at(seconds), frame_id="front"), mask, "mono8"))

        diagnostics = DiagnosticsLog(client)
        for _ in range(3):  # before any /clock: ignored, and not counted against the camera
            send(1000)
            client.spin_for(0.1)
        assert not grids and "ahead of this node's clock" not in process.log(), process.log()
        assert "waiting for /clock" in process.log()  # said, not silent
        waiting = diagnostics.wait(name, lambda a: "waiting for /clock" in getattr(status(a, name, "costmap"), "message", ""), 5.0)
        assert waiting is not None and status(waiting, name, "costmap").level == b"\x01"  # /diagnostics go on meanwhile

        def tick_and_send(seconds: int):
            def step() -> None:
                clock.publish(Clock(clock=at(seconds)))
                client.spin_for(0.05)
                send(seconds)
            return step

        assert client.publish_until(tick_and_send(1000), lambda: any((grid_cells(g) == 100).any() for g in grids),
                                    20.0, period=0.3), process.log()
        assert grids[-1].header.stamp.sec == 1000  # the replay's time, not the wall clock
        def tick_and_send_stale(seconds: int):
            def step() -> None:
                clock.publish(Clock(clock=at(seconds)))
                send(1000)
            return step

        # A frame right behind the jump: whichever notices the jump first, the worker (whose frame is
        # then refused as from the future) or the timer, the forgotten grid replaces the latched one.
        assert client.publish_until(tick_and_send_stale(500), lambda: "the clock jumped back" in process.log(),
                                    10.0, period=0.3), process.log()
        assert client.spin_until(lambda: (grid_cells(grids[-1]) == -1).all() and grids[-1].header.stamp.sec == 500, 5.0)
    finally:
        client.node.destroy_publisher(clock)
        process.assert_clean_exit()


# --- one namespace per vehicle -----------------------------------------------------------------------


def test_both_nodes_in_one_namespace_connect_with_their_default_topics(client, tmp_path):
    namespace = f"/car{int(time.time() * 1000) % 100000}"
    labels, costs = write_labels(tmp_path)
    weights = tmp_path / "three.safetensors"
    save_safetensors(mobilenet(num_classes=3), weights)
    seg = write_params(tmp_path / "seg.yaml", {"front": {}}, **{
        "model.name": "auto", "model.weights": str(weights), "allow_untrained": False, "model.labels": str(labels),
        "costmap.enabled": False,
    })
    costmap = tmp_path / "costmap.yaml"
    costmap.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "labels": str(labels), "costmap": {"classes_file": str(costs)}, "front": {"pose": POSE, "intrinsics": INTRINSICS},
    }}}))
    segmentation = NodeProcess("segmentation_node", seg, tmp_path / "seg.log", namespace=namespace)
    projection = NodeProcess("semantic_costmap_node", costmap, tmp_path / "costmap.log", program="semantic_costmap_node",
                             namespace=namespace)
    try:
        grids = client.collect(OccupancyGrid, f"{namespace}/semantic_costmap_node/costmap", LATCHED)
        publisher = client.node.create_publisher(Image, f"{namespace}/front/image_raw", qos_profile_sensor_data)
        assert client.spin_until(lambda: publisher.get_subscription_count() > 0 or not segmentation.alive(), 60.0)

        def send() -> None:
            publisher.publish(image_msg(Header(stamp=client.now_stamp(), frame_id="front"), pattern_image(HEIGHT, WIDTH)))

        assert client.publish_until(send, lambda: any((grid_cells(g) >= 0).any() for g in grids), 60.0, period=0.5), (
            f"no grid under {namespace}; segmentation log:\n{segmentation.log()}\ncostmap log:\n{projection.log()}"
        )
    finally:
        segmentation.assert_clean_exit()
        projection.assert_clean_exit()


# --- shutdown -----------------------------------------------------------------------------------------


def test_two_ctrl_c_during_a_forward_pass_exit_cleanly(client, tmp_path):
    name = "fail_safe_busy"
    topic = "/fail_safe_busy/image"
    params = write_params(tmp_path / "params.yaml", {"cam": {"image_topic": topic}}, **{"model.multiscale": True})
    process = NodeProcess(name, params, tmp_path / "node.log")
    publisher = client.node.create_publisher(Image, topic, qos_profile_sensor_data)
    masks = client.collect(Image, f"/{name}/cam/mask")
    wait_until_ready(client, process, [topic])
    message = image_msg(Header(frame_id="busy"), pattern_image(256, 512))

    def send() -> None:
        message.header.stamp = client.now_stamp()
        publisher.publish(message)

    assert client.publish_until(send, lambda: len(masks) >= 1, 60.0, period=0.05)
    started = time.monotonic()
    for _ in range(5):  # frames queued: the worker is inside a forward pass now
        send()
        client.spin_for(0.02)
    process.process.send_signal(signal.SIGINT)
    # After the first signal was handled (within one 0.1 s spin), while the node stops: two signals
    # arriving together would be coalesced by the kernel into one.
    time.sleep(0.3)
    process.process.send_signal(signal.SIGINT)
    code = process.stop(timeout=60.0)
    log = process.log()
    print(f"stopped {time.monotonic() - started:.1f} s after the signals")
    assert code == 0, f"exit {code}; log:\n{log}"
    assert "Traceback" not in log and "context is invalid" not in log and "Failed to publish" not in log, log


def test_sigterm_alone_stops_the_node_cleanly(client, tmp_path):
    params = write_params(tmp_path / "params.yaml", {"cam": {"image_topic": "/fail_safe_term/image"}})
    process = NodeProcess("fail_safe_term", params, tmp_path / "node.log")
    wait_until_ready(client, process, ["/fail_safe_term/image"])
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(30) == 0, process.log()
    process.stop()
    assert "Traceback" not in process.log()


def test_ctrl_c_during_start_up_imports_leaves_no_traceback(tmp_path):
    launcher = "from denseaspp_ros.ros.entry import segmentation_node; segmentation_node()"
    # -X importtime reports each finished import on stderr: the first torch submodule means the
    # interpreter is inside `import torch`, the longest import of the start-up.
    # faulthandler: if it ever hangs, SIGABRT makes it print where every thread stands.
    process = subprocess.Popen([sys.executable, "-X", "importtime", "-X", "faulthandler", "-c", launcher], stderr=subprocess.PIPE)
    output = b""
    for line in process.stderr:
        output += line
        if b"torch." in line:
            process.send_signal(signal.SIGINT)
            break
    try:
        output += process.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        output += process.communicate(timeout=30)[1]
        raise AssertionError("still running 60 s after Ctrl-C; its threads:\n" + output.decode(errors="replace")[-6000:]) from None
    text = output.decode(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert process.returncode == 130, process.returncode


def test_ctrl_c_during_the_first_engine_export_stops_within_launchs_5_s_leaving_nothing_half_built(client, tmp_path):
    """launch escalates to SIGTERM after 5 s and SIGKILL after 10: an export in configure is abandoned
    at the first Ctrl-C, its temporary folder removed, and the process exits 0."""
    cache = tmp_path / "cache"
    params = write_params(tmp_path / "params.yaml", {"cam": {"image_topic": "/fail_safe_export/image"}},
                          **{"model.name": "auto", "model.weights": "demo", "model.backend": "openvino", "model.cache_dir": str(cache)})
    process = NodeProcess("fail_safe_export", params, tmp_path / "node.log")
    assert client.spin_until(lambda: "exporting" in process.log() or not process.alive(), 120.0), process.log()
    client.spin_for(1.0)  # inside the export now
    started = time.monotonic()
    process.process.send_signal(signal.SIGINT)
    code = process.process.wait(30)
    stopped = time.monotonic() - started
    process.stop()  # closes the log
    log = process.log()
    assert code == 0 and stopped < 5.0, f"exit {code} after {stopped:.1f} s; log:\n{log}"
    assert "interrupted while starting" in log and "Traceback" not in log, log
    assert not cache.exists() or not any(cache.iterdir()), sorted(path.name for path in cache.iterdir())


@pytest.mark.parametrize(("fault", "kind"), [("frozen", "frozen"), ("dark", "exposure"), ("blinded", "exposure")])
def test_a_frozen_dark_or_blinded_camera_keeps_its_view_out_of_the_free_cells_and_says_so(guarded, fault, kind):
    """A driver that repeats one picture with advancing stamps, a camera gone dark or one blinded by
    the sun: within three
    frames the camera is in FAULT on /diagnostics (ERROR, the kind named) and adds no ground to the
    grid (free or rough: only obstacles it sees may stay), so the ground it painted decays to
    unknown; ~/front/health says FAULT and, with camera_health.unknown_masks, its masks are 255;
    fresh pictures bring it back after leave_frames."""
    client = guarded.client

    def ground(grid: OccupancyGrid) -> int:
        cells = grid_cells(grid)
        return int(((cells >= 0) & (cells < 100)).sum())

    assert ground(guarded.grid_after(Header())) > 50, "the camera should paint ground first"
    frozen = pattern_image(HEIGHT, WIDTH)
    health = client.collect(DiagnosticStatus, f"/{GUARDED}/front/health")

    noise = np.random.default_rng(5)

    def send_faulty() -> None:
        # Night: a twentieth of the light and the sensor's noise (so the dark frames are not also frozen).
        night = (pattern_image(HEIGHT, WIDTH) // 20 + noise.integers(0, 3, (HEIGHT, WIDTH, 3))).astype(np.uint8)
        # Blinded: the sun in the lens washes nearly everything out to white.
        glare = np.clip(240 + pattern_image(HEIGHT, WIDTH) // 32 + noise.integers(0, 3, (HEIGHT, WIDTH, 3)), 0, 255)
        picture = {"frozen": frozen, "dark": night, "blinded": glare.astype(np.uint8)}[fault]
        guarded.publishers["front"].publish(image_msg(Header(stamp=client.now_stamp(), frame_id=fault), picture))

    started = time.time()
    for _ in range(30):  # 3 s at 10 Hz: past the 2 s decay of what was painted before
        send_faulty()
        client.spin_for(0.1)
    status = guarded.status("front", lambda s: s.level == b"\x02")
    assert status.message == f"camera fault: {kind} FAULT: no free cells from this camera", status
    assert values(status)[f"health.{kind}"] == "FAULT"
    assert float(values(status)["health.frame_rate_msg"]) > 5 and "frame_rate_node" in values(status)
    assert any(verdict.level == b"\x02" and kind in verdict.message for verdict in health), "no FAULT on ~/front/health"
    faulty_masks = [mask for mask in guarded.masks["front"] if mask.header.frame_id == fault]
    assert faulty_masks and (np.frombuffer(bytes(faulty_masks[-1].data), np.uint8) == 255).all()
    recent = [g for g in guarded.grids if stamp_seconds(g.header) > started + 2.5]  # all painted before has decayed
    assert recent and not any(ground(g) for g in recent), f"a camera in {fault} FAULT still paints ground"
    for _ in range(15):  # fresh pictures: the fault clears after leave_frames (10)
        guarded.send("front")
        client.spin_for(0.1)
    assert client.spin_until(lambda: any(ground(g) > 50 for g in guarded.grids[-3:]), 5.0)
    assert kind not in guarded.status("front", lambda s: kind not in s.message).message


def test_a_blocked_lens_is_seen_while_the_vehicle_moves_and_its_pixels_go_out_as_unknown(client, tmp_path):
    """Mud over part of the lens of a moving camera (a synthetic drive, 10 Hz): while the drive is
    clean the camera stays OK; once the smudge has stayed flat and still while the scene moved, the
    camera is DEGRADED (WARN, blockage named), and its pixels leave the node as 255, never as road:
    the node's own costmap gets them as pixels that vote no ground (``test_costmap_fusion`` covers
    that step). After the mud is gone the 255s go with it."""
    name = "fail_safe_blocked"
    topic = f"/{name}/image"
    config = DriveConfig(frames=50, seed=818181, size=(128, 256), faults=(Fault("blockage", 1.5, 4.0),))
    frames = list(drive(config))
    params = write_params(tmp_path / "params.yaml", {"front": {"image_topic": topic}}, **{
        "camera_health.sample_stride": 4,  # tiles of 4x8 sampled pixels in these small frames, as 1024x2048 has at 8
        "camera_health.unknown_masks": True, "costmap.enabled": False,
    })
    process = NodeProcess(name, params, tmp_path / "node.log")
    publisher = client.node.create_publisher(Image, topic, qos_profile_sensor_data)
    masks = client.collect(Image, f"/{name}/front/mask")
    diagnostics = DiagnosticsLog(client)
    wait_until_ready(client, process, [topic])
    sent_at = {}
    for item in frames:
        publisher.publish(image_msg(Header(stamp=client.now_stamp(), frame_id=f"{item.index}"), item.camera.rgb))
        sent_at[item.index] = time.monotonic()
        client.spin_for(0.1)
    client.spin_for(1.5)  # the last diagnostics
    unknown = {int(mask.header.frame_id): pixels(mask) == 255 for mask in masks}
    before = [index for index in unknown if index < 15]
    during = [index for index in unknown if 26 <= index < 40]
    after = [index for index in unknown if index >= 42]
    assert before and during and after, f"masks of {sorted(unknown)}; log:\n{process.log()}"
    assert not any(unknown[index].any() for index in before)
    assert all(unknown[index].any() for index in during), f"no 255 in the masks of {during}"
    mud = np.logical_and.reduce([unknown[index] for index in during])  # the tiles the smudge held all along
    seen_blocked = np.logical_or.reduce([unknown[index] for index in during])
    assert mud.any() and not seen_blocked[: round(0.45 * 128)].any()  # only where the ground is looked at
    assert not any((unknown[index] & mud).any() for index in after)
    levels = [(arrival, camera_status(array, name, "front")) for arrival, array in diagnostics.of(name)]
    clean = [status for arrival, status in levels if status is not None and arrival < sent_at[14]]
    assert clean and all(status.level == b"\x00" for status in clean), [status.message for status in clean]
    warned = [status for _, status in levels if status is not None and status.level == b"\x01"]
    assert any("blockage DEGRADED" in status.message for status in warned), [status.message for _, status in levels if status]
    process.stop()

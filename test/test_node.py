"""segmentation_node end to end: its own process, real rclpy, real DDS (local, private domain).

One node process serves most tests (module-scoped); tests that need other parameters (slow
inference, no weights) start their own. Every test tags its frames with a unique frame_id and
looks only for outputs carrying it, so earlier tests' frames still in flight cannot satisfy it.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from denseaspp_ros.labels import get_label_set
from node_harness import (
    LATCHED,
    DiagnosticsLog,
    NodeProcess,
    RosClient,
    camera_status,
    engine_status,
    header,
    image_msg,
    jpeg_msg,
    number,
    pattern_image,
    pixels,
    stamp_ns,
    values,
    wait_until_ready,
    write_params,
)

HEIGHT, WIDTH = 48, 64
MAIN = "seg_test_main"
TOPIC = "/seg_test/{}/image"
CAMERAS = {
    "front": {"image_topic": TOPIC.format("front"), "camera_info_topic": "/seg_test/front/camera_info"},
    "rear": {"image_topic": TOPIC.format("rear")},
    "comp": {"image_topic": TOPIC.format("comp") + "/compressed", "compressed": True},
    "stamps": {"image_topic": TOPIC.format("stamps")},
    "unwatched": {"image_topic": TOPIC.format("unwatched")},  # nobody subscribes to its outputs
    "silent": {"image_topic": TOPIC.format("silent")},  # nobody ever publishes its images
}
WATCHED = ("front", "rear", "comp", "stamps")
OUTPUTS = ("mask", "mask_color", "overlay", "confidence")
_frame_ids = itertools.count()


def unique(tag: str) -> str:
    return f"{tag}_{next(_frame_ids)}"


class Main:
    """The shared node process, the client's publishers to it and everything it sent back."""

    def __init__(self, client: RosClient, process: NodeProcess) -> None:
        self.client, self.process, self.name = client, process, process.name
        node = client.node
        sensor_data = qos_profile_sensor_data
        self.publishers = {
            camera: node.create_publisher(
                CompressedImage if settings.get("compressed") else Image, settings["image_topic"], sensor_data
            )
            for camera, settings in CAMERAS.items()
            if camera != "silent"
        }
        self.camera_info = node.create_publisher(CameraInfo, CAMERAS["front"]["camera_info_topic"], sensor_data)
        self.outputs = {
            (camera, kind): client.collect(Image, f"/{self.name}/{camera}/{kind}")
            for camera in WATCHED
            for kind in OUTPUTS
        }
        self.diagnostics = DiagnosticsLog(client)
        matched = client.spin_until(
            lambda: all(p.get_subscription_count() > 0 for p in [*self.publishers.values(), self.camera_info]), 15.0
        )
        assert matched, "the node's subscriptions never matched the test's publishers"

    def frame(self, camera: str, frame_id: str, image: np.ndarray | None = None) -> Header:
        """Publish one good frame (jpeg on a compressed camera); returns its header."""
        image = pattern_image(HEIGHT, WIDTH) if image is None else image
        stamped = header(self.client, frame_id)
        message = jpeg_msg(stamped, image) if CAMERAS[camera].get("compressed") else image_msg(stamped, image)
        self.publishers[camera].publish(message)
        return stamped

    def output(self, camera: str, kind: str, frame_id: str) -> Image | None:
        return next((m for m in self.outputs[(camera, kind)] if m.header.frame_id == frame_id), None)

    def await_output(self, camera: str, frame_id: str, kind: str = "mask", timeout: float = 15.0) -> Image:
        """Send good frames tagged ``frame_id`` until the output carrying it comes back."""
        sent: list[Header] = []
        got = self.client.publish_until(
            lambda: sent.append(self.frame(camera, frame_id)),
            lambda: self.output(camera, kind, frame_id) is not None,
            timeout,
            period=0.2,
        )
        assert got, f"no {kind} for {camera} frame {frame_id} within {timeout} s; node log:\n{self.process.log()}"
        output = self.output(camera, kind, frame_id)
        assert any(output.header == h for h in sent), "the output's header is none of the inputs' headers"
        return output

    def camera_diagnostics(self, camera: str, predicate=lambda status: True, timeout: float = 6.0) -> DiagnosticStatus:
        """The camera's status in the first diagnostics from now on for which ``predicate`` holds."""

        def matches(array) -> bool:
            status = camera_status(array, self.name, camera)
            return status is not None and predicate(status)

        array = self.diagnostics.wait(self.name, matches, timeout)
        assert array is not None, f"no diagnostics for camera {camera} as expected within {timeout} s"
        return camera_status(array, self.name, camera)

    def latest_count(self, camera: str, key: str) -> float:
        """A counter in the newest diagnostics received so far (0 before any)."""
        arrays = self.diagnostics.of(self.name)
        return number(camera_status(arrays[-1][1], self.name, camera), key) if arrays else 0.0


@pytest.fixture(scope="module")
def main(client, tmp_path_factory):
    directory = tmp_path_factory.mktemp(MAIN)
    params = write_params(directory / "params.yaml", CAMERAS, **{"publish.overlay": True, "publish.confidence": True})
    process = NodeProcess(MAIN, params, directory / "node.log")
    try:
        wait_until_ready(client, process, [settings["image_topic"] for settings in CAMERAS.values()])
        yield Main(client, process)
    finally:
        process.assert_clean_exit()


def assert_alive(process: NodeProcess) -> None:
    assert process.alive(), f"{process.name} died with {process.process.returncode}; log:\n{process.log()}"


# --- outputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("camera", ["front", "rear", "comp"])
def test_mask_carries_the_input_header_and_size(main, camera):
    frame_id = unique(f"{camera}_optical")
    mask = main.await_output(camera, frame_id)
    assert mask.header.frame_id == frame_id
    assert mask.encoding == "mono8"
    assert (mask.height, mask.width) == (HEIGHT, WIDTH)
    assert mask.step == WIDTH
    assert len(mask.data) == HEIGHT * WIDTH
    assert pixels(mask).max() < 19  # trainIds of the 19 Cityscapes classes


def test_subscribed_outputs_are_published_with_matching_content(main):
    frame_id = unique("rear_all")
    image = pattern_image(HEIGHT, WIDTH, seed=1)
    sent = main.client.publish_until(
        lambda: main.frame("rear", frame_id, image),
        lambda: all(main.output("rear", kind, frame_id) for kind in OUTPUTS),
        15.0,
        period=0.2,
    )
    assert sent, {kind: main.output("rear", kind, frame_id) is not None for kind in OUTPUTS}
    mask, color, overlay, confidence = (main.output("rear", kind, frame_id) for kind in OUTPUTS)
    for output in (mask, color, overlay, confidence):
        assert (output.height, output.width) == (HEIGHT, WIDTH)
        assert output.header == mask.header
    assert (mask.encoding, color.encoding, overlay.encoding, confidence.encoding) == ("mono8", "rgb8", "rgb8", "mono8")
    assert color.step == 3 * WIDTH and confidence.step == WIDTH
    palette = get_label_set("cityscapes")
    np.testing.assert_array_equal(pixels(color), palette.colorize(pixels(mask)))
    np.testing.assert_array_equal(pixels(overlay), palette.overlay(image, pixels(mask), 0.5))
    # max softmax probability of 19 classes is at least 1/19
    assert pixels(confidence).min() >= int(255 / 19)


def test_outputs_nobody_subscribes_to_are_not_computed(main):
    for _ in range(5):
        main.frame("unwatched", unique("unwatched"))
        main.client.spin_for(0.05)
    status = main.camera_diagnostics("unwatched", lambda s: number(s, "received") >= 3)
    assert number(status, "published") == 0  # received, but nobody listens: no inference ran for it


@pytest.mark.parametrize("reliability", [ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE])
def test_best_effort_and_reliable_cameras_work_with_the_default_input_qos(main, reliability):
    publisher = main.client.node.create_publisher(
        Image, CAMERAS["front"]["image_topic"], QoSProfile(depth=1, reliability=reliability)
    )
    try:
        assert main.client.spin_until(lambda: publisher.get_subscription_count() > 0, 10.0), "QoS incompatible"
        frame_id = unique(f"qos_{reliability.name}")
        got = main.client.publish_until(
            lambda: publisher.publish(image_msg(header(main.client, frame_id), pattern_image(HEIGHT, WIDTH))),
            lambda: main.output("front", "mask", frame_id) is not None,
            15.0,
        )
        assert got
    finally:
        main.client.node.destroy_publisher(publisher)


def test_frames_of_two_cameras_run_as_one_batch(main):
    # Pairs faster than inference: both slots are full whenever the worker comes back.
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        main.frame("front", unique("pair"))
        main.frame("rear", unique("pair"))
        main.client.spin_for(0.005)
    array = main.diagnostics.wait(MAIN, timeout=5.0)
    assert array is not None
    engine = engine_status(array, MAIN)
    print(f"batching: mean_batch_size {number(engine, 'mean_batch_size')}")
    assert number(engine, "mean_batch_size") > 1.2, values(engine)
    assert int(values(engine)["max_batch"]) == 4
    assert number(engine, "inference_ms_per_batch_p50") > 0


def test_labels_are_latched_for_a_late_subscriber(main):
    labels: list[String] = []
    subscription = main.client.node.create_subscription(String, f"/{MAIN}/labels", labels.append, LATCHED)
    try:
        assert main.client.spin_until(lambda: labels, 10.0)
    finally:
        main.client.node.destroy_subscription(subscription)
    table = json.loads(labels[0].data)
    assert table["name"] == "cityscapes"
    assert len(table["classes"]) == 19
    assert table["classes"][0]["name"] == "road" and table["classes"][0]["id"] == 0
    assert table["ignore_index"] == 255


def test_diagnostics_about_once_a_second_with_a_status_per_camera(main):
    start = time.monotonic()
    main.client.spin_for(4.2)
    arrivals = [t for t, _ in main.diagnostics.of(MAIN) if t >= start]
    assert 3 <= len(arrivals) <= 6, arrivals
    gaps = np.diff(arrivals)
    assert 0.6 < float(np.median(gaps)) < 1.4, gaps
    _, array = main.diagnostics.of(MAIN)[-1]
    for camera in CAMERAS:
        status = camera_status(array, MAIN, camera)
        assert status is not None, camera
        keys = set(values(status))
        assert {"received", "published", "dropped_stale", "errors", "input_rate_hz", "output_rate_hz"} <= keys
        assert {"latency_ms_p50", "latency_ms_p95", "latency_ms_p99"} <= keys
    engine = values(engine_status(array, MAIN))
    assert {"mean_batch_size", "inference_ms_per_batch_p50", "state"} <= set(engine)
    assert engine["state"] == "active"
    front = values(camera_status(array, MAIN, "front"))
    assert int(front["received"]) >= int(front["published"]) > 0
    assert float(front["latency_ms_p95"]) >= float(front["latency_ms_p50"]) > 0


def test_silent_cameras_warn_while_the_others_keep_producing(main):
    main.await_output("comp", unique("comp_once"))  # comp has sent, then stops
    masks_before = len(main.outputs[("front", "mask")])
    end = time.monotonic() + 3.0
    while time.monotonic() < end:  # silence_timeout is 2 s
        main.frame("front", unique("front_alive"))
        main.client.spin_for(0.1)

    def statuses(array):
        return {camera: camera_status(array, MAIN, camera) for camera in ("front", "comp", "silent")}

    array = main.diagnostics.wait(MAIN, lambda a: statuses(a)["comp"].level != DiagnosticStatus.OK, timeout=4.0)
    assert array is not None, "comp never warned about its silence"
    status = statuses(array)
    assert status["silent"].level == DiagnosticStatus.WARN and status["silent"].message == "no images yet"
    assert status["comp"].level == DiagnosticStatus.WARN and status["comp"].message.startswith("silent for")
    assert status["front"].level == DiagnosticStatus.OK, status["front"]
    assert number(status["front"], "output_rate_hz") > 2
    assert len(main.outputs[("front", "mask")]) - masks_before >= 15


# --- bad input: counted, survived, and never in the way of other cameras ---------------------


def raw(encoding: str, height: int, width: int, step: int, data: bytes):
    def make(stamped: Header) -> Image:
        return Image(header=stamped, encoding=encoding, height=height, width=width, step=step, data=data)

    return make


def corrupt_jpeg(stamped: Header) -> CompressedImage:
    good = jpeg_msg(stamped, pattern_image(HEIGHT, WIDTH))
    return CompressedImage(header=stamped, format="jpeg", data=bytes(good.data[: len(good.data) // 3]))


BAD_FRAMES = {
    "32FC1": ("front", raw("32FC1", HEIGHT, WIDTH, 4 * WIDTH, bytes(4 * WIDTH * HEIGHT))),
    "data_shorter_than_step_x_height": ("front", raw("rgb8", HEIGHT, WIDTH, 3 * WIDTH, bytes(3 * WIDTH * HEIGHT - 1))),
    "zero_size": ("front", raw("rgb8", 0, 0, 0, b"")),
    "step_less_than_a_row": ("front", raw("rgb8", HEIGHT, WIDTH, WIDTH, bytes(3 * WIDTH * HEIGHT))),
    "corrupt_jpeg": ("comp", corrupt_jpeg),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_a_bad_frame_is_counted_and_the_node_carries_on(main, case):
    camera, make_bad = BAD_FRAMES[case]
    before = number(main.camera_diagnostics(camera), "errors.bad_message")
    other_masks = len(main.outputs[("rear", "mask")])

    def send() -> None:
        main.publishers[camera].publish(make_bad(header(main.client, unique("bad"))))
        main.frame("rear", unique("rear_meanwhile"))

    counted = main.client.publish_until(
        send, lambda: main.latest_count(camera, "errors.bad_message") > before, 10.0, period=0.25
    )
    assert counted, f"errors.bad_message of {camera} stayed at {before}"
    assert_alive(main.process)
    assert len(main.outputs[("rear", "mask")]) > other_masks, "the other camera stalled"
    main.await_output(camera, unique(f"{camera}_after_{case}"))


def test_camera_info_of_another_size_is_counted_and_the_mask_follows_the_image(main):
    def info(height: int, width: int) -> CameraInfo:
        return CameraInfo(header=header(main.client, "front_optical"), height=height, width=width)

    before = number(main.camera_diagnostics("front"), "errors.camera_info_mismatch")

    def send_wrong() -> None:
        main.camera_info.publish(info(480, 640))
        main.client.spin_for(0.02)
        main.frame("front", unique("front_mismatch"))

    counted = main.client.publish_until(
        send_wrong, lambda: main.latest_count("front", "errors.camera_info_mismatch") > before, 10.0, period=0.25
    )
    assert counted
    mask = main.await_output("front", unique("front_mismatch_mask"))
    assert (mask.height, mask.width) == (HEIGHT, WIDTH)
    assert_alive(main.process)

    # The right size again: no further mismatches (binning divides the size).
    matching = info(2 * HEIGHT, 2 * WIDTH)
    matching.binning_x = matching.binning_y = 2
    for _ in range(5):
        main.camera_info.publish(matching)
        main.client.spin_for(0.05)
    settled = number(main.camera_diagnostics("front"), "errors.camera_info_mismatch")
    for _ in range(3):
        main.await_output("front", unique("front_matching"))
    after = number(main.camera_diagnostics("front"), "errors.camera_info_mismatch")
    assert after == settled


def test_a_frame_stamped_before_1970_does_not_stop_the_worker(main):
    frame_id = unique("stamps_negative")
    bad = Header(frame_id=frame_id)
    bad.stamp.sec = -1
    got = main.client.publish_until(
        lambda: main.publishers["stamps"].publish(image_msg(bad, pattern_image(HEIGHT, WIDTH))),
        lambda: main.output("stamps", "mask", frame_id) is not None,
        10.0,
        period=0.2,
    )
    assert got, f"no mask for a frame stamped -1 s; log:\n{main.process.log()}"
    assert main.output("stamps", "mask", frame_id).header.stamp.sec == -1
    main.await_output("stamps", unique("stamps_after"))
    main.await_output("rear", unique("rear_after_stamps"))
    status = main.camera_diagnostics("stamps", lambda s: number(s, "published") >= 2)
    assert number(status, "errors") == 0, values(status)  # an odd stamp is the camera's business


def test_an_unstamped_frame_is_published_but_kept_out_of_the_latency_figures(main):
    # On "rear", whose other frames are all stamped now: the stamp test's -1 s frames use "stamps".
    frame_id = unique("rear_zero")
    zero = Header(frame_id=frame_id)  # stamp 0: drivers that never stamp
    before = number(main.camera_diagnostics("rear"), "unstamped")
    got = main.client.publish_until(
        lambda: main.publishers["rear"].publish(image_msg(zero, pattern_image(HEIGHT, WIDTH))),
        lambda: main.output("rear", "mask", frame_id) is not None,
        10.0,
        period=0.2,
    )
    assert got, f"no mask for an unstamped frame; log:\n{main.process.log()}"
    status = main.camera_diagnostics("rear", lambda s: number(s, "unstamped") > before)
    assert number(status, "unstamped") > before
    assert number(status, "latency_ms_p99") < 60_000, "a zero stamp leaked into the latency percentiles"


# --- lifecycle --------------------------------------------------------------------------------


def assert_no_masks(main: Main, camera: str, seconds: float) -> None:
    frame_ids = [unique(f"{camera}_ignored") for _ in range(int(seconds / 0.1))]
    for frame_id in frame_ids:
        main.frame(camera, frame_id)
        main.client.spin_for(0.1)
    main.client.spin_for(0.5)
    assert not [f for f in frame_ids if main.output(camera, "mask", f)], "masks while not active"


def test_lifecycle_deactivate_activate_cleanup_configure(main):
    client = main.client
    assert client.lifecycle_state(MAIN) == "active"

    assert client.change_state(MAIN, "deactivate")
    assert client.lifecycle_state(MAIN) == "inactive"
    array = main.diagnostics.wait(MAIN, lambda a: values(engine_status(a, MAIN))["state"] == "inactive", 5.0)
    assert array is not None and camera_status(array, MAIN, "rear").message == "inactive"
    assert_no_masks(main, "rear", 1.5)

    assert client.change_state(MAIN, "activate")
    assert client.lifecycle_state(MAIN) == "active"
    main.await_output("rear", unique("rear_reactivated"))

    assert client.change_state(MAIN, "deactivate")
    assert client.change_state(MAIN, "cleanup")
    assert client.lifecycle_state(MAIN) == "unconfigured"
    assert_no_masks(main, "rear", 1.0)
    assert client.change_state(MAIN, "configure")
    assert client.lifecycle_state(MAIN) == "inactive"
    assert client.change_state(MAIN, "activate")
    assert client.lifecycle_state(MAIN) == "active"
    for camera in ("front", "rear", "comp"):
        main.await_output(camera, unique(f"{camera}_reconfigured"))
    assert_alive(main.process)


def test_resident_memory_does_not_grow_over_2000_frames(main):
    """Soak: every frame goes all the way through (conversion, inference, four outputs)."""
    image = pattern_image(32, 48, seed=3)
    masks = main.outputs[("rear", "mask")]
    sent = delivered = 0
    start = time.monotonic()
    rss = {}
    for index in range(2000):
        if index == 200:
            rss["warm"] = main.process.rss_bytes()
        frame_id = f"soak_{index}"
        main.frame("rear", frame_id, image)
        sent += 1
        # Lock-step, so no frame is dropped as stale; a lost one is not waited for long.
        if main.client.spin_until(lambda: masks and masks[-1].header.frame_id == frame_id, 1.0):
            delivered += 1
        if len(masks) > 100:
            for outputs in main.outputs.values():
                outputs.clear()
    rss["end"] = main.process.rss_bytes()
    elapsed = time.monotonic() - start
    warm_mb, end_mb = rss["warm"] / 2**20, rss["end"] / 2**20
    print(f"soak: {delivered}/{sent} frames in {elapsed:.1f} s, VmRSS {warm_mb:.0f} -> {end_mb:.0f} MB")
    assert delivered >= 0.98 * sent
    assert end_mb - warm_mb < 50, rss
    assert_alive(main.process)


# --- a node that infers much slower than its camera publishes ---------------------------------


SLOW = "seg_test_slow"
SLOW_TOPIC = "/seg_test_slow/cam/image"


@pytest.fixture(scope="module")
def slow_node(client, tmp_path_factory):
    directory = tmp_path_factory.mktemp(SLOW)
    # Multi-scale with flips: ~12 forward passes per frame, a few hundred ms on one CPU thread.
    params = write_params(directory / "params.yaml", {"cam": {"image_topic": SLOW_TOPIC}}, **{"model.multiscale": True})
    process = NodeProcess(SLOW, params, directory / "node.log")
    try:
        wait_until_ready(client, process, [SLOW_TOPIC])
        yield process
    finally:
        process.assert_clean_exit()


def test_stale_frames_are_dropped_not_queued(client, slow_node):
    diagnostics = DiagnosticsLog(client)
    publisher = client.node.create_publisher(Image, SLOW_TOPIC, qos_profile_sensor_data)
    latencies: list[tuple[float, float]] = []  # (arrival, latency s)

    def on_mask(mask: Image) -> None:
        now = client.node.get_clock().now().nanoseconds
        latencies.append((time.monotonic(), (now - stamp_ns(mask)) / 1e9))

    subscription = client.node.create_subscription(Image, f"/{SLOW}/cam/mask", on_mask, 10)
    message = image_msg(Header(frame_id="slow"), pattern_image(64, 128))
    try:
        # Warm up (first passes are slower) and make sure the mask subscription is matched.
        def warm_up() -> None:
            message.header.stamp = client.now_stamp()  # a warm-up frame still in flight later must not look stale
            publisher.publish(message)

        assert client.publish_until(warm_up, lambda: len(latencies) >= 2, 30.0, period=0.3)
        warm = diagnostics.wait(SLOW, lambda a: number(engine_status(a, SLOW), "inference_ms_per_batch_p50") > 0, 5.0)
        assert warm is not None
        # Every duration below is relative to the node's own batch time: a loaded machine slows both.
        batch_s = number(engine_status(warm, SLOW), "inference_ms_per_batch_p50") / 1000
        burst_s = max(3.0, 12 * batch_s)
        latencies.clear()
        published = 0
        start = time.monotonic()
        next_time = start
        while next_time - start < burst_s:  # 200 Hz: far faster than the node
            message.header.stamp = client.now_stamp()
            publisher.publish(message)
            published += 1
            next_time += 0.005
            client.spin_until(lambda: time.monotonic() >= next_time, max(0.0, next_time - time.monotonic()) + 0.001)
        stopped = time.monotonic()
        client.spin_for(3 * batch_s)  # what was being processed comes out
        array = diagnostics.wait(SLOW, timeout=3.0)
    finally:
        client.node.destroy_subscription(subscription)
        client.node.destroy_publisher(publisher)
    assert array is not None
    camera, engine = camera_status(array, SLOW, "cam"), engine_status(array, SLOW)
    inference_s = number(engine, "inference_ms_per_batch_p50") / 1000
    received, done, dropped = (number(camera, key) for key in ("received", "published", "dropped_stale"))
    during = [latency for arrival, latency in latencies if arrival <= stopped + 2 * inference_s]
    print(
        f"stale: published {published} in {burst_s:.1f} s, node received {received:.0f}, processed {done:.0f}, "
        f"dropped {dropped:.0f}; inference {1000 * inference_s:.0f} ms; masks {len(latencies)}, "
        f"latency ms {[round(1000 * x) for x in during]}"
    )
    assert received >= 0.5 * published
    assert len(latencies) <= 0.2 * published, "the publisher should outrun the node: outputs far fewer than inputs"
    # Every received frame is processed, or replaced by a newer one (at most one may still wait).
    assert received - 2 <= done + dropped <= received
    assert dropped >= 0.5 * received
    assert len(during) >= 4
    p95 = float(np.percentile(during, 95))
    assert p95 < 3 * inference_s, f"p95 latency {p95:.3f} s against inference {inference_s:.3f} s"
    half = len(during) // 2
    assert np.median(during[half:]) < 1.5 * np.median(during[:half]) + 0.5 * inference_s, "latency grows"
    # After the burst the node is idle again, not working through a backlog.
    assert not [a for a, _ in latencies if a > stopped + 5 * inference_s]


def test_parameters_and_services_answer_while_inference_runs(client, slow_node):
    """The executor thread stays free: the worker does the inference."""
    from rcl_interfaces.srv import GetParameters

    publisher = client.node.create_publisher(Image, SLOW_TOPIC, qos_profile_sensor_data)
    message = image_msg(Header(frame_id="busy"), pattern_image(64, 128))
    stop = threading.Event()

    def flood() -> None:  # keep the worker busy from another thread while this one calls services
        while not stop.is_set():
            message.header.stamp = client.now_stamp()
            publisher.publish(message)
            time.sleep(0.01)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        client.spin_for(1.0)
        durations = []
        for _ in range(5):
            start = time.monotonic()
            response = client.call(GetParameters, f"/{SLOW}/get_parameters", GetParameters.Request(names=["max_batch"]))
            durations.append(time.monotonic() - start)
            assert response.values[0].integer_value == 4
        state_start = time.monotonic()
        assert client.lifecycle_state(SLOW) == "active"
        durations.append(time.monotonic() - state_start)
    finally:
        stop.set()
        flooder.join()
        client.node.destroy_publisher(publisher)
    print(f"service answers under load: {[round(1000 * d) for d in durations]} ms")
    assert max(durations) < 1.0, durations


# --- no weights --------------------------------------------------------------------------------


def test_refuses_to_configure_without_weights_unless_allowed(client, tmp_path):
    """With autostart the process ends with exit code 1 after the reason; driven by a lifecycle
    manager (autostart false) it stays up and refuses configure each time it is asked."""
    name = "seg_test_untrained"
    cameras = {"cam": {"image_topic": "/seg_test_untrained/image"}}
    params = write_params(tmp_path / "autostart.yaml", cameras, allow_untrained=False)
    log = NodeProcess(name, params, tmp_path / "autostart.log").assert_failed_exit()
    assert "model.weights: weights/denseASPP161.pkl does not exist" in log and "configure failed with autostart" in log
    params = write_params(tmp_path / "params.yaml", cameras, allow_untrained=False, autostart=False)
    process = NodeProcess(name, params, tmp_path / "node.log")
    try:
        assert client.change_state(name, "configure", timeout=60.0) is False
        assert client.lifecycle_state(name, timeout=60.0) == "unconfigured"
        client.spin_for(0.5)
        assert_alive(process)
        assert "model.weights: weights/denseASPP161.pkl does not exist" in process.log()
        assert "model.weights: demo" in process.log()  # and what to do about it
        assert client.node.count_publishers(f"/{name}/cam/mask") == 0
        assert not client.change_state(name, "configure")  # asking again does not help
        assert client.lifecycle_state(name) == "unconfigured"
        assert_alive(process)
    finally:
        process.assert_clean_exit()


def exif_rotated_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG of ``rgb`` whose EXIF asks viewers to turn it (6: 90 degrees clockwise)."""
    from PIL import Image as PILImage

    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_an_exif_orientation_tag_never_turns_the_camera_frame(main):
    """A camera's pixels are its geometry: the mask keeps the frame's stored size, whatever EXIF says."""
    frame_id = unique("exif_optical")
    data = exif_rotated_jpeg(pattern_image(HEIGHT, WIDTH))

    def publish() -> None:
        main.publishers["comp"].publish(CompressedImage(header=header(main.client, frame_id), format="jpeg", data=data))

    assert main.client.publish_until(publish, lambda: main.output("comp", "mask", frame_id) is not None, 15.0, period=0.2)
    mask = main.output("comp", "mask", frame_id)
    assert (mask.height, mask.width) == (HEIGHT, WIDTH)


def test_debug_on_the_nodes_logger_shows_each_frames_stages_and_nothing_of_rcl(client, tmp_path):
    """What launch's log_level:=debug passes: --log-level <node>:=debug, the node's own logger."""
    name = "seg_test_debug"
    topic = "/seg_test_debug/image"
    params = write_params(tmp_path / "params.yaml", {"cam": {"image_topic": topic}})
    process = NodeProcess(name, params, tmp_path / "node.log", arguments=("--log-level", f"{name}:=debug"))
    try:
        wait_until_ready(client, process, [topic])
        publisher = client.node.create_publisher(Image, topic, qos_profile_sensor_data)
        masks = client.collect(Image, f"/{name}/cam/mask")

        def send() -> None:
            publisher.publish(image_msg(header(client, "debug"), pattern_image(HEIGHT, WIDTH)))

        assert client.publish_until(send, lambda: len(masks) >= 2, 30.0, period=0.2), process.log()
        assert client.spin_until(lambda: "published mask" in process.log(), 5.0), process.log()
        log = process.log()
        for stage in ("wanted: cam", "decoded in", "segmented 1 frames in", "published mask"):
            assert "[DEBUG] " in log and stage in log, stage
        assert "[rcl]" not in log and "[rmw" not in log, log[:2000]
    finally:
        process.assert_clean_exit()

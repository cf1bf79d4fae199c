"""``segmentation_node``: cameras in, semantic masks out.

Data flows one way: a subscription stores the raw message in its camera's newest-frame slot
(nothing else happens on the executor thread); the inference worker takes the newest frame of
every camera, converts them to arrays, runs them through the Segmenter as one batch and
publishes each camera's outputs with the input's header unchanged, then the costmap.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.logging import LoggingSeverity
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from ..errors import Cancelled
from ..frames import Frame
from ..image_messages import ImageTooLarge, MessageError, decode_frame
from ..inference import Segmentation, Segmenter, load_engine
from ..inference.backends import EngineBuilding, ExportedBackend
from ..labels import IGNORE_INDEX, LabelSet
from ..model import OptionNames
from ..serving.camera_health import CameraHealth, CameraHealthMonitor, State
from ..serving.health import (
    Health, Level, camera_figures, camera_health, engine_figures, engine_health, judged_health, worse_of,
)
from ..serving.scheduling import LatestFrameSlots, PendingFrame
from ..serving.settings import CameraSettings, NodeSettings
from ..serving.stamps import FrameRefused, StampRejected, latency_s
from ..serving.stats import ENGINE_BUILDING, NONFINITE, CameraStats, EngineStats
from .camera_info import published_size
from .conversions import labels_json, mono8_msg, rgb8_msg
from .costmap_output import CostmapOutput
from .names import LABEL_INFO_TOPIC, LABELS_TOPIC, camera_output_topic
from .names import SEGMENTATION_NODE as NODE_NAME
from .runner import CameraLifecycleNode, run_lifecycle_node
from .settings import read, read_cameras

_WORKER_POLL_S = 0.2
# Checkpoint mismatches advise on the node's parameters, not on CLI flags.
NODE_OPTIONS = OptionNames(
    model="model.name: {}", num_classes="model.labels with {} classes", weights="model.weights: {}",
    allow_untrained="allow_untrained: true",
)
_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
COSTMAP = "costmap"  # among a frame's wanted outputs: its mask goes into the costmap


def _qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=_RELIABILITY[reliability])


@dataclass
class Camera:
    """A camera's settings, its publishers and its statistics."""

    settings: CameraSettings
    monitor: CameraHealthMonitor | None  # None: camera_health.enabled is false
    stats: CameraStats = field(default_factory=CameraStats)
    publishers: dict = field(default_factory=dict)  # output kind -> lifecycle publisher
    health: CameraHealth | None = None  # the monitor's verdict after the newest frame
    health_publisher: Any = None  # ~/<camera>/health, with a monitor

    @property
    def name(self) -> str:
        return self.settings.name

    def wanted_outputs(self) -> set[str]:
        """Outputs someone subscribes to: the others are not computed."""
        return {kind for kind, publisher in self.publishers.items() if publisher.get_subscription_count() > 0}


@dataclass
class Job:
    """A frame in the batch being run: its camera, its pixels and the outputs someone wants of it."""

    pending: PendingFrame
    camera: Camera
    frame: Frame
    wanted: set[str]
    health: CameraHealth | None  # None: not judged (camera_health.enabled false)

    @property
    def header(self) -> Header:
        return self.pending.message.header


class SegmentationNode(CameraLifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, NodeSettings, CameraSettings, **kwargs)
        self.settings: NodeSettings | None = None
        self.segmenter: Segmenter | None = None
        self.cameras: dict[str, Camera] = {}
        self.costmap: CostmapOutput | None = None
        self.engine_stats = EngineStats()
        self._slots: LatestFrameSlots | None = None
        self._worker: threading.Thread | None = None
        self._stop_worker = threading.Event()
        self._static_publishers: list = []
        self._active = False

    def is_configured(self) -> bool:
        return self.settings is not None

    # --- lifecycle: what configure builds, what runs while active ----------------------------

    def build(self) -> None:
        settings = replace(read(self, NodeSettings), camera_settings=read_cameras(self, CameraSettings, self.camera_names))
        model = settings.model
        segmenter = load_engine(
            model.weights,
            model.name,
            model.labels,
            allow_untrained=settings.allow_untrained,
            options=NODE_OPTIONS,
            backend=model.runtime,
            warn=self.get_logger().warning,
            log=self.get_logger().info,
            device=model.device,
            precision=model.precision,
            input_size=model.input_size,
            multiscale=model.multiscale,
            max_batch=settings.max_batch,
            max_image_pixels=settings.max_image_pixels,
            cancel=self._stop_worker,
        )
        label_set = segmenter.label_set
        if isinstance(segmenter.backend, ExportedBackend):
            segmenter.backend.build_in_background()  # a new camera size never stalls the other cameras' frames
        self._evicted_reported = 0
        if settings.costmap.enabled:
            calibrations = {camera.name: camera.calibration for camera in settings.camera_settings}
            self.costmap = CostmapOutput(self, settings.costmap.output, label_set, calibrations)
        self.settings, self.segmenter = settings, segmenter
        self._create_publishers(settings, label_set)
        device = self._device()
        self.get_logger().info(
            f"configured {segmenter.model_name} ({segmenter.weights or 'random weights'}) on {device['device']} "
            f"({device['precision']}, {device['backend']} backend, network input {device['input_size']}) "
            f"for cameras {', '.join(settings.cameras)}"
        )
        if settings.camera_health.enabled and segmenter.uncertainty_band is None:
            self.get_logger().info(
                "these weights carry no uncertainty band: camera health runs without its network self-check "
                "(a frame the network is out of its depth on is not noticed; bench/uncertainty_band.py measures one)"
            )

    def release(self) -> None:
        self.stop_diagnostics()
        for camera in self.cameras.values():
            for publisher in camera.publishers.values():
                self.destroy_lifecycle_publisher(publisher)
        for publisher in self._static_publishers:
            self.destroy_publisher(publisher)
        self._static_publishers.clear()
        if self.costmap is not None:
            self.costmap.destroy()
            self.costmap = None
        self.cameras.clear()
        self.segmenter = None
        self.settings = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # hand the model's GPU memory back to other processes
        except ImportError:
            pass

    def subscribe_inputs(self) -> None:
        if self.costmap is not None:
            self.costmap.listen_to_odometry(self)
        self._slots = LatestFrameSlots(list(self.cameras))
        for camera in self.cameras.values():
            settings = camera.settings
            qos = _qos(settings.reliability, settings.depth)
            message_type = CompressedImage if settings.compressed else Image
            self.listen(message_type, settings.image_topic, lambda msg, c=camera: self._on_image(c, msg), qos)
            if settings.camera_info_topic:
                self.listen_to_camera_info(camera.name, settings.camera_info_topic, qos)

    def start(self) -> None:
        self._stop_worker.clear()
        self._worker = threading.Thread(target=self._run_worker, name="inference", daemon=True)
        self._worker.start()
        self._active = True
        if self.costmap is not None:
            self.costmap.activate()

    def stop(self) -> None:
        """Let the batch in flight finish (the Segmenter stops between forward passes) and end the worker."""
        self._active = False
        if self.costmap is not None:
            self.costmap.deactivate()
        self._stop_worker.set()
        if self._slots is not None:
            self._slots.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _create_publishers(self, settings: NodeSettings, label_set: LabelSet) -> None:
        output_qos = _qos(settings.publish.reliability, settings.publish.depth)
        for camera_settings in settings.camera_settings:
            monitor = CameraHealthMonitor(settings.camera_health) if settings.camera_health.enabled else None
            camera = Camera(camera_settings, monitor)
            for kind in settings.publish.outputs:
                camera.publishers[kind] = self.create_lifecycle_publisher(
                    Image, camera_output_topic(camera.name, kind), output_qos
                )
            if monitor is not None:  # each frame's verdict, for nodes downstream that must be fail-safe too
                camera.health_publisher = self.create_lifecycle_publisher(
                    DiagnosticStatus, camera_output_topic(camera.name, "health"), output_qos
                )
            self.cameras[camera.name] = camera
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        labels_publisher = self.create_publisher(String, LABELS_TOPIC, latched)
        labels_publisher.publish(String(data=labels_json(label_set)))
        self._static_publishers = [labels_publisher, *self._label_info_publisher(label_set, latched)]
        self.start_diagnostics(settings.diagnostics.period, self._diagnostics)

    def _label_info_publisher(self, label_set: LabelSet, qos: QoSProfile) -> list:
        """vision_msgs/LabelInfo on ~/label_info where vision_msgs is installed (optional dependency)."""
        try:
            from vision_msgs.msg import LabelInfo, VisionClass
        except ImportError:
            return []
        publisher = self.create_publisher(LabelInfo, LABEL_INFO_TOPIC, qos)
        info = LabelInfo()
        info.class_map = [VisionClass(class_id=i, class_name=name) for i, name in enumerate(label_set.class_names)]
        publisher.publish(info)
        return [publisher]

    def _on_image(self, camera: Camera, message: Image | CompressedImage) -> None:
        camera.stats.on_received()
        if self._slots.put(PendingFrame(camera.name, message)):
            camera.stats.on_dropped()

    # --- inference worker --------------------------------------------------------------------

    def _run_worker(self) -> None:
        while not self._stop_worker.is_set():
            frames = self._slots.take(self.settings.max_batch, _WORKER_POLL_S)
            if not frames:
                continue
            try:
                self._process(frames)
            except Exception as error:  # an unforeseen message must not end the worker: the node would go deaf
                for frame in frames:
                    self.cameras[frame.camera].stats.on_error("internal")
                self.throttled.error(("internal",), f"dropped frames of {', '.join(f.camera for f in frames)}: {error!r}")

    def _process(self, frames: list[PendingFrame]) -> None:
        """One batch: decode what someone wants, segment it, publish each camera's outputs, then the costmap."""
        logger = self.get_logger()
        debug = logger.is_enabled_for(LoggingSeverity.DEBUG)  # log_level:=debug: each frame's stages
        start = time.perf_counter()
        jobs = [job for job in map(self._job, frames) if job is not None]
        if debug:
            logger.debug(f"took {len(frames)} frames, {len(jobs)} wanted: " + ", ".join(
                f"{job.camera.name} {job.frame.stamp_ns} {job.frame.pixels.shape[1]}x{job.frame.pixels.shape[0]}"
                for job in jobs) + f", decoded in {1000 * (time.perf_counter() - start):.1f} ms")
        if not jobs:
            return
        start = time.perf_counter()
        try:
            results = self.segmenter.segment(
                [job.frame.pixels for job in jobs],
                bgr=[job.frame.bgr for job in jobs],
                confidence=any(self._needs_confidence(job.wanted) for job in jobs),
            )
        except Cancelled:
            return  # stopping: the frames are neither published nor counted as failures
        except EngineBuilding as error:
            for job in jobs:
                job.camera.stats.on_error(ENGINE_BUILDING)
            self.throttled.warn((ENGINE_BUILDING,), str(error))
            return
        except Exception as error:  # e.g. CUDA out of memory: report, keep serving the next frames
            for job in jobs:
                job.camera.stats.on_error("inference_failed")
            self.throttled.error(("inference_failed",), f"inference failed: {error}")
            return
        inference_s = time.perf_counter() - start
        self.engine_stats.on_batch(inference_s, len(jobs))
        if debug:
            logger.debug(f"segmented {len(jobs)} frames in {1000 * inference_s:.1f} ms")
        into_costmap = []
        for job, result in zip(jobs, results):
            if not result.finite:  # NaN/inf logits: the class ids are garbage, never to be taken as free road
                job.camera.stats.on_error(NONFINITE)
                self.throttled.error(
                    (job.camera.name, NONFINITE),
                    f"{job.camera.name}: non-finite logits (NaN/inf): masks withheld, costmap not updated; "
                    "check the weights and model.precision",
                )
                continue
            if self._stop_worker.is_set():
                return  # shutting down: the context may already be gone
            if job.health is not None:  # the frame's network self-check joins what its pixels said
                job.health = job.camera.health = job.camera.monitor.judge_network(
                    job.health, result.uncertainty, self.segmenter.uncertainty_band)
            result, no_free = self._apply_health(job, result)
            self._publish(job, result)
            latency = latency_s(job.frame.stamp_ns, self.get_clock().now().nanoseconds)
            job.camera.stats.on_published(latency, inference_s)
            if debug:
                latency_text = "unstamped" if latency is None else f"{1000 * latency:.1f} ms after its stamp"
                logger.debug(f"{job.camera.name} {job.frame.stamp_ns}: published {', '.join(sorted(job.wanted))}, {latency_text}")
            if COSTMAP in job.wanted:
                into_costmap.append((job, result, no_free))
        if into_costmap:
            self._update_costmap(into_costmap)

    def _job(self, pending: PendingFrame) -> Job | None:
        """The frame decoded, with the outputs someone wants of it; None when nobody does or it cannot be read."""
        camera = self.cameras[pending.camera]
        wanted = self._wanted(camera)
        if not wanted:
            return None  # nobody listens: skip the inference too
        try:
            frame = self._decode(camera, pending.message)
        except MessageError as error:
            kind = "too_large" if isinstance(error, ImageTooLarge) else "bad_message"
            camera.stats.on_error(kind)
            self.throttled.warn((camera.name, kind, str(error)[:30]), f"{camera.name}: dropped a frame: {error}")
            return None
        if camera.monitor is not None:
            camera.health = camera.monitor.observe(frame.pixels, frame.stamp_ns, self.get_clock().now().nanoseconds)
        return Job(pending, camera, frame, wanted, camera.health)

    def _wanted(self, camera: Camera) -> set[str]:
        """The camera's outputs someone subscribes to, and the costmap when it feeds one someone reads."""
        wanted = camera.wanted_outputs()
        if self.costmap is not None and self.costmap.contributes(camera.name) and self.costmap.wanted():
            wanted.add(COSTMAP)
        return wanted

    def _needs_confidence(self, wanted: set[str]) -> bool:
        return "confidence" in wanted or (COSTMAP in wanted and self.settings.costmap.output.fusion.rule == "majority")

    def _decode(self, camera: Camera, message: Image | CompressedImage) -> Frame:
        frame = decode_frame(message, self.settings.max_image_pixels)
        info = self.camera_info.get(camera.name)
        if info is not None:
            expected = published_size(info)
            height, width = frame.pixels.shape[:2]
            if expected != (height, width):
                camera.stats.on_error("camera_info_mismatch")
                self.throttled.warn(
                    (camera.name, "camera_info_mismatch"),
                    f"{camera.name}: image is {width}x{height} but camera_info says "
                    f"{expected[1]}x{expected[0]}: the mask follows the image",
                )
        return frame

    def _apply_health(self, job: Job, result: Segmentation) -> tuple[Segmentation, np.ndarray | None]:
        """Publish the frame's health verdict; returns the result as it goes out (with
        ``camera_health.unknown_masks``, 255 where a camera judged DEGRADED or FAULT cannot see) and the pixels that
        may not vote free ground (blocked tiles, black or white), None if none."""
        health = job.health
        if health is None:
            return result, None
        if job.camera.health_publisher.get_subscription_count() > 0:
            # The frame's stamp too: a topic of verdicts is lined up with the masks and grids by it.
            job.camera.health_publisher.publish(self.diagnostic_status(
                f"camera {job.camera.name}", judged_health(health), {"frame_stamp_ns": job.frame.stamp_ns, **_health_values(health)}))
        no_free = health.no_free(result.train_ids.shape)
        if self.settings.camera_health.unknown_masks:
            if not health.free_allowed:
                result = replace(result, train_ids=np.full_like(result.train_ids, IGNORE_INDEX))
            elif no_free is not None and health.state != State.OK:  # suspect tiles of a healthy camera still go out
                result = replace(result, train_ids=np.where(no_free, np.uint8(IGNORE_INDEX), result.train_ids))
        return result, no_free

    def _publish(self, job: Job, result: Segmentation) -> None:
        header, publishers, wanted = job.header, job.camera.publishers, job.wanted
        if "mask" in wanted:
            publishers["mask"].publish(mono8_msg(header, result.train_ids))
        if "mask_color" in wanted:
            publishers["mask_color"].publish(rgb8_msg(header, self.segmenter.label_set.colorize(result.train_ids)))
        if "overlay" in wanted:
            rgb = np.ascontiguousarray(job.frame.rgb())
            overlay = self.segmenter.label_set.overlay(rgb, result.train_ids, self.settings.overlay_alpha)
            publishers["overlay"].publish(rgb8_msg(header, overlay))
        if "confidence" in wanted:
            publishers["confidence"].publish(mono8_msg(header, result.confidence))

    def _update_costmap(self, batch: list[tuple[Job, Segmentation, np.ndarray | None]]) -> None:
        """Project the batch's masks, straight from memory, and publish the fused grid once."""
        start = time.perf_counter()
        for job, result, no_free in batch:
            name = job.camera.name
            try:
                self.costmap.update(
                    name, result.train_ids, job.frame.stamp_ns, self.camera_info.get(name), result.confidence, job.frame.frame_id,
                    free=job.health is None or job.health.free_allowed, no_free=no_free,
                    forget_free=job.health is not None and job.health.judged_faulty,
                )
            except FrameRefused as error:
                kind = "costmap_stamp" if isinstance(error, StampRejected) else f"costmap_{error.kind}"
                job.camera.stats.on_error(kind)
                self.throttled.warn((name, kind, error.kind), f"{name}: not in the costmap: {error}")
            except Exception as error:  # a bad camera_info or mask must not cost the other cameras their grid
                job.camera.stats.on_error("costmap")
                self.throttled.error((name, "costmap"), f"{name}: costmap update failed: {error}")
        self.costmap.publish()
        self.engine_stats.on_costmap(time.perf_counter() - start)
        self.get_logger().debug(f"costmap: {len(batch)} masks folded in and the grid published in "
                                f"{1000 * (time.perf_counter() - start):.1f} ms")

    # --- diagnostics -------------------------------------------------------------------------

    def _diagnostics(self) -> list[DiagnosticStatus]:
        statuses = [self._engine_status(), *(self._camera_status(camera) for camera in self.cameras.values())]
        if self.costmap is not None and self.costmap.settings.odometry_topic:
            statuses.append(self.costmap.odometry_status(self.settings.diagnostics.limits, active=self._active))
        return statuses

    def _engine_status(self) -> DiagnosticStatus:
        state = "active" if self._active else "inactive"
        values = {
            "state": state,
            "model": self.segmenter.model_name,
            "weights": str(self.segmenter.weights or "random (allow_untrained)"),
            **self._device(),
            "max_batch": self.settings.max_batch,
            **engine_figures(self.engine_stats.snapshot()),
            "costmap": "enabled" if self.costmap is not None else "disabled",
        }
        engines = self.segmenter.backend.state() if isinstance(self.segmenter.backend, ExportedBackend) else {}
        values.update(engines)
        evicted = int(engines.get("engines_evicted", 0))
        health = engine_health(state, engines, evicted - self._evicted_reported)
        self._evicted_reported = evicted
        if health.level == Level.OK and self._active and self.costmap is not None and self.waiting_for_clock():
            health = Health(Level.WARN, "waiting for /clock (use_sim_time): masks flow, no costmap until it comes")
        return self.diagnostic_status("engine", health, values)

    def _camera_status(self, camera: Camera) -> DiagnosticStatus:
        snapshot, error_counts = camera.stats.snapshot(), camera.stats.error_counts()
        health = camera_health(
            snapshot, error_counts, self.settings.diagnostics.limits, active=self._active, wanted=bool(self._wanted(camera))
        )
        health = worse_of(health, judged_health(camera.health)) if self._active else health
        values = {"image_topic": camera.settings.image_topic, **camera_figures(snapshot, error_counts), **self._device()}
        if camera.health is not None:
            values.update(_health_values(camera.health))
        return self.diagnostic_status(f"camera {camera.name}", health, values)

    def _device(self) -> dict[str, str]:
        return self.segmenter.describe()


def _health_values(health: CameraHealth) -> dict[str, object]:
    """A verdict's kinds and figures as /diagnostics values."""
    return {**{f"health.{kind}": state.name for kind, state in health.kinds.items()},
            **{f"health.{name}": figure for name, figure in health.figures.items()}}


def main(args: list[str] | None = None) -> None:
    run_lifecycle_node(SegmentationNode, NODE_NAME, args)


if __name__ == "__main__":
    main()

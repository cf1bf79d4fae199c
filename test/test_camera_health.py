"""The camera health monitor on the synthetic world: clean drives stay OK, a frozen, dark or blinded
camera turns FAULT within a few frames and clears after the fault, a parked car is not frozen."""

from __future__ import annotations

import numpy as np
import pytest

from denseaspp_ros.serving.camera_health import CameraHealthMonitor, HealthSettings, State
from denseaspp_ros.synth.drive import DriveConfig, drive

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """A moving drive on a seed no training used: 30 frames at 10 Hz."""
    return [item.frame.rgb for item in drive(DriveConfig(frames=30, seed=818181, size=(128, 256)))]


def judge(monitor: CameraHealthMonitor, pictures: list[np.ndarray], start: int = 0) -> list:
    return [monitor.observe(picture, (start + index + 1) * SECOND // 10) for index, picture in enumerate(pictures)]


def test_a_clean_moving_drive_raises_no_alarm(frames):
    verdicts = judge(CameraHealthMonitor(), frames)
    assert [verdict.state for verdict in verdicts] == [State.OK] * len(frames), [v.describe() for v in verdicts]
    assert all(verdict.free_allowed for verdict in verdicts)


def test_a_frozen_stream_is_a_fault_by_its_third_repeat_and_clears_after_it(frames):
    monitor = CameraHealthMonitor()
    before = judge(monitor, frames[:5])
    frozen = judge(monitor, [frames[5]] * 6, start=5)
    after = judge(monitor, frames[11:25], start=11)
    assert all(v.state == State.OK for v in before)
    assert [v.kinds["frozen"] for v in frozen] == [State.OK, State.OK, State.FAULT, State.FAULT, State.FAULT, State.FAULT]
    assert not frozen[-1].free_allowed and frozen[-1].figures["repeated_frames"] == 5
    cleared = next(index for index, verdict in enumerate(after) if verdict.state == State.OK)
    assert cleared == HealthSettings().leave_frames - 1  # ten clean frames in a row


def test_a_parked_car_with_sensor_noise_is_not_frozen(frames):
    noise = np.random.default_rng(0)
    parked = [np.clip(frames[0] + noise.normal(0, 1.5, frames[0].shape), 0, 255).astype(np.uint8) for _ in range(20)]
    assert all(v.state == State.OK for v in judge(CameraHealthMonitor(), parked))


@pytest.mark.parametrize("fault", ["night", "glare", "lens_cap"])
def test_a_dark_or_blinded_camera_is_a_fault_within_three_frames(frames, fault):
    noise = np.random.default_rng(1)

    def faulty(picture: np.ndarray) -> np.ndarray:
        if fault == "night":  # low gain and sensor noise
            return np.clip(picture * 0.06 + noise.normal(0, 2, picture.shape), 0, 255).astype(np.uint8)
        if fault == "glare":
            return np.clip(picture.astype(np.int32) + 230, 0, 255).astype(np.uint8)
        return np.clip(noise.normal(3, 2, picture.shape), 0, 255).astype(np.uint8)

    monitor = CameraHealthMonitor()
    judge(monitor, frames[:5])
    verdicts = judge(monitor, [faulty(picture) for picture in frames[5:10]], start=5)
    assert verdicts[2].kinds["exposure"] == State.FAULT and not verdicts[2].free_allowed, [v.figures for v in verdicts]


def test_stamps_that_do_not_advance_are_counted_and_degrade(frames):
    monitor = CameraHealthMonitor()
    verdicts = [monitor.observe(picture, SECOND) for picture in frames[:4]]  # one stamp for all
    assert verdicts[-1].kinds["stamps"] == State.DEGRADED and verdicts[-1].figures["num_non_increasing_msg"] == 3
    assert verdicts[-1].free_allowed  # not a fault of the picture: the stamp checks of the costmap refuse what lies


def test_thresholds_out_of_order_are_refused():
    with pytest.raises(ValueError, match="degraded_share 0.9 is above fault_share 0.5"):
        HealthSettings(degraded_share=0.9, fault_share=0.5)


def test_one_frame_from_the_future_does_not_make_every_later_stamp_go_back(frames):
    monitor = CameraHealthMonitor()
    judge(monitor, frames[:3])
    monitor.observe(frames[3], 2**62)  # a clock gone wrong once
    later = judge(monitor, frames[4:20], start=4)
    assert later[-1].figures["num_non_increasing_msg"] == 1 and later[-1].state == State.OK
    assert later[-1].figures["frame_rate_msg"] == pytest.approx(10.0)  # measured again from the jump on


def test_the_stamp_figures_carry_greenwaves_names(frames):
    monitor = CameraHealthMonitor()
    verdicts = [monitor.observe(picture, (index + 1) * SECOND // 10, (index + 1) * SECOND // 10 + 30_000_000)
                for index, picture in enumerate(frames[:10])]
    figures = verdicts[-1].figures
    assert figures["frame_rate_msg"] == pytest.approx(10.0) and figures["current_delay_from_realtime_ms"] == 30.0
    assert figures["num_non_increasing_msg"] == 0

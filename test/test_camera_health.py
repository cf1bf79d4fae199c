"""The camera health monitor on the synthetic world: clean drives stay OK, a frozen, dark or blinded
camera turns FAULT within a few frames and clears after the fault, a parked car is not frozen."""

from __future__ import annotations

import numpy as np
import pytest

from denseaspp_ros.inference import Segmenter
from denseaspp_ros.inference.segmenter import Uncertainty
from denseaspp_ros.model import UncertaintyBand, build_model, uncertainty_band_of
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


def test_stamps_that_do_not_advance_are_counted_and_keep_the_frames_off_the_free_cells(frames):
    monitor = CameraHealthMonitor()
    verdicts = [monitor.observe(picture, SECOND) for picture in frames[:4]]  # one stamp for all: a stuck clock
    assert verdicts[-1].kinds["stamps"] == State.FAULT and verdicts[-1].figures["num_non_increasing_msg"] == 3
    # From the first stuck stamp on, before the hysteresis has its say: the pose at a stuck stamp is
    # not where the vehicle is, so that frame's free cells would be painted where it did not look.
    assert verdicts[0].free_allowed and not any(verdict.free_allowed for verdict in verdicts[1:])


def test_a_stamp_offset_that_jumps_is_a_fault_from_its_first_frame_and_a_steady_one_is_not(frames):
    monitor = CameraHealthMonitor()
    arrival = [(index + 1) * SECOND // 10 for index in range(len(frames))]
    steady = [monitor.observe(picture, at - 80_000_000, at) for picture, at in zip(frames[:10], arrival)]  # 80 ms late, always
    jumped = [monitor.observe(picture, at - 580_000_000, at) for picture, at in zip(frames[10:14], arrival[10:])]
    assert all(verdict.state == State.OK for verdict in steady)
    assert not jumped[0].free_allowed and jumped[1].kinds["stamps"] == State.FAULT
    assert jumped[0].figures["stamp_jump_ms"] == pytest.approx(500.0)  # stamps half a second older than they were


def mud(picture: np.ndarray, rows: slice, columns: slice, noise: np.random.Generator) -> np.ndarray:
    """A flat brown smudge over part of the frame, with the sensor's noise on it."""
    smeared = picture.copy()
    smeared[rows, columns] = (62, 48, 34)
    return np.clip(smeared + noise.normal(0, 2, picture.shape), 0, 255).astype(np.uint8)


def test_a_blocked_part_of_the_lens_stops_voting_free_at_once_and_is_degraded_when_it_stays(frames):
    noise = np.random.default_rng(2)
    settings = HealthSettings(sample_stride=4)  # tiles of 4x8 sampled pixels in these small frames, as 1024x2048 has at 8
    monitor = CameraHealthMonitor(settings)
    judge(monitor, frames[:5])
    rows, columns = slice(80, 128), slice(0, 96)  # the lower left: where the ground is
    verdicts = judge(monitor, [mud(picture, rows, columns, noise) for picture in frames[5:20]], start=5)
    no_free = verdicts[2].no_free((128, 256))
    assert no_free is not None and no_free[100, 40] and not no_free[100, 200] and not no_free[:57].any()
    assert verdicts[2].state == State.OK  # tiles still for two frames: off the free cells, no alarm yet
    assert verdicts[settings.blockage_frames].kinds["blockage"] == State.DEGRADED, [v.figures for v in verdicts]
    assert verdicts[settings.blockage_frames].free_allowed  # the rest of the view still votes
    after = judge(monitor, frames[20:30], start=20)
    assert after[0].no_free((128, 256)) is None  # the mud is gone: its tiles move again


def test_a_still_scene_blocks_nothing(frames):
    noise = np.random.default_rng(3)
    parked = [np.clip(frames[0] + noise.normal(0, 2, frames[0].shape), 0, 255).astype(np.uint8) for _ in range(20)]
    verdicts = judge(CameraHealthMonitor(), parked)
    assert all(verdict.no_free((128, 256)) is None and verdict.state == State.OK for verdict in verdicts)


def test_white_and_black_pixels_vote_no_free_ground_once_there_are_a_few(frames):
    flared = frames[6].copy()
    flared[60:110, 100:200] = 255
    monitor = CameraHealthMonitor()
    judge(monitor, frames[:6])
    verdict = monitor.observe(flared, 7 * SECOND // 10)
    no_free = verdict.no_free((128, 256))
    assert no_free[80, 150] and not no_free[80, 20] and verdict.free_allowed


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


def test_the_network_self_check_judges_entropy_against_the_weights_band(frames):
    band = UncertaintyBand((0.001, 0.004), (0.006, 0.017), 0.5, "test")
    monitor = CameraHealthMonitor()
    clean = monitor.judge_network(monitor.observe(frames[0], SECOND), Uncertainty(0.008, 0.02), band)
    assert clean.kinds["network"] == State.OK and clean.free_allowed  # 1.2x the band's top; the share alone never decides
    unsure = [monitor.judge_network(monitor.observe(picture, (index + 2) * SECOND), Uncertainty(0.03, 0.06), band)
              for index, picture in enumerate(frames[1:4])]
    assert not unsure[0].free_allowed and unsure[0].kinds["network"] == State.OK  # that frame is withheld at once
    assert unsure[1].kinds["network"] == State.FAULT and unsure[1].figures["network_band_ratio"] == pytest.approx(3.53, abs=0.01)
    assert monitor.observe(frames[5], 6 * SECOND).kinds["network"] == State.FAULT  # kept until judged again
    without_band = CameraHealthMonitor()
    verdict = without_band.judge_network(without_band.observe(frames[0], SECOND), Uncertainty(0.5, 0.9), None)
    assert verdict.kinds["network"] == State.OK and "network_band_ratio" not in verdict.figures


def test_the_demo_weights_carry_their_band_and_the_engine_reports_each_frames_uncertainty(frames):
    band = uncertainty_band_of("demo")
    assert band is not None and band.mean_entropy[0] < band.mean_entropy[1] < 0.05
    assert uncertainty_band_of("/no/such/weights.pth") is None
    segmenter = Segmenter(build_model("MobileNetDenseASPP", 19), input_size=(64, 128))
    figures = segmenter.segment([frames[0]])[0].uncertainty
    assert 0.0 <= figures.low_confidence_share <= 1.0 and 0.0 < figures.mean_entropy <= 1.0

"""LatestFrameSlots: the newest-frame policy that keeps the node's latency bounded (no ROS)."""

import threading
import time

import pytest

from denseaspp_ros.serving.scheduling import LatestFrameSlots, PendingFrame


def frame(camera: str, message: object = None) -> PendingFrame:
    return PendingFrame(camera, message)


def cameras_of(frames: list[PendingFrame]) -> list[str]:
    return [f.camera for f in frames]


def test_a_new_frame_replaces_an_unprocessed_one_and_counts_it_as_dropped():
    slots = LatestFrameSlots(["front", "rear"])
    assert slots.put(frame("front", 1)) is False
    assert slots.put(frame("front", 2)) is True
    assert slots.put(frame("front", 3)) is True
    taken = slots.take(4, 0.0)
    assert [f.message for f in taken] == [3]  # the newest, never a backlog


def test_a_taken_frame_is_not_dropped_by_the_next_one():
    slots = LatestFrameSlots(["front"])
    slots.put(frame("front", 1))
    assert [f.message for f in slots.take(1, 0.0)] == [1]
    assert slots.put(frame("front", 2)) is False


def test_take_returns_at_most_one_frame_per_camera():
    slots = LatestFrameSlots(["front", "rear", "left"])
    for message in range(3):
        slots.put(frame("front", message))
        slots.put(frame("rear", message))
    taken = slots.take(8, 0.0)
    assert sorted(cameras_of(taken)) == ["front", "rear"]
    assert all(f.message == 2 for f in taken)
    assert slots.take(8, 0.0) == []  # both slots are empty now


def test_take_respects_max_frames_and_leaves_the_rest_waiting():
    slots = LatestFrameSlots(["a", "b", "c"])
    for camera in "abc":
        slots.put(frame(camera))
    first = slots.take(2, 0.0)
    assert len(first) == 2
    second = slots.take(2, 0.0)
    assert len(second) == 1
    assert sorted(cameras_of(first + second)) == ["a", "b", "c"]


def test_round_robin_serves_every_camera_when_there_are_more_cameras_than_max_frames():
    cameras = ["a", "b", "c", "d", "e"]
    slots = LatestFrameSlots(cameras)
    served = {camera: 0 for camera in cameras}
    rounds = 50
    for _ in range(rounds):
        for camera in cameras:  # every camera always has a fresh frame waiting
            slots.put(frame(camera))
        for taken in slots.take(2, 0.0):
            served[taken.camera] += 1
    # 2 frames per round over 5 cameras: each camera gets its fair share of 2/5 of the rounds.
    assert sum(served.values()) == 2 * rounds
    assert max(served.values()) - min(served.values()) <= 1, served


def test_round_robin_with_max_frames_one_alternates_between_cameras():
    slots = LatestFrameSlots(["a", "b"])
    order = []
    for _ in range(6):
        slots.put(frame("a"))
        slots.put(frame("b"))
        order += cameras_of(slots.take(1, 0.0))
    assert order == ["a", "b"] * 3


def test_take_times_out_with_an_empty_list():
    slots = LatestFrameSlots(["front"])
    start = time.monotonic()
    assert slots.take(4, 0.1) == []
    assert 0.08 <= time.monotonic() - start < 2.0


def test_take_wakes_up_when_a_frame_arrives_from_another_thread():
    slots = LatestFrameSlots(["front"])
    timer = threading.Timer(0.05, lambda: slots.put(frame("front", "late")))
    timer.start()
    start = time.monotonic()
    taken = slots.take(4, 10.0)
    timer.join()
    assert [f.message for f in taken] == ["late"]
    assert time.monotonic() - start < 5.0


def test_close_wakes_a_take_blocked_in_another_thread():
    slots = LatestFrameSlots(["front"])
    result: list = []
    worker = threading.Thread(target=lambda: result.append(slots.take(4, 30.0)))
    worker.start()
    time.sleep(0.1)
    assert worker.is_alive()  # really blocked
    start = time.monotonic()
    slots.close()
    worker.join(5.0)
    assert not worker.is_alive()
    assert time.monotonic() - start < 5.0
    assert result == [[]]


def test_take_after_close_returns_immediately():
    slots = LatestFrameSlots(["front"])
    slots.close()
    start = time.monotonic()
    assert slots.take(4, 30.0) == []
    assert time.monotonic() - start < 1.0


def test_unknown_camera_is_rejected():
    slots = LatestFrameSlots(["front"])
    with pytest.raises(KeyError):
        slots.put(frame("nope"))


def test_frame_records_its_arrival_time():
    before = time.monotonic()
    f = frame("front")
    assert before <= f.received <= time.monotonic()


def test_concurrent_puts_and_takes_lose_no_frame_unaccounted():
    """Every frame put is either taken or counted as dropped (at the end, or left in its slot)."""
    cameras = ["a", "b", "c"]
    slots = LatestFrameSlots(cameras)
    per_camera = 2000
    taken_count = 0
    dropped = 0
    done = threading.Event()

    def consume() -> None:
        nonlocal taken_count
        while not done.is_set():
            taken_count += len(slots.take(2, 0.01))

    def produce(camera: str) -> None:
        nonlocal dropped
        replaced = sum(slots.put(frame(camera, i)) for i in range(per_camera))
        with lock:
            dropped += replaced

    lock = threading.Lock()
    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(c,)) for c in cameras]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    done.set()
    consumer.join()
    left = len(slots.take(8, 0.0))
    assert taken_count + left + dropped == per_camera * len(cameras)

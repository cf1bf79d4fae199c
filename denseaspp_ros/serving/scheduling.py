"""Newest-frame slots: the scheduling policy that keeps latency bounded (no ROS imports).

Each camera has one slot holding its newest unprocessed frame. A new frame replaces an unclaimed
one (which the caller counts as dropped) instead of queueing behind it, so when cameras publish faster
than the model runs the node processes the freshest image, never a backlog. The inference worker
takes the newest frame of every camera that has one and runs them as one batch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PendingFrame:
    """A camera's message waiting in its slot for the worker."""

    camera: str
    message: Any  # the ROS message as received: conversion happens on the worker, only for frames it runs
    received: float = field(default_factory=time.monotonic)


class LatestFrameSlots:
    """One slot per camera; ``put`` never blocks, ``take`` blocks until a frame is waiting."""

    def __init__(self, cameras: list[str]) -> None:
        self._slots: dict[str, PendingFrame | None] = {camera: None for camera in cameras}
        self._ready = threading.Condition()
        self._closed = False
        # Round-robin start, so with more cameras than max_batch none is starved.
        self._next = 0

    def put(self, frame: PendingFrame) -> bool:
        """Store ``frame`` as its camera's newest; returns True when it replaced (dropped) an unprocessed one."""
        with self._ready:
            replaced = self._slots[frame.camera] is not None
            self._slots[frame.camera] = frame
            self._ready.notify()
        return replaced

    def take(self, max_frames: int, timeout: float) -> list[PendingFrame]:
        """Up to ``max_frames`` newest frames, one per camera; empty after ``timeout`` s or on close."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._closed or any(self._slots.values()), timeout):
                return []
            cameras = list(self._slots)
            order = cameras[self._next :] + cameras[: self._next]
            taken: list[PendingFrame] = []
            for camera in order:
                frame = self._slots[camera]
                if frame is not None and len(taken) < max_frames:
                    taken.append(frame)
                    self._slots[camera] = None
            if taken:
                self._next = (cameras.index(taken[-1].camera) + 1) % len(cameras)
            return taken

    def close(self) -> None:
        """Wake a waiting ``take`` so the worker can exit."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

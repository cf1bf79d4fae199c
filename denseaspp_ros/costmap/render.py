"""The class grid as a picture: bird's-eye view with the vehicle's x axis pointing up."""

from __future__ import annotations

import numpy as np

from .fusion import Snapshot

UNKNOWN_COLOR = (40, 40, 40)


def bird_eye_image(snapshot: Snapshot) -> np.ndarray:
    """(width, height, 3) RGB: forward (x) is up and left (y) is left, as seen from above.

    Grid rows run along y and columns along x; the image transposes and mirrors them so that a
    person looks at it as at a map drawn ahead of the vehicle.
    """
    palette = np.zeros((256, 3), np.uint8)
    palette[:] = UNKNOWN_COLOR
    palette[: snapshot.table.label_set.num_classes] = snapshot.table.label_set.colors
    classes = snapshot.classes  # (height = y, width = x)
    return np.ascontiguousarray(palette[classes.T[::-1, ::-1]])

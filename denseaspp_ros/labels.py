"""Class sets, colour palettes and id conversions for semantic segmentation.

The network predicts *trainIds* (0..N-1, 255 = ignore); datasets and
evaluation tools such as cityscapesScripts expect *labelIds*; humans want
colours.  A :class:`LabelSet` bundles all three so every consumer agrees.
Everything works on uint8 maps through 256-entry lookup tables, so any
conversion is a single numpy indexing operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .errors import LabelSetError
from .files import FileRefused, read_bounded

IGNORE_INDEX = 255
"""trainId of pixels that belong to no class (void, unlabeled, out of range)."""

_UNLABELED_LABEL_ID = 0  # Cityscapes 'unlabeled'; what ignore pixels become as labelIds.
_LUT_SIZE = 256  # every uint8 value gets an entry, so lookups never go out of bounds.


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _as_byte_array(values: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Validate integer values in 0..255 and return them as a read-only uint8 copy."""
    array = np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {array.dtype}")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"{what} must lie in 0..255, got {array.min()}..{array.max()}")
    return _read_only(array.astype(np.uint8))


def _require_uint8(array: np.ndarray, what: str) -> None:
    # Silent casts would hide bugs such as int64 logits indices or float images.
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        got = getattr(array, "dtype", type(array))
        raise TypeError(f"{what} must be a uint8 numpy array, got {got}")


@dataclass(frozen=True, eq=False)
class LabelSet:
    """The classes a model predicts, indexed by trainId.

    ``label_ids`` maps trainId -> dataset labelId (None for custom sets that
    have no separate label ids); ``categories`` gives each class's coarse
    group (None if unknown).
    """

    name: str
    class_names: tuple[str, ...]
    colors: np.ndarray
    label_ids: np.ndarray | None = None
    categories: tuple[str, ...] | None = None
    _color_lut: np.ndarray = field(init=False, repr=False)
    _label_id_lut: np.ndarray | None = field(init=False, repr=False)
    _train_id_lut: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"label set name must be a non-empty string, got {self.name!r}")
        names = tuple(self.class_names)
        count = len(names)
        if not 1 <= count <= IGNORE_INDEX:
            raise ValueError(
                f"label set {self.name!r} needs 1..{IGNORE_INDEX} classes"
                f" ({IGNORE_INDEX} is the ignore index), got {count}"
            )
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"label set {self.name!r}: class names must be non-empty strings")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"label set {self.name!r}: duplicate class names {duplicates}")
        object.__setattr__(self, "class_names", names)

        colors = _as_byte_array(self.colors, (count, 3), f"label set {self.name!r}: colors")
        object.__setattr__(self, "colors", colors)
        color_lut = np.zeros((_LUT_SIZE, 3), np.uint8)  # ignore and unknown ids stay black
        color_lut[:count] = colors
        object.__setattr__(self, "_color_lut", _read_only(color_lut))

        label_id_lut = train_id_lut = None
        if self.label_ids is not None:
            what = f"label set {self.name!r}: label_ids"
            label_ids = _as_byte_array(self.label_ids, (count,), what)
            if len(np.unique(label_ids)) != count:
                raise ValueError(f"{what} must be unique, got {label_ids.tolist()}")
            object.__setattr__(self, "label_ids", label_ids)
            label_id_lut = np.full(_LUT_SIZE, _UNLABELED_LABEL_ID, np.uint8)
            label_id_lut[:count] = label_ids
            train_id_lut = np.full(_LUT_SIZE, IGNORE_INDEX, np.uint8)
            train_id_lut[label_ids] = np.arange(count, dtype=np.uint8)
            label_id_lut, train_id_lut = _read_only(label_id_lut), _read_only(train_id_lut)
        object.__setattr__(self, "_label_id_lut", label_id_lut)
        object.__setattr__(self, "_train_id_lut", train_id_lut)

        if self.categories is not None:
            categories = tuple(self.categories)
            if len(categories) != count:
                raise ValueError(
                    f"label set {self.name!r}: {len(categories)} categories for {count} classes"
                )
            if not all(isinstance(c, str) and c for c in categories):
                raise ValueError(f"label set {self.name!r}: categories must be non-empty strings")
            object.__setattr__(self, "categories", categories)

    @property
    def num_classes(self) -> int:
        """Number of trainIds the model outputs (its logit channels)."""
        return len(self.class_names)

    def colorize(self, train_ids: np.ndarray) -> np.ndarray:
        """Map a ...xHxW uint8 trainId map to ...xHxWx3 RGB; ignore/unknown ids become black."""
        _require_uint8(train_ids, "train_ids")
        return np.take(self._color_lut, train_ids, axis=0)

    def to_label_ids(self, train_ids: np.ndarray) -> np.ndarray:
        """Convert trainIds to labelIds for evaluation tools; ignore/unknown -> 0 ('unlabeled')."""
        _require_uint8(train_ids, "train_ids")
        if self._label_id_lut is None:
            raise ValueError(f"label set {self.name!r} has no label ids")
        return np.take(self._label_id_lut, train_ids)

    def to_train_ids(self, label_ids: np.ndarray) -> np.ndarray:
        """Convert dataset labelIds (e.g. ground truth) to trainIds; unused labelIds -> 255."""
        _require_uint8(label_ids, "label_ids")
        if self._train_id_lut is None:
            raise ValueError(f"label set {self.name!r} has no label ids")
        return np.take(self._train_id_lut, label_ids)

    def to_json_list(self) -> list[dict[str, Any]]:
        """Describe the classes as JSON-ready dicts so subscribers can decode label images."""
        entries = []
        for train_id, (name, color) in enumerate(zip(self.class_names, self.colors.tolist())):
            entry: dict[str, Any] = {"id": train_id, "name": name, "color": color}
            if self.label_ids is not None:
                entry["label_id"] = int(self.label_ids[train_id])
            if self.categories is not None:
                entry["category"] = self.categories[train_id]
            entries.append(entry)
        return entries

    def overlay(
        self, image_rgb: np.ndarray, train_ids: np.ndarray, alpha: float = 0.5
    ) -> np.ndarray:
        """Blend class colours over an HxWx3 uint8 image; ignore/unknown pixels keep the image.

        Uses fixed-point uint16 arithmetic (alpha quantised to 1/256) to stay fast.
        """
        _require_uint8(image_rgb, "image_rgb")
        _require_uint8(train_ids, "train_ids")
        if image_rgb.ndim != 3 or image_rgb.shape != (*train_ids.shape, 3):
            raise ValueError(
                "need an HxWx3 image and an HxW trainId map,"
                f" got {image_rgb.shape} and {train_ids.shape}"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        weight = round(alpha * 256)
        # Per-id LUTs: ignore ids keep the full image weight 256 and add only black.
        image_weight = np.full(_LUT_SIZE, 256, np.uint16)
        image_weight[: self.num_classes] = 256 - weight
        color_term = self._color_lut.astype(np.uint16) * weight + 128  # +128 rounds the >> 8
        pixel_weight = np.take(image_weight, train_ids)[..., None]
        blended = np.multiply(image_rgb, pixel_weight, dtype=np.uint16)
        blended += np.take(color_term, train_ids, axis=0)
        blended >>= 8
        return blended.astype(np.uint8)


CITYSCAPES = LabelSet(
    name="cityscapes",
    class_names=(
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
        "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
        "truck", "bus", "train", "motorcycle", "bicycle",
    ),
    colors=np.array(
        [
            (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
            (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
            (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
            (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
        ]
    ),
    label_ids=np.array([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]),
    categories=(
        "flat", "flat", "construction", "construction", "construction", "object", "object",
        "object", "nature", "nature", "sky", "human", "human", "vehicle",
        "vehicle", "vehicle", "vehicle", "vehicle", "vehicle",
    ),
)
"""The 19 Cityscapes training classes with the official palette and labelIds."""

_CLASS_KEYS = {"name", "color", "label_id", "category"}


def _is_byte(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _parse_class(entry: Any, index: int) -> dict[str, Any]:
    """Check one YAML class entry, so errors point at the offending class."""
    where = f"classes[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a mapping with 'name' and 'color', got {entry!r}")
    unknown = sorted(set(entry) - _CLASS_KEYS, key=str)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown} (allowed: {sorted(_CLASS_KEYS)})")
    for key in ("name", "color"):
        if key not in entry:
            raise ValueError(f"{where} is missing '{key}'")
    if not isinstance(entry["name"], str) or not entry["name"]:
        raise ValueError(f"{where}: name must be a non-empty string, got {entry['name']!r}")
    color = entry["color"]
    where = f"{where} ({entry['name']})"
    if not (isinstance(color, list) and len(color) == 3 and all(_is_byte(c) for c in color)):
        raise ValueError(f"{where}: color must be [r, g, b] integers in 0..255, got {color!r}")
    if "label_id" in entry and not _is_byte(entry["label_id"]):
        label_id = entry["label_id"]
        raise ValueError(f"{where}: label_id must be an integer in 0..255, got {label_id!r}")
    if "category" in entry and (not isinstance(entry["category"], str) or not entry["category"]):
        category = entry["category"]
        raise ValueError(f"{where}: category must be a non-empty string, got {category!r}")
    return entry


def _optional_column(classes: list[dict[str, Any]], key: str) -> list[Any] | None:
    """Return a per-class value list, or None; a key on only some classes is ambiguous."""
    present = [key in c for c in classes]
    if not any(present):
        return None
    if not all(present):
        missing = [c["name"] for c in classes if key not in c]
        raise ValueError(f"'{key}' must be given for all classes or none; missing for {missing}")
    return [c[key] for c in classes]


def load_label_set(path: str | Path) -> LabelSet:
    """Load a custom class set from YAML.

    Expects ``name`` and a ``classes`` list of {name, color, [label_id], [category]},
    with label_id and category given on all classes or none.
    """
    path = Path(path)
    try:
        text = read_bounded(path, "label set file").decode("utf-8")
    except FileRefused as error:
        raise LabelSetError(str(error)) from None
    except UnicodeDecodeError as error:
        raise LabelSetError(f"label set file {path}: cannot read ({error})") from error
    try:
        document = yaml.safe_load(text)
        if not isinstance(document, dict):
            raise ValueError("top level must be a mapping with 'name' and 'classes'")
        for key in ("name", "classes"):
            if key not in document:
                raise ValueError(f"missing top-level key '{key}'")
        unknown = sorted(set(document) - {"name", "classes"}, key=str)
        if unknown:
            raise ValueError(f"unknown top-level keys {unknown}")
        if not isinstance(document["classes"], list) or not document["classes"]:
            raise ValueError("'classes' must be a non-empty list")
        classes = [_parse_class(entry, i) for i, entry in enumerate(document["classes"])]
        label_ids = _optional_column(classes, "label_id")
        categories = _optional_column(classes, "category")
        return LabelSet(
            name=document["name"],
            class_names=tuple(c["name"] for c in classes),
            colors=np.array([c["color"] for c in classes]),
            label_ids=None if label_ids is None else np.array(label_ids),
            categories=None if categories is None else tuple(categories),
        )
    except yaml.YAMLError as error:
        raise LabelSetError(f"label set file {path}: invalid YAML: {error}") from error
    except ValueError as error:
        raise LabelSetError(f"label set file {path}: {error}") from error


def get_label_set(spec: str) -> LabelSet:
    """Resolve a parameter value: 'cityscapes' (any case) or a path to a label set YAML file."""
    if spec.strip().lower() == "cityscapes":
        return CITYSCAPES
    return load_label_set(spec)

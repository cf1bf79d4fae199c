"""From classes to costs: the class -> cost table (costmap.yaml) and the vote keys a frame uses.

Every class gets a *key*, a rank in 1..N ordered by (obstacle, cost): the cell value of a frame is
the largest key voted into the cell, so an obstacle's ground contact always beats the road seen
around or beyond it, and among ground classes the highest cost wins. Key 0 means "no vote". Two
lookup tables map a key back to its cost (int8, -1 for no vote) and class (255 for no vote), so
the whole per-frame path stays in uint8 lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import DenseASPPError
from ..files import FileRefused, read_bounded
from ..labels import IGNORE_INDEX, LabelSet

LETHAL = 100
UNKNOWN = -1
NO_VOTE = 0
_DEFAULT_TABLES = {"cityscapes": "cityscapes_costs.yaml"}


class CostTableError(DenseASPPError, ValueError):
    """A costmap.yaml that does not fit the label set: unknown or missing classes, bad costs."""


@dataclass(frozen=True)
class ClassCost:
    cost: int | None  # None: ignored, never marks the grid
    obstacle: bool


@dataclass(frozen=True, eq=False)
class CostTable:
    """Per-class costs of a label set, and the uint8 lookup tables the per-frame path uses."""

    label_set: LabelSet
    classes: tuple[ClassCost, ...]  # indexed by trainId
    ground_key: np.ndarray = field(init=False, repr=False)  # trainId -> key of a ground vote, 0 if none
    contact_key: np.ndarray = field(init=False, repr=False)  # trainId -> key of an obstacle contact, 0 if none
    key_cost: np.ndarray = field(init=False, repr=False)  # key -> cost (int8), -1 for 0
    key_class: np.ndarray = field(init=False, repr=False)  # key -> trainId, 255 for 0
    key_is_contact: np.ndarray = field(init=False, repr=False)  # key -> is an obstacle's key (bool)
    class_cost: np.ndarray = field(init=False, repr=False)  # trainId -> cost (int16), -1 ignored or unknown (255)
    num_keys: int = field(init=False)  # keys in use, 0 (no vote) included: a key histogram's width

    def __post_init__(self) -> None:
        if len(self.classes) != self.label_set.num_classes:
            raise CostTableError(f"{len(self.classes)} class costs for {self.label_set.num_classes} classes")
        ranked = sorted(
            (i for i, c in enumerate(self.classes) if c.cost is not None),
            key=lambda i: (self.classes[i].obstacle, self.classes[i].cost, i),
        )
        ground_key = np.zeros(256, np.uint8)  # ignore index 255 and unknown ids: no vote
        contact_key = np.zeros(256, np.uint8)
        key_cost = np.full(256, UNKNOWN, np.int8)
        key_class = np.full(256, IGNORE_INDEX, np.uint8)
        key_is_contact = np.zeros(256, bool)
        class_cost = np.full(256, UNKNOWN, np.int16)  # what a ground-truth class grid costs, cell by cell
        object.__setattr__(self, "num_keys", len(ranked) + 1)
        for rank, train_id in enumerate(ranked, start=1):
            entry = self.classes[train_id]
            (contact_key if entry.obstacle else ground_key)[train_id] = rank
            key_cost[rank] = entry.cost
            key_class[rank] = train_id
            key_is_contact[rank] = entry.obstacle
            class_cost[train_id] = entry.cost
        for name, table in (
            ("ground_key", ground_key),
            ("contact_key", contact_key),
            ("key_cost", key_cost),
            ("key_class", key_class),
            ("key_is_contact", key_is_contact),
            ("class_cost", class_cost),
        ):
            table.setflags(write=False)
            object.__setattr__(self, name, table)

    def cost_of(self, class_name: str) -> int | None:
        return self.classes[self.label_set.class_names.index(class_name)].cost


def default_cost_table_path(label_set: LabelSet) -> Path:
    """The packaged table of a built-in label set (config/costmap.yaml is the Cityscapes one)."""
    name = _DEFAULT_TABLES.get(label_set.name)
    if name is None:
        raise CostTableError(
            f"label set {label_set.name!r} has no built-in cost table: write one naming each of its classes "
            f"({', '.join(label_set.class_names)}) and set costmap.classes_file"
        )
    return Path(str(resources.files(__package__).joinpath(name)))


def load_cost_table(path: str | Path | None, label_set: LabelSet) -> CostTable:
    """Read a costmap.yaml for ``label_set``; ``None`` or "" takes the built-in table."""
    path = Path(path) if path else default_cost_table_path(label_set)
    try:
        document = yaml.safe_load(read_bounded(path, "cost table").decode("utf-8"))
    except FileRefused as error:
        raise CostTableError(str(error)) from None
    except UnicodeDecodeError as error:
        raise CostTableError(f"cost table {path} is not UTF-8 text ({error})") from None
    except yaml.YAMLError as error:
        raise CostTableError(f"cost table {path} is not valid YAML: {error}") from None
    return parse_cost_table(document, label_set, str(path))


def parse_cost_table(document: Any, label_set: LabelSet, source: str = "cost table") -> CostTable:
    if not isinstance(document, dict) or not isinstance(document.get("classes"), dict):
        raise CostTableError(f"{source}: expected a mapping with a 'classes' mapping of class name -> cost")
    declared_set = document.get("label_set")
    if declared_set is not None and declared_set != label_set.name:
        raise CostTableError(f"{source} is for label set {declared_set!r}, but the model predicts {label_set.name!r}")
    entries: dict[str, Any] = document["classes"]
    names = label_set.class_names
    unknown = [name for name in entries if name not in names]
    if unknown:
        raise CostTableError(f"{source}: unknown class name(s) {unknown}; label set {label_set.name!r} has {list(names)}")
    missing = [name for name in names if name not in entries]
    if missing:
        raise CostTableError(f"{source}: no cost for class(es) {missing}: give each a cost 0..100 or ignore")
    return CostTable(label_set, tuple(_class_cost(name, entries[name], source) for name in names))


def _class_cost(name: str, entry: Any, source: str) -> ClassCost:
    what = f"{source}: class {name!r}"
    if isinstance(entry, dict):
        unexpected = set(entry) - {"cost", "obstacle"}
        if unexpected:
            raise CostTableError(f"{what}: unexpected key(s) {sorted(unexpected)}; use cost and obstacle")
        cost = _cost(entry.get("cost"), what)
        obstacle = entry.get("obstacle", cost == LETHAL)
        if not isinstance(obstacle, bool):
            raise CostTableError(f"{what}: obstacle must be true or false, got {obstacle!r}")
        if cost is None and obstacle:
            raise CostTableError(f"{what}: an ignored class cannot be an obstacle")
        return ClassCost(cost, obstacle)
    cost = _cost(entry, what)
    return ClassCost(cost, cost == LETHAL)


def _cost(value: Any, what: str) -> int | None:
    if value == "ignore":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LETHAL:
        raise CostTableError(f"{what}: cost must be an integer 0..{LETHAL} or ignore, got {value!r}")
    return value

"""Tests for denseaspp_ros.labels: Cityscapes tables, conversions, palettes and YAML sets."""

import json
from pathlib import Path

import numpy as np
import pytest

from denseaspp_ros.labels import (
    CITYSCAPES,
    IGNORE_INDEX,
    LabelSet,
    LabelSetError,
    get_label_set,
    load_label_set,
)

# labelId -> trainId for Cityscapes labelIds 0..33, from cityscapesScripts' helpers/labels.py.
CITYSCAPES_TRAIN_ID_OF_LABEL_ID = {
    0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255,
    10: 255, 11: 2, 12: 3, 13: 4, 14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6,
    20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 29: 255,
    30: 255, 31: 16, 32: 17, 33: 18,
}

# trainId order: (name, RGB, category), official cityscapesScripts values.
CITYSCAPES_OFFICIAL = [
    ("road", (128, 64, 128), "flat"),
    ("sidewalk", (244, 35, 232), "flat"),
    ("building", (70, 70, 70), "construction"),
    ("wall", (102, 102, 156), "construction"),
    ("fence", (190, 153, 153), "construction"),
    ("pole", (153, 153, 153), "object"),
    ("traffic light", (250, 170, 30), "object"),
    ("traffic sign", (220, 220, 0), "object"),
    ("vegetation", (107, 142, 35), "nature"),
    ("terrain", (152, 251, 152), "nature"),
    ("sky", (70, 130, 180), "sky"),
    ("person", (220, 20, 60), "human"),
    ("rider", (255, 0, 0), "human"),
    ("car", (0, 0, 142), "vehicle"),
    ("truck", (0, 0, 70), "vehicle"),
    ("bus", (0, 60, 100), "vehicle"),
    ("train", (0, 80, 100), "vehicle"),
    ("motorcycle", (0, 0, 230), "vehicle"),
    ("bicycle", (119, 11, 32), "vehicle"),
]


def _all_bytes() -> np.ndarray:
    return np.arange(256, dtype=np.uint8)


# --- Cityscapes tables --------------------------------------------------------


def test_cityscapes_classes_palette_and_categories_are_official():
    assert CITYSCAPES.num_classes == 19
    assert CITYSCAPES.class_names == tuple(name for name, _, _ in CITYSCAPES_OFFICIAL)
    assert CITYSCAPES.colors.dtype == np.uint8
    assert CITYSCAPES.colors.tolist() == [list(rgb) for _, rgb, _ in CITYSCAPES_OFFICIAL]
    assert CITYSCAPES.categories == tuple(cat for _, _, cat in CITYSCAPES_OFFICIAL)


def test_every_cityscapes_label_id_maps_to_its_train_id():
    label_ids = np.array(sorted(CITYSCAPES_TRAIN_ID_OF_LABEL_ID), dtype=np.uint8)
    expected = [CITYSCAPES_TRAIN_ID_OF_LABEL_ID[i] for i in label_ids.tolist()]
    assert CITYSCAPES.to_train_ids(label_ids).tolist() == expected


def test_label_ids_outside_cityscapes_range_are_ignored():
    train_ids = CITYSCAPES.to_train_ids(_all_bytes())
    assert (train_ids[34:] == IGNORE_INDEX).all()


def test_matches_cityscapesscripts_when_installed():
    cs_labels = pytest.importorskip(
        "cityscapesscripts.helpers.labels",
        reason="cityscapesscripts is not installed (pip install cityscapesscripts; no rosdep key)",
    )
    for label in cs_labels.labels:
        if label.id < 0:  # 'license plate' has id -1; it never occurs in uint8 label maps
            continue
        expected = IGNORE_INDEX if label.trainId in (-1, 255) else label.trainId
        assert CITYSCAPES.to_train_ids(np.array([label.id], np.uint8))[0] == expected, label.name
    training = [lbl for lbl in cs_labels.labels if lbl.trainId not in (-1, 255)]
    training.sort(key=lambda lbl: lbl.trainId)
    assert [lbl.trainId for lbl in training] == list(range(19))
    assert CITYSCAPES.class_names == tuple(lbl.name for lbl in training)
    assert CITYSCAPES.label_ids.tolist() == [lbl.id for lbl in training]
    assert CITYSCAPES.colors.tolist() == [list(lbl.color) for lbl in training]
    assert CITYSCAPES.categories == tuple(lbl.category for lbl in training)


def test_train_id_label_id_round_trip_for_all_classes():
    train_ids = np.arange(19, dtype=np.uint8)
    label_ids = CITYSCAPES.to_label_ids(train_ids)
    assert label_ids.dtype == np.uint8
    assert label_ids.tolist() == [
        7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33
    ]
    assert CITYSCAPES.to_train_ids(label_ids).tolist() == train_ids.tolist()


def test_ignore_and_out_of_range_train_ids_become_unlabeled():
    train_ids = np.array([[0, 255], [19, 200]], dtype=np.uint8)
    assert CITYSCAPES.to_label_ids(train_ids).tolist() == [[7, 0], [0, 0]]
    # ...and back: 'unlabeled' is not a training class, so it returns as ignore.
    round_trip = CITYSCAPES.to_train_ids(CITYSCAPES.to_label_ids(train_ids))
    assert round_trip.tolist() == [[0, 255], [255, 255]]


def test_conversions_keep_shape_and_reject_non_uint8():
    maps = np.random.default_rng(0).integers(0, 19, (2, 4, 5), dtype=np.uint8)
    assert CITYSCAPES.to_label_ids(maps).shape == (2, 4, 5)
    with pytest.raises(TypeError, match="uint8"):
        CITYSCAPES.to_label_ids(maps.astype(np.int64))
    with pytest.raises(TypeError, match="uint8"):
        CITYSCAPES.to_train_ids(maps.astype(np.int32))
    with pytest.raises(TypeError, match="uint8"):
        CITYSCAPES.to_train_ids([[7, 8]])


def test_cityscapes_arrays_are_read_only():
    with pytest.raises(ValueError):
        CITYSCAPES.colors[0, 0] = 1
    with pytest.raises(ValueError):
        CITYSCAPES.label_ids[0] = 1


# --- colorize / overlay -------------------------------------------------------


def test_colorize_maps_every_train_id_and_blackens_ignore():
    rgb = CITYSCAPES.colorize(_all_bytes())
    assert rgb.shape == (256, 3) and rgb.dtype == np.uint8
    assert rgb[:19].tolist() == [list(c) for _, c, _ in CITYSCAPES_OFFICIAL]
    assert (rgb[19:] == 0).all()


def test_colorize_hw_and_nhw():
    train_ids = np.array([[0, 13], [255, 10]], dtype=np.uint8)
    expected = [[[128, 64, 128], [0, 0, 142]], [[0, 0, 0], [70, 130, 180]]]
    assert CITYSCAPES.colorize(train_ids).tolist() == expected
    batch = np.stack([train_ids, np.full((2, 2), 18, np.uint8)])
    rgb = CITYSCAPES.colorize(batch)
    assert rgb.shape == (2, 2, 2, 3)
    assert rgb[0].tolist() == expected
    assert (rgb[1] == (119, 11, 32)).all()


def test_colorize_rejects_non_uint8():
    with pytest.raises(TypeError, match="uint8"):
        CITYSCAPES.colorize(np.zeros((2, 2), np.int64))


def test_overlay_blends_classes_and_keeps_ignore_pixels():
    image = np.array([[[0, 0, 0], [200, 100, 50]], [[255, 255, 255], [10, 20, 30]]], np.uint8)
    train_ids = np.array([[0, 255], [13, 40]], dtype=np.uint8)
    out = CITYSCAPES.overlay(image, train_ids, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out[0, 0].tolist() == [64, 32, 64]  # half of road (128, 64, 128) over black
    assert out[1, 0].tolist() == [128, 128, 199]  # (255 + car (0, 0, 142)) / 2, rounded
    assert out[0, 1].tolist() == [200, 100, 50]  # ignore keeps the image
    assert out[1, 1].tolist() == [10, 20, 30]  # unknown id keeps the image


def test_overlay_alpha_extremes_and_float_reference():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    train_ids = rng.integers(0, 19, (16, 24), dtype=np.uint8)
    train_ids[0] = IGNORE_INDEX
    assert np.array_equal(CITYSCAPES.overlay(image, train_ids, alpha=0.0), image)
    full = CITYSCAPES.overlay(image, train_ids, alpha=1.0)
    assert np.array_equal(full[1:], CITYSCAPES.colorize(train_ids)[1:])
    assert np.array_equal(full[0], image[0])
    alpha = 0.3
    reference = image * (1 - alpha) + CITYSCAPES.colorize(train_ids) * alpha
    reference[0] = image[0]
    diff = np.abs(CITYSCAPES.overlay(image, train_ids, alpha).astype(float) - reference)
    assert diff.max() <= 1.0


def test_overlay_rejects_bad_input():
    image = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="HxWx3"):
        CITYSCAPES.overlay(image, np.zeros((4, 6), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        CITYSCAPES.overlay(image, np.zeros((4, 5), np.uint8), alpha=1.5)
    with pytest.raises(TypeError, match="uint8"):
        CITYSCAPES.overlay(image.astype(np.float32), np.zeros((4, 5), np.uint8))


# --- to_json_list -------------------------------------------------------------


def test_to_json_list_for_cityscapes():
    entries = CITYSCAPES.to_json_list()
    assert len(entries) == 19
    assert entries[0] == {
        "id": 0, "name": "road", "color": [128, 64, 128], "label_id": 7, "category": "flat"
    }
    assert entries[18] == {
        "id": 18, "name": "bicycle", "color": [119, 11, 32], "label_id": 33, "category": "vehicle"
    }
    assert json.loads(json.dumps(entries)) == entries  # plain Python types only


def test_to_json_list_omits_absent_fields():
    label_set = LabelSet("two", ("floor", "box"), np.array([[1, 2, 3], [4, 5, 6]]))
    assert label_set.to_json_list() == [
        {"id": 0, "name": "floor", "color": [1, 2, 3]},
        {"id": 1, "name": "box", "color": [4, 5, 6]},
    ]


# --- LabelSet validation ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_names": ()}, "1..255 classes"),
        ({"class_names": tuple(f"c{i}" for i in range(256))}, "1..255 classes"),
        ({"class_names": ("a", "a")}, "duplicate class names"),
        ({"colors": np.zeros((3, 3))}, "shape"),
        ({"colors": np.array([[0, 0, 0], [0, 0, 256]])}, "0..255"),
        ({"colors": np.array([[0, 0, 0], [0, 0, -1]])}, "0..255"),
        ({"colors": np.array([[0, 0, 0], [0, 0, 0.5]])}, "integers"),
        ({"label_ids": np.array([1])}, "shape"),
        ({"label_ids": np.array([1, 1])}, "unique"),
        ({"label_ids": np.array([1, 300])}, "0..255"),
        ({"categories": ("flat",)}, "categories"),
        ({"name": ""}, "name"),
    ],
)
def test_label_set_validation(kwargs, message):
    args = {"name": "set", "class_names": ("a", "b"), "colors": np.zeros((2, 3), np.uint8)}
    args.update(kwargs)
    if "colors" not in kwargs and len(args["class_names"]) != 2:
        args["colors"] = np.zeros((len(args["class_names"]), 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        LabelSet(**args)


def test_label_set_without_label_ids_refuses_conversion():
    label_set = LabelSet("two", ("floor", "box"), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="no label ids"):
        label_set.to_label_ids(np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="no label ids"):
        label_set.to_train_ids(np.zeros(2, np.uint8))


def test_label_set_copies_colors():
    colors = np.array([[1, 2, 3]], np.uint8)
    label_set = LabelSet("one", ("thing",), colors)
    colors[0, 0] = 99
    assert label_set.colors.tolist() == [[1, 2, 3]]


# --- YAML loading -------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_label_set_with_label_ids_and_categories(tmp_path):
    path = _write(
        tmp_path,
        """
name: warehouse
classes:
  - {name: floor, color: [128, 64, 128], label_id: 1, category: flat}
  - {name: pallet, color: [0, 0, 142], label_id: 3, category: object}
  - {name: person, color: [220, 20, 60], label_id: 7, category: human}
""",
    )
    label_set = load_label_set(path)
    assert label_set.name == "warehouse"
    assert label_set.class_names == ("floor", "pallet", "person")
    assert label_set.colors.tolist() == [[128, 64, 128], [0, 0, 142], [220, 20, 60]]
    assert label_set.categories == ("flat", "object", "human")
    assert label_set.to_label_ids(np.array([0, 1, 2, 255], np.uint8)).tolist() == [1, 3, 7, 0]
    label_ids = np.array([0, 1, 3, 7, 2], np.uint8)
    assert label_set.to_train_ids(label_ids).tolist() == [255, 0, 1, 2, 255]
    assert label_set.colorize(np.array([1, 3], np.uint8)).tolist() == [[0, 0, 142], [0, 0, 0]]


def test_load_minimal_label_set_and_get_label_set(tmp_path):
    path = _write(tmp_path, "name: w\nclasses:\n  - {name: floor, color: [1, 2, 3]}\n")
    label_set = load_label_set(str(path))
    assert label_set.num_classes == 1
    assert label_set.label_ids is None and label_set.categories is None
    assert get_label_set(str(path)).class_names == ("floor",)


@pytest.mark.parametrize("spec", ["cityscapes", "Cityscapes", "CITYSCAPES"])
def test_get_label_set_cityscapes(spec):
    assert get_label_set(spec) is CITYSCAPES


BAD_YAML_CASES = {
    "bad_yaml": ("name: w\nclasses: [ {name: floor\n", "invalid YAML"),
    "empty_file": ("", "top level must be a mapping"),
    "top_level_list": ("- a\n- b\n", "top level must be a mapping"),
    "missing_name": ("classes:\n  - {name: a, color: [1, 2, 3]}\n", "missing top-level key"),
    "missing_classes": ("name: w\n", "missing top-level key 'classes'"),
    "unknown_top_key": (
        "name: w\nlabels: []\nclasses:\n  - {name: a, color: [1, 2, 3]}\n",
        "unknown top-level keys",
    ),
    "empty_classes": ("name: w\nclasses: []\n", "non-empty list"),
    "class_not_mapping": ("name: w\nclasses:\n  - floor\n", r"classes\[0\] must be a mapping"),
    "missing_class_name": ("name: w\nclasses:\n  - {color: [1, 2, 3]}\n", "missing 'name'"),
    "missing_color": ("name: w\nclasses:\n  - {name: a}\n", "missing 'color'"),
    "unknown_class_key": (
        "name: w\nclasses:\n  - {name: a, colour: [1, 2, 3]}\n",
        "unknown keys",
    ),
    "color_too_short": ("name: w\nclasses:\n  - {name: a, color: [1, 2]}\n", "color must be"),
    "color_over_255": ("name: w\nclasses:\n  - {name: a, color: [1, 2, 256]}\n", "color must be"),
    "color_float": ("name: w\nclasses:\n  - {name: a, color: [1, 2, 3.0]}\n", "color must be"),
    "color_string": ("name: w\nclasses:\n  - {name: a, color: red}\n", "color must be"),
    "bad_label_id": (
        "name: w\nclasses:\n  - {name: a, color: [1, 2, 3], label_id: -1}\n",
        "label_id must be",
    ),
    "label_id_on_some": (
        "name: w\nclasses:\n  - {name: a, color: [1, 2, 3], label_id: 1}\n"
        "  - {name: b, color: [1, 2, 3]}\n",
        "'label_id' must be given for all classes or none",
    ),
    "category_on_some": (
        "name: w\nclasses:\n  - {name: a, color: [1, 2, 3], category: x}\n"
        "  - {name: b, color: [1, 2, 3]}\n",
        "'category' must be given for all classes or none",
    ),
    "duplicate_label_id": (
        "name: w\nclasses:\n  - {name: a, color: [1, 2, 3], label_id: 1}\n"
        "  - {name: b, color: [1, 2, 3], label_id: 1}\n",
        "unique",
    ),
    "duplicate_name": (
        "name: w\nclasses:\n  - {name: a, color: [1, 2, 3]}\n  - {name: a, color: [4, 5, 6]}\n",
        "duplicate class names",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML_CASES))
def test_load_label_set_rejects_bad_files(tmp_path, case):
    text, message = BAD_YAML_CASES[case]
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as error:
        load_label_set(path)
    assert str(path) in str(error.value)


def test_load_label_set_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ValueError, match="nope.yaml does not exist") as error:
        load_label_set(path)
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="nope.yaml"):
        get_label_set(str(path))


# --- files named by settings: regular files, read with a bound ----------------------------------


def test_named_files_that_are_not_regular_files_or_too_large_are_refused_quickly(tmp_path):
    """/dev/zero would be read without end and a FIFO would block configure forever: both are
    refused from what the path is, as are a folder and a file beyond the bound."""
    import os
    import threading

    from denseaspp_ros.costmap import CostTableError, load_cost_table
    from denseaspp_ros.files import FileRefused, read_bounded

    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    results = []
    reader = threading.Thread(target=lambda: results.append(_refusal(lambda: load_label_set(fifo))), daemon=True)
    reader.start()
    reader.join(10.0)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert results == [f"label set file {fifo} is a FIFO (named pipe), not a regular file"]
    assert _refusal(lambda: load_label_set("/dev/zero")) == "label set file /dev/zero is a character device, not a regular file"
    assert _refusal(lambda: load_label_set(tmp_path)) == f"label set file {tmp_path} is a folder, not a regular file"
    assert _refusal(lambda: load_label_set(tmp_path / "absent.yaml")) == f"label set file {tmp_path / 'absent.yaml'} does not exist"
    with pytest.raises(CostTableError, match="is a character device, not a regular file"):
        load_cost_table("/dev/zero", CITYSCAPES)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(FileRefused, match="is larger than 1048576 bytes"):
        read_bounded(big, "label set file")


def _refusal(load) -> str:
    with pytest.raises(LabelSetError) as refused:
        load()
    return str(refused.value)

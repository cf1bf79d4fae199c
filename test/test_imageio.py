"""Tests for denseaspp_ros.imageio and denseaspp_ros.atomic: finding, reading and atomically writing images."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from denseaspp_ros import atomic, imageio
from denseaspp_ros.atomic import atomic_write
from denseaspp_ros.errors import DenseASPPError, ImageError
from denseaspp_ros.imageio import IMAGE_SUFFIXES, ImageItem, find_images, read_bgr, write_png


def make_image(path: Path, height: int = 6, width: int = 8, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))
    return path


def leftovers(folder: Path) -> list[str]:
    """Files a failed or finished atomic write must not leave behind (its temporaries are dot files)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- find_images --------------------------------------------------------------------------------


def test_find_images_recurses_sorted_with_relative_paths(tmp_path):
    root = tmp_path / "leftImg8bit" / "val"
    for name in ("zurich/zurich_000000_000019_leftImg8bit.png", "aachen/b.png", "aachen/a.jpg", "aachen/deep/er/c.bmp"):
        make_image(root / name)
    (root / "aachen" / "notes.txt").write_text("not an image")
    (root / "aachen" / "README").write_text("no suffix")
    (root / "folder.png").mkdir()  # a folder with an image suffix is no image
    items = find_images([root])
    assert [item.relative for item in items] == [
        Path("aachen/a.jpg"),
        Path("aachen/b.png"),
        Path("aachen/deep/er/c.bmp"),
        Path("zurich/zurich_000000_000019_leftImg8bit.png"),
    ]
    assert all(item.source == root / item.relative for item in items)
    assert all(isinstance(item, ImageItem) for item in items)


def test_find_images_accepts_strings_files_and_several_inputs(tmp_path):
    folder = tmp_path / "folder"
    make_image(folder / "x" / "one.png")
    single = make_image(tmp_path / "elsewhere" / "two.jpeg")
    items = find_images([str(folder), str(single)])
    assert [(item.source, item.relative) for item in items] == [
        (folder / "x" / "one.png", Path("x/one.png")),
        (single, Path("two.jpeg")),  # a file given directly lands at the top of the output tree
    ]


@pytest.mark.parametrize("suffix", [*IMAGE_SUFFIXES, ".PNG", ".JpG", ".TIFF"])
def test_find_images_suffixes_any_case(tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    path.write_bytes(b"contents are checked later, by read_bgr")
    assert [item.relative for item in find_images([tmp_path])] == [path.relative_to(tmp_path)]
    assert find_images([path])[0].source == path


@pytest.mark.parametrize("name", ["notes.txt", "weights.pkl", "image.png.bak", "noext"])
def test_find_images_refuses_non_image_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("x")
    with pytest.raises(DenseASPPError, match="not an image file"):
        find_images([path])


def test_find_images_empty_folder_and_missing_input(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("x")
    with pytest.raises(DenseASPPError, match="no images"):
        find_images([empty])
    make_image(tmp_path / "good" / "a.png")
    with pytest.raises(DenseASPPError, match="does not exist"):
        find_images([tmp_path / "good", tmp_path / "missing"])  # every input must be valid


@pytest.mark.parametrize(
    "names, inputs",
    [
        (["a/frame.png", "a/frame.jpg"], ["a"]),  # same stem, different suffix, same folder
        (["a/x/f.png", "b/x/f.png"], ["a", "b"]),  # two folders with the same relative path
        (["a/f.png", "b/f.jpg"], ["a/f.png", "b/f.jpg"]),  # two files of one name
        (["a/f.png"], ["a", "a"]),  # the same folder twice
    ],
)
def test_find_images_detects_output_clashes(tmp_path, names, inputs):
    for name in names:
        make_image(tmp_path / name)
    with pytest.raises(DenseASPPError, match="overwrite each other"):
        find_images([tmp_path / entry for entry in inputs])


def test_find_images_no_clash_for_distinct_outputs(tmp_path):
    make_image(tmp_path / "a" / "x" / "f.png")
    make_image(tmp_path / "b" / "y" / "f.png")
    make_image(tmp_path / "a" / "f.v2.png")
    make_image(tmp_path / "a" / "f.png")
    assert len(find_images([tmp_path / "a", tmp_path / "b"])) == 4


def test_output_names_replace_only_the_last_suffix(tmp_path):
    make_image(tmp_path / "frame.001.jpg")
    make_image(tmp_path / "IMG.JPEG")
    relative = {item.relative.with_suffix(".png") for item in find_images([tmp_path])}
    assert relative == {Path("frame.001.png"), Path("IMG.png")}


# --- read_bgr -----------------------------------------------------------------------------------


def test_read_bgr_colour_keeps_channel_order(tmp_path):
    bgr = np.zeros((5, 7, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), bgr)
    np.testing.assert_array_equal(read_bgr(path), bgr)


def test_read_bgr_grey_png_gives_three_equal_channels(tmp_path):
    grey = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    image = read_bgr(path)
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


@pytest.mark.parametrize("channels", [1, 3])
def test_read_bgr_16_bit_png_gives_8_bit(tmp_path, channels):
    values = (np.arange(35, dtype=np.uint16).reshape(5, 7) * 1800).astype(np.uint16)
    picture = values if channels == 1 else np.stack([values] * 3, axis=-1)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), picture)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16  # really a 16-bit file
    image = read_bgr(path)
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    np.testing.assert_allclose(image[..., 1].astype(float), values / 256.0, atol=1.0)


def test_read_bgr_drops_alpha(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 77, 0
    path = tmp_path / "alpha.png"
    cv2.imwrite(str(path), rgba)
    image = read_bgr(path)
    assert image.shape == (4, 4, 3) and (image == 77).all()


@pytest.mark.parametrize("contents", [b"", b"not a png at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_read_bgr_corrupt_file(tmp_path, contents):
    path = tmp_path / "broken.png"
    path.write_bytes(contents)
    with pytest.raises(ImageError, match="broken.png"):
        read_bgr(path)


def test_read_bgr_truncated_png(tmp_path):
    path = make_image(tmp_path / "whole.png", 64, 64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot read"):
        read_bgr(path)


def test_read_bgr_missing_file(tmp_path):
    with pytest.raises(ImageError):
        read_bgr(tmp_path / "nothing.png")


# --- write_png / atomic_write -------------------------------------------------------------------


@pytest.mark.parametrize(
    "picture",
    [
        np.arange(48, dtype=np.uint8).reshape(6, 8),
        np.arange(144, dtype=np.uint8).reshape(6, 8, 3),
        np.arange(144, dtype=np.uint8).reshape(6, 8, 3)[..., ::-1],  # negative-stride view, as the CLI writes
    ],
)
def test_write_png_round_trip_and_creates_folders(tmp_path, picture):
    path = tmp_path / "deep" / "er" / "out.png"
    write_png(path, picture)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), picture)
    assert leftovers(path.parent) == []


def test_write_png_unencodable_array(tmp_path):
    path = tmp_path / "out.png"
    for bad in (np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4), np.uint8)):
        with pytest.raises(ImageError, match="out.png"):
            write_png(path, bad)
    assert list(tmp_path.iterdir()) == []


def test_failed_replace_keeps_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "mask.png"
    old = np.full((4, 4), 1, np.uint8)
    write_png(path, old)
    before = path.read_bytes()

    def broken_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_png(path, np.full((4, 4), 2, np.uint8))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_halfway_keeps_old_file(tmp_path, error):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old contents")

    def half_then_fail(temporary: str) -> None:
        Path(temporary).write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_failed_first_write_leaves_nothing(tmp_path):
    path = tmp_path / "new.bin"
    with pytest.raises(RuntimeError):
        atomic_write(path, lambda temporary: (_ for _ in ()).throw(RuntimeError("boom")))
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "mask.png"
    write_png(path, np.full((4, 4), 1, np.uint8))
    write_png(path, np.full((3, 5), 9, np.uint8))
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), np.full((3, 5), 9, np.uint8))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_new_files_get_the_permissions_of_a_plain_write(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_png(tmp_path / "atomic.png", np.zeros((2, 2), np.uint8))
        (tmp_path / "plain.png").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "atomic.png").stat().st_mode) == stat.S_IMODE((tmp_path / "plain.png").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "atomic.png").stat().st_mode) == 0o666 & ~umask


def test_overwrite_keeps_the_existing_permissions(tmp_path):
    path = tmp_path / "mask.png"
    write_png(path, np.zeros((2, 2), np.uint8))
    path.chmod(0o640)
    write_png(path, np.ones((2, 2), np.uint8))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_module_uses_atomic_write():
    # write_png must go through atomic_write (what the tests above monkeypatch around).
    assert imageio.atomic_write is atomic.atomic_write


def test_an_exif_orientation_tag_never_turns_an_image_file(tmp_path):
    """OpenCV turns a JPEG by its EXIF Orientation unless told not to: a camera frame read from a
    file keeps the size and pixels it was stored with."""
    from PIL import Image as PILImage

    rgb = np.zeros((256, 512, 3), np.uint8)
    rgb[:, :256] = (200, 30, 30)  # left half red: turned, it would be the top or the bottom half
    exif = PILImage.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    PILImage.fromarray(rgb).save(path, "JPEG", exif=exif.tobytes(), quality=95)
    assert cv2.imread(str(path)).shape == (512, 256, 3)  # what OpenCV does by default
    image = read_bgr(path)
    assert image.shape == (256, 512, 3)
    assert image[128, 100, 2] > 150 and image[128, 400, 2] < 60  # red (BGR) on the left, as stored

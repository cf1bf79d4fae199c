"""Tests for denseaspp_ros.inference.Segmenter against hand-written references of the spec.

Everything runs on the CPU with a seeded, randomly initialised MobileNetDenseASPP on small
images, so the whole file takes a few seconds.
"""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file as save_safetensors_file

from denseaspp_ros.errors import CheckpointError, DenseASPPError, ImageError
from denseaspp_ros.inference import MULTISCALE_SCALES, Segmentation, Segmenter, check_image, load_engine, resolve_device
from denseaspp_ros.model import build_model, declared_input_size, save_safetensors

MODEL = "MobileNetDenseASPP"
NUM_CLASSES = 19
# The spec's normalisation, written out independently of the code under test.
SPEC_MEAN = torch.tensor([0.290101, 0.328081, 0.286964]).view(1, 3, 1, 1)
SPEC_STD = torch.tensor([0.182954, 0.186566, 0.184475]).view(1, 3, 1, 1)
SPEC_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.8)
LOGIT_TOLERANCE = 1e-4  # float32 rounding of (x*a+b) versus ((x/255-m)/s), batched versus single convs
TIE_MARGIN = 1e-3  # pixels whose top-2 scores are closer than this may legitimately flip argmax


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(MODEL, NUM_CLASSES)


@pytest.fixture(scope="module")
def segmenter(model) -> Segmenter:
    return Segmenter(model, device="cpu")


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth-ish random RGB image (blocks plus noise) so the network sees some structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    image += rng.integers(-20, 21, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def normalise(image_rgb: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1)[None].float()
    return (x / 255.0 - SPEC_MEAN) / SPEC_STD


def resize_input(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The network-input resize the code documents: bilinear, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


@torch.inference_mode()
def reference_logits(model, image_rgb: np.ndarray, input_size: tuple[int, int] | None = None) -> torch.Tensor:
    x = normalise(image_rgb)
    height, width = image_rgb.shape[:2]
    if input_size is not None:
        x = resize_input(x, input_size)
    logits = model(x)
    if tuple(logits.shape[-2:]) != (height, width):
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=model.align_corners)
    return logits[0]


@torch.inference_mode()
def reference_multiscale(
    model, image_rgb: np.ndarray, scales=SPEC_SCALES, flip: bool = True, base_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """The release's multi-scale + flip test, straight from the spec; scales apply to ``base_size``
    (the network input size option) when given, else to the image size."""
    x = normalise(image_rgb)
    height, width = image_rgb.shape[:2]
    base_height, base_width = base_size or (height, width)
    fused = []
    for scale in scales:
        scaled = resize_input(x, (round(base_height * scale), round(base_width * scale)))
        for mirrored in (False, True) if flip else (False,):
            out = model(scaled.flip(-1) if mirrored else scaled)
            if mirrored:
                out = out.flip(-1)
            out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=True)
            fused.append(F.log_softmax(out, dim=1))
    return torch.stack(fused).mean(0)[0]


def assert_matches_reference(result: Segmentation, logits: torch.Tensor) -> None:
    """ids equal the reference argmax (except at numerical ties), confidence within 1 of softmax max*255."""
    assert result.train_ids.dtype == np.uint8 and result.train_ids.shape == tuple(logits.shape[-2:])
    top2 = logits.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > TIE_MARGIN).numpy()
    assert decided.mean() > 0.95, "reference too tie-prone to be a meaningful comparison"
    expected_ids = logits.argmax(0).numpy()
    np.testing.assert_array_equal(result.train_ids[decided], expected_ids[decided])
    if result.confidence is not None:
        expected = (F.softmax(logits, dim=0).max(0).values * 255).numpy()
        assert result.confidence.dtype == np.uint8
        assert np.abs(result.confidence.astype(np.float64) - expected).max() <= 1.0


def assert_same_result(a: Segmentation, b: Segmentation) -> None:
    assert a.train_ids.shape == b.train_ids.shape
    torch.testing.assert_close(a.logits, b.logits, atol=LOGIT_TOLERANCE, rtol=0)
    top2 = b.logits.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > TIE_MARGIN).numpy()
    np.testing.assert_array_equal(a.train_ids[decided], b.train_ids[decided])
    assert np.abs(a.confidence.astype(int) - b.confidence.astype(int)).max() <= 1


# --- agreement with hand-written references -------------------------------------------------


def test_ids_confidence_logits_match_hand_reference(model, segmenter):
    image = random_image(48, 64, seed=1)
    result = segmenter.segment([image], confidence=True, logits=True)[0]
    expected = reference_logits(model, image)
    assert result.logits.shape == (NUM_CLASSES, 48, 64) and result.logits.dtype == torch.float32
    torch.testing.assert_close(result.logits, expected, atol=LOGIT_TOLERANCE, rtol=0)
    assert_matches_reference(result, expected)
    # A random net still has to produce more than one class here, or argmax tests prove little.
    assert len(np.unique(result.train_ids)) > 1


def test_preprocess_is_the_spec_normalisation(segmenter):
    image = random_image(16, 24, seed=2)
    torch.testing.assert_close(segmenter.preprocess([image]), normalise(image), atol=1e-5, rtol=0)


def test_outputs_not_requested_are_none(segmenter):
    result = segmenter.segment_one(random_image(24, 32, seed=3))
    assert result.confidence is None and result.logits is None
    assert result.train_ids.shape == (24, 32)


def test_bgr_flag_equals_rgb_on_channel_reversed_image(segmenter):
    rgb = random_image(48, 64, seed=4)
    expected = segmenter.segment([rgb], confidence=True, logits=True)[0]
    bgr_view = rgb[..., ::-1]  # a negative-stride view, as callers commonly pass
    from_view = segmenter.segment([bgr_view], bgr=True, confidence=True, logits=True)[0]
    from_copy = segmenter.segment([np.ascontiguousarray(bgr_view)], bgr=True, confidence=True, logits=True)[0]
    for result in (from_view, from_copy):
        np.testing.assert_array_equal(result.train_ids, expected.train_ids)
        np.testing.assert_array_equal(result.confidence, expected.confidence)
        torch.testing.assert_close(result.logits, expected.logits, atol=0, rtol=0)
    # ... and the flag matters: the same array read as RGB gives other scores.
    swapped = segmenter.segment([bgr_view], logits=True)[0]
    assert not torch.allclose(swapped.logits, expected.logits, atol=1e-2)


def test_non_contiguous_and_read_only_inputs(segmenter):
    big = random_image(80, 100, seed=5)
    crop = big[10:58, 20:84]  # positive but non-contiguous strides
    expected = segmenter.segment([np.ascontiguousarray(crop)], logits=True)[0]
    got = segmenter.segment([crop], logits=True)[0]
    torch.testing.assert_close(got.logits, expected.logits, atol=0, rtol=0)
    frozen = np.ascontiguousarray(crop)
    frozen.setflags(write=False)  # e.g. np.frombuffer on a ROS message
    before = frozen.copy()
    got = segmenter.segment([frozen, frozen], logits=True)
    np.testing.assert_array_equal(frozen, before)  # the caller's image is never modified
    torch.testing.assert_close(got[0].logits, expected.logits, atol=LOGIT_TOLERANCE, rtol=0)


def test_mixed_sizes_any_max_batch_matches_one_at_a_time(model):
    sizes = [(48, 64), (32, 40), (48, 64), (37, 53), (32, 40), (48, 64)]
    images = [random_image(h, w, seed=10 + i) for i, (h, w) in enumerate(sizes)]
    single = Segmenter(model, device="cpu", max_batch=1)
    alone = [single.segment([image], confidence=True, logits=True)[0] for image in images]
    for max_batch in (1, 2, 8):
        results = Segmenter(model, device="cpu", max_batch=max_batch).segment(images, confidence=True, logits=True)
        assert len(results) == len(images)
        for image, result, expected in zip(images, results, alone):
            assert result.train_ids.shape == image.shape[:2]  # input order kept
            assert_same_result(result, expected)
    # Same-size images in one batch are not mixed up with each other.
    results = Segmenter(model, device="cpu", max_batch=8).segment(images, logits=True)
    assert not torch.allclose(results[0].logits, results[2].logits, atol=1e-2)


def test_empty_list_gives_empty_result(segmenter):
    assert segmenter.segment([]) == []


@pytest.mark.parametrize("size", [(37, 53), (33, 8), (8, 41), (1, 1), (9, 15)])
def test_sizes_not_multiple_of_8_give_masks_of_that_size(model, segmenter, size):
    image = random_image(*size, seed=sum(size))
    result = segmenter.segment([image], confidence=True, logits=True)[0]
    assert result.train_ids.shape == size
    assert result.confidence.shape == size
    assert result.logits.shape == (NUM_CLASSES, *size)
    torch.testing.assert_close(result.logits, reference_logits(model, image), atol=LOGIT_TOLERANCE, rtol=0)


@pytest.mark.parametrize("input_size", [(32, 40), (64, 96), (40, 72)])
def test_input_size_resize_maps_back_to_input_resolution(model, input_size):
    image = random_image(48, 64, seed=20)
    segmenter = Segmenter(model, device="cpu", input_size=input_size)
    result = segmenter.segment([image], confidence=True, logits=True)[0]
    assert result.train_ids.shape == (48, 64) and result.confidence.shape == (48, 64)
    expected = reference_logits(model, image, input_size=input_size)
    torch.testing.assert_close(result.logits, expected, atol=LOGIT_TOLERANCE, rtol=0)
    assert_matches_reference(result, expected)
    # The resize really happens: the full-resolution forward differs.
    assert not torch.allclose(expected, reference_logits(model, image), atol=1e-2)


def test_multiscale_default_scales_are_the_releases():
    assert tuple(MULTISCALE_SCALES) == SPEC_SCALES


def test_multiscale_flip_matches_hand_reference(model):
    image = random_image(40, 60, seed=30)  # every scale gives whole-pixel sizes
    result = Segmenter(model, device="cpu", multiscale=True).segment([image], confidence=True, logits=True)[0]
    expected = reference_multiscale(model, image)
    assert result.logits.shape == (NUM_CLASSES, 40, 60)
    torch.testing.assert_close(result.logits, expected, atol=LOGIT_TOLERANCE, rtol=0)
    assert_matches_reference(result, expected)
    # Fused scores are averaged log-probabilities, not raw logits.
    assert (result.logits <= 1e-6).all()
    # ... and the single-scale result is something else.
    assert not torch.allclose(result.logits, F.log_softmax(reference_logits(model, image), 0), atol=1e-2)


def test_multiscale_without_flip_matches_reference_and_differs(model):
    image = random_image(40, 60, seed=31)
    no_flip = Segmenter(model, device="cpu", multiscale=True, flip=False).segment([image], logits=True)[0]
    expected = reference_multiscale(model, image, flip=False)
    torch.testing.assert_close(no_flip.logits, expected, atol=LOGIT_TOLERANCE, rtol=0)
    flipped = Segmenter(model, device="cpu", multiscale=True).segment([image], logits=True)[0]
    assert not torch.allclose(no_flip.logits, flipped.logits, atol=1e-3)


def test_multiscale_on_odd_size_and_batches(model):
    images = [random_image(37, 53, seed=32), random_image(37, 53, seed=33)]
    segmenter = Segmenter(model, device="cpu", multiscale=True, scales=(0.75, 1.25), max_batch=2)
    results = segmenter.segment(images, logits=True)
    for image, result in zip(images, results):
        assert result.train_ids.shape == (37, 53)
        expected = reference_multiscale(model, image, scales=(0.75, 1.25))
        torch.testing.assert_close(result.logits, expected, atol=LOGIT_TOLERANCE, rtol=0)


def test_multiscale_scales_the_input_size_option(model):
    image = random_image(40, 60, seed=34)
    segmenter = Segmenter(model, device="cpu", multiscale=True, scales=(0.5, 1.0), input_size=(24, 32))
    result = segmenter.segment([image], logits=True)[0]
    assert result.train_ids.shape == (40, 60)
    expected = reference_multiscale(model, image, scales=(0.5, 1.0), base_size=(24, 32))
    torch.testing.assert_close(result.logits, expected, atol=LOGIT_TOLERANCE, rtol=0)


def test_channels_last_gives_the_same_result(model, segmenter):
    image = random_image(48, 64, seed=40)
    assert segmenter.memory_format == torch.channels_last  # the default
    expected = segmenter.segment([image], confidence=True, logits=True)[0]
    try:
        result = Segmenter(model, device="cpu", channels_last=False).segment([image], confidence=True, logits=True)[0]
    finally:
        model.to(memory_format=torch.channels_last)
    assert_same_result(result, expected)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, problem",
    [
        (np.zeros((16, 16, 3), np.float32), "float32"),
        (np.zeros((16, 16), np.uint8), "(16, 16)"),
        (np.zeros((16, 16, 4), np.uint8), "(16, 16, 4)"),
        (np.zeros((16, 16, 1), np.uint8), "(16, 16, 1)"),
        (np.zeros((16, 16, 3), np.uint16), "uint16"),
        (np.zeros((16, 16, 3), np.uint8).tolist(), "list"),
        (None, "NoneType"),
        (np.zeros((0, 16, 3), np.uint8), "empty"),
        (np.zeros((16, 0, 3), np.uint8), "empty"),
    ],
)
def test_bad_images_raise_image_error_naming_index_and_problem(segmenter, bad, problem):
    good = random_image(16, 16, seed=50)
    with pytest.raises(ImageError) as caught:
        segmenter.segment([good, good, bad])
    message = str(caught.value)
    assert "image 2" in message and problem in message
    assert isinstance(caught.value, DenseASPPError) and isinstance(caught.value, ValueError)
    with pytest.raises(ImageError, match="image 0"):
        check_image(bad)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "", "CPU", "mps", "meta", "cpu cuda"])
def test_invalid_device_strings(model, spec):
    with pytest.raises(DenseASPPError, match="device"):
        Segmenter(model, device=spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_requested_without_cuda(model, spec):
    with pytest.raises(DenseASPPError, match="CUDA is not available"):
        Segmenter(model, device=spec)


def test_auto_device_and_precision(segmenter, model):
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert Segmenter(model, device="cpu", precision="auto").dtype == torch.float32
    assert segmenter.dtype == torch.float32


@pytest.mark.parametrize("precision, match", [("fp16", "CUDA"), ("bf16", "CUDA"), ("fp64", "unknown"), ("half", "unknown")])
def test_bad_precision_on_cpu(model, precision, match):
    with pytest.raises(DenseASPPError, match=match):
        Segmenter(model, device="cpu", precision=precision)


@pytest.mark.parametrize(
    "options",
    [{"max_batch": 0}, {"input_size": (0, 32)}, {"multiscale": True, "scales": ()}, {"multiscale": True, "scales": (1.0, -0.5)}],
)
def test_bad_options(model, options):
    with pytest.raises(DenseASPPError):
        Segmenter(model, device="cpu", **options)


# --- weights, determinism, output arrays ------------------------------------------------------


def test_load_engine_with_safetensors_equals_source_model(tmp_path, model, segmenter):
    path = tmp_path / "mobilenet.safetensors"
    save_safetensors(model, path)
    loaded = load_engine(path, device="cpu")  # model auto: the variant comes from the file
    assert (loaded.model_name, loaded.weights, loaded.label_set.name) == (MODEL, path, "cityscapes")
    images = [random_image(48, 64, seed=60), random_image(37, 53, seed=61)]
    for a, b in zip(loaded.segment(images, confidence=True, logits=True), segmenter.segment(images, confidence=True, logits=True)):
        np.testing.assert_array_equal(a.train_ids, b.train_ids)
        np.testing.assert_array_equal(a.confidence, b.confidence)
        assert torch.equal(a.logits, b.logits)
    # Without weights the same variant computes something else (the weights really were loaded).
    torch.manual_seed(123)
    fresh = load_engine(None, MODEL, allow_untrained=True, device="cpu").segment(images[:1], logits=True)[0]
    assert not torch.allclose(fresh.logits, segmenter.segment(images[:1], logits=True)[0].logits, atol=1e-2)


def test_weights_declaring_an_input_size_run_there_unless_told_otherwise(tmp_path, model):
    """A checkpoint header's input_size (training's --input-size) is the engine's default network
    input size: masks come back at the image's size, computed at the declared one."""
    declared = copy.deepcopy(model)
    declared.input_size = (64, 96)
    path = tmp_path / "upscaled.safetensors"
    save_safetensors(declared, path)
    assert safe_open(str(path), "pt").metadata()["input_size"] == "64x96"
    assert declared_input_size(path) == (64, 96)
    image = random_image(48, 64, seed=62)
    engine = load_engine(path, device="cpu")
    assert engine.input_size == (64, 96) and engine.describe()["input_size"] == "64x96"  # diagnostics show it
    result = engine.segment([image], logits=True)[0]
    assert result.train_ids.shape == (48, 64)
    torch.testing.assert_close(result.logits, reference_logits(model, image, input_size=(64, 96)), atol=LOGIT_TOLERANCE, rtol=0)
    # An explicit size wins (a node's model.input_height/width), and weights without one run at each image's size.
    assert load_engine(path, device="cpu", input_size=(48, 64)).input_size == (48, 64)
    save_safetensors(model, tmp_path / "native.safetensors")
    assert declared_input_size(tmp_path / "native.safetensors") is None
    native = load_engine(tmp_path / "native.safetensors", device="cpu")
    assert native.input_size is None and native.describe()["input_size"] == "each image's"


def test_half_pixel_weights_are_run_and_resized_half_pixel(tmp_path, model):
    """Weights trained with --half-pixel say so in their header; the engine's network upsamples that
    way and the scores go back to the image's size the same way (the reference does it by hand)."""
    half_pixel = copy.deepcopy(model)
    half_pixel.align_corners, half_pixel.input_size = False, (64, 96)
    path = tmp_path / "half_pixel.safetensors"
    save_safetensors(half_pixel, path)
    assert safe_open(str(path), "pt").metadata()["align_corners"] == "false"
    engine = load_engine(path, device="cpu")
    assert engine.describe()["upsampling"] == "half-pixel"
    image = random_image(48, 64, seed=63)
    result = engine.segment([image], logits=True)[0]
    torch.testing.assert_close(result.logits, reference_logits(half_pixel, image, input_size=(64, 96)), atol=LOGIT_TOLERANCE, rtol=0)
    # The control: the same tensors corner-aligned compute something else.
    assert not torch.allclose(result.logits, reference_logits(model, image, input_size=(64, 96)), atol=1e-3)
    assert load_engine(None, MODEL, allow_untrained=True, device="cpu").describe()["upsampling"] == "corner-aligned"


@pytest.mark.parametrize("declared, problem", [
    ("big", r"the header's input_size: expected HxW such as 512x1024, got 'big'"),
    ("0x768", r"the header's input_size: sizes must be positive"),
    ("100000x100000", r"the header's input_size 100000x100000 exceeds 8192 pixels a side"),
])
def test_a_header_input_size_that_is_not_a_usable_size_is_a_clean_error(tmp_path, model, declared, problem):
    path = tmp_path / "odd.safetensors"
    tensors = {key: tensor.contiguous() for key, tensor in model.state_dict().items()}
    save_safetensors_file(tensors, str(path), metadata={"model": MODEL, "num_classes": str(NUM_CLASSES), "input_size": declared})
    with pytest.raises(CheckpointError, match=f"odd.safetensors: {problem}"):
        load_engine(path, device="cpu")


def test_a_header_upsampling_that_is_neither_true_nor_false_is_a_clean_error(tmp_path, model):
    path = tmp_path / "odd.safetensors"
    tensors = {key: tensor.contiguous() for key, tensor in model.state_dict().items()}
    save_safetensors_file(tensors, str(path), metadata={"model": MODEL, "num_classes": str(NUM_CLASSES), "align_corners": "maybe"})
    with pytest.raises(CheckpointError, match="odd.safetensors: the header's align_corners is 'maybe', not true or false"):
        load_engine(path, device="cpu")


def test_deterministic(segmenter):
    images = [random_image(48, 64, seed=70), random_image(48, 64, seed=71)]
    first = segmenter.segment(images, confidence=True, logits=True)
    second = segmenter.segment(images, confidence=True, logits=True)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.train_ids, b.train_ids)
        np.testing.assert_array_equal(a.confidence, b.confidence)
        assert torch.equal(a.logits, b.logits)


def test_returned_arrays_are_uint8_and_usable_by_cv2(segmenter, tmp_path):
    images = [random_image(48, 64, seed=80), random_image(48, 64, seed=81)]
    for result in segmenter.segment(images, confidence=True):
        for array in (result.train_ids, result.confidence):
            assert array.dtype == np.uint8 and array.shape == (48, 64)
            assert array.flags.c_contiguous
            ok, encoded = cv2.imencode(".png", array)
            assert ok
            np.testing.assert_array_equal(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED), array)
            cv2.resize(array, (32, 24), interpolation=cv2.INTER_NEAREST)
            cv2.applyColorMap(array, cv2.COLORMAP_JET)
        assert result.train_ids.max() < NUM_CLASSES


@pytest.mark.parametrize("half_pixel", [False, True])
def test_a_large_frame_is_decided_band_by_band_like_all_at_once(monkeypatch, half_pixel):
    """Scores brought to a large frame's size are made a band of rows at a time (memory stays about
    SCORE_BAND_BYTES whatever the frame): the class ids are those of the whole upsampling, the
    confidence within one step of 255, for either upsampling of the weights."""
    import denseaspp_ros.inference.segmenter as segmenter_module

    network = build_model("MobileNetDenseASPP", 19).eval()
    network.align_corners = not half_pixel
    engine = Segmenter(network, device="cpu", precision="fp32", input_size=(64, 96))
    image = np.random.default_rng(3).integers(0, 255, (700, 1100, 3), np.uint8)
    whole = engine.segment([image], confidence=True)[0]
    monkeypatch.setattr(segmenter_module, "SCORE_BAND_BYTES", 19 * 1100 * 4 * 50)  # bands of 50 rows
    banded = engine.segment([image], confidence=True)[0]
    assert np.mean(banded.train_ids == whole.train_ids) >= 0.9999
    assert np.abs(banded.confidence.astype(int) - whole.confidence.astype(int)).max() <= 1
    assert banded.finite and banded.train_ids.shape == (700, 1100)

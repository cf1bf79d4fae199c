"""The networks against the published facts: parameter counts, the release's tensor layout, and
the original forward pass (re-implemented independently in ``original_reference.py``)."""

from pathlib import Path

import pytest
import torch
from original_reference import original_forward, padded_original_forward, randomize_

from denseaspp_ros.errors import DenseASPPError
from denseaspp_ros.model import MODEL_NAMES, PUBLISHED_MODEL_NAMES, build_model, identify_variant, to_original_state_dict

DATA = Path(__file__).parent / "data"

# Learnable parameters with 19 classes, as the issue records them for the release's networks.
PARAMETER_COUNTS = {
    "DenseASPP121": 8_280_851,
    "DenseASPP161": 35_395_427,
    "DenseASPP169": 18_420_675,
    "DenseASPP201": 28_639_987,
    "MobileNetDenseASPP": 2_486_419,
}
# Agreement within this fraction of the largest logit: float32 summation order may differ
# between the two implementations, a structural difference moves logits by O(1).
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=sorted(PARAMETER_COUNTS))
def variant(request):
    """(name, model with seeded random weights and non-identity BatchNorms); built once per variant."""
    model = build_model(request.param)
    randomize_(model.state_dict(), seed=sum(map(ord, request.param)))
    return request.param, model


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _release_keys(name: str) -> list[str]:
    lines = (DATA / f"{name}.keys.txt").read_text().splitlines()
    assert lines[0].startswith("#")
    return lines[1:]


def _max_relative_difference(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def test_every_published_variant_is_offered():
    assert set(PUBLISHED_MODEL_NAMES) == set(PARAMETER_COUNTS)
    assert set(MODEL_NAMES) - set(PUBLISHED_MODEL_NAMES) == {DECODER}


DECODER = "MobileNetDenseASPPDecoder"


def test_the_decoder_variant_is_its_base_network_plus_a_decoder_that_classifies_at_stride_2():
    base, model = build_model("MobileNetDenseASPP"), build_model(DECODER)
    base_shapes = {k: v.shape for k, v in base.state_dict().items() if not k.startswith("classification.")}
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert all(shapes[k] == shape for k, shape in base_shapes.items())  # a base checkpoint fills all of it but the head
    assert {k.split(".")[0] for k in shapes.keys() - base_shapes.keys()} == {"decoder", "classification"}
    assert identify_variant(model.state_dict()) == (DECODER, 19) and identify_variant(base.state_dict()) == ("MobileNetDenseASPP", 19)
    seen = []
    model.classification.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with torch.no_grad():
        logits = model(_images(1, 3, 61, 97, seed=3))
    assert logits.shape == (1, 19, 61, 97)
    assert seen == [(1, 19, 32, 52)]  # the padded 64x104 input at stride 2, not 8x13 at stride 8
    assert torch.isfinite(logits).all()


def test_parameter_count(variant):
    name, model = variant
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert count == PARAMETER_COUNTS[name]
    header = (DATA / f"{name}.keys.txt").read_text().splitlines()[0]
    assert f"Learnable parameters: {PARAMETER_COUNTS[name]}." in header


def test_original_state_dict_has_the_release_names_shapes_and_order(variant):
    name, model = variant
    ours = [f"{key} {'x'.join(map(str, t.shape))}" for key, t in to_original_state_dict(model).items()]
    assert ours == _release_keys(name)


def test_forward_equals_the_original_network(variant):
    name, model = variant
    # 208 rows make the stride-8 feature map 26 rows high, so every atrous rate up to 24 reaches
    # real pixels: on a small map a wrongly dilated 3x3 conv would degenerate to its centre tap
    # and agree with the reference by accident.
    images = _images(2, 3, 208, 24)
    with torch.no_grad():
        logits = model(images)
        expected = original_forward(to_original_state_dict(model), images)
    assert logits.shape == (2, 19, 208, 24)
    assert expected.abs().max() > 0.5  # the weights give logits well away from 0
    assert _max_relative_difference(logits, expected) < RELATIVE_TOLERANCE


def test_the_first_aspp_blocks_in_place_relu_on_the_backbone_output_matters(variant):
    name, model = variant
    images = _images(1, 3, 32, 48, seed=1)
    with torch.no_grad():
        logits = model(images)
        without_side_effect = original_forward(to_original_state_dict(model), images, inplace_relu_on_input=False)
    assert _max_relative_difference(logits, without_side_effect) > 100 * RELATIVE_TOLERANCE


def test_any_input_size_gives_logits_of_that_size(variant):
    name, model = variant
    images = _images(1, 3, 61, 97, seed=2)
    with torch.no_grad():
        logits = model(images)
        expected = padded_original_forward(to_original_state_dict(model), images)
    assert logits.shape == (1, 19, 61, 97)
    assert _max_relative_difference(logits, expected) < RELATIVE_TOLERANCE


def test_build_model_returns_a_deterministic_model_in_eval_mode():
    model = build_model("MobileNetDenseASPP")
    assert not any(module.training for module in model.modules())
    images = _images(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(images), model(images))  # dropout off, BN on running statistics


def test_num_classes_sizes_the_classifier():
    model = build_model("MobileNetDenseASPP", num_classes=21)
    with torch.no_grad():
        assert model(_images(1, 3, 16, 24)).shape == (1, 21, 16, 24)
    # Two more classes: two more rows of the 1x1 classifier (640 inputs) and two more biases.
    assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNTS["MobileNetDenseASPP"] + 2 * 641


@pytest.mark.parametrize(
    "name, num_classes, message",
    [("DenseASPP9000", 19, "DenseASPP161"), ("MobileNetDenseASPP", 0, "1..255"), ("MobileNetDenseASPP", 256, "1..255")],
)
def test_build_model_rejects_bad_arguments(name, num_classes, message):
    with pytest.raises(DenseASPPError, match=message):
        build_model(name, num_classes)


def test_known_weights_are_described_once_and_found_where_they_live(tmp_path, monkeypatch):
    from denseaspp_ros.model import WEIGHTS, find_published_weights, read_checkpoint, resolve_weights

    demo = WEIGHTS["demo"]
    path = demo.locate()
    assert path is not None and resolve_weights("demo") == path
    header = read_checkpoint(path).metadata
    assert (header["model"], header["num_classes"]) == (demo.model, 19)
    assert abs(demo.record()["miou"] - demo.metrics["miou_held_out_synthetic"]) < 0.001  # the record agrees
    release = WEIGHTS["denseASPP161"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DENSEASPP_WEIGHTS_DIR", raising=False)
    assert find_published_weights(release.model) is None
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / release.filename).write_bytes(b"x")
    monkeypatch.setenv("DENSEASPP_WEIGHTS_DIR", str(tmp_path / "elsewhere"))
    assert find_published_weights("DenseASPP161") == tmp_path / "elsewhere" / release.filename
    assert find_published_weights("MobileNetDenseASPP") is None  # the demo file is not a published checkpoint


def test_the_normalisation_the_weights_expect_reaches_the_network_input(monkeypatch):
    """A known file carries its input statistics to the engine; any other file gets the release's
    (what `denseaspp train` trains with). The network input changes with them."""
    import dataclasses

    import numpy as np

    from denseaspp_ros.inference import load_engine
    from denseaspp_ros.model import RELEASE_NORMALIZATION, WEIGHTS, Normalization, normalization_of
    from denseaspp_ros.model import weights as registry

    grey = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    monkeypatch.setitem(registry.WEIGHTS, "demo", dataclasses.replace(WEIGHTS["demo"], normalization=grey))
    assert normalization_of(WEIGHTS["demo"].locate()) == grey
    assert normalization_of("some/other.safetensors") == RELEASE_NORMALIZATION == normalization_of(None)
    engine = load_engine("demo", "auto", device="cpu", precision="fp32")
    assert engine.normalize == grey
    image = np.full((8, 8, 3), 191, np.uint8)  # 191 / 255 ~ 0.749: (0.749 - 0.5) / 0.25 ~ 0.996
    np.testing.assert_allclose(engine.preprocess([image]).numpy(), (191 / 255 - 0.5) / 0.25, rtol=1e-5)
    with pytest.raises(DenseASPPError, match="3 positive deviations"):
        Normalization((0.5, 0.5, 0.5), (0.2, 0.0, 0.2))


@pytest.mark.parametrize("align_corners", [False, True])
def test_half_pixel_upsampling_puts_a_boundary_where_it_is_wherever_it_is(align_corners):
    """With circular padding a DenseASPP with a decoder is a function of content alone, so shifting
    the image by a multiple of the output stride shifts the logits alike, away from the borders
    (where the upsampling clamps), when it upsamples half-pixel. Corner-aligned upsampling stretches
    each map about its centre: the same content comes out somewhere else depending on where it is."""
    model = build_model("MobileNetDenseASPPDecoder")
    randomize_(model.state_dict(), seed=5)
    model.align_corners = align_corners
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.padding_mode = "circular"
    image, shift = _images(1, 3, 208, 256, seed=9), 16  # a dilation-24 pad wraps the stride-8 map once at most
    with torch.no_grad():
        logits = model(image)
        shifted = model(torch.roll(image, shifts=shift, dims=-1))
    scale = logits.abs().max()
    inner = (..., slice(24, -24), slice(24 + shift, -24))
    error = (shifted[inner] - torch.roll(logits, shifts=shift, dims=-1)[inner]).abs().max() / scale
    if align_corners:
        assert error > 1e-2
    else:
        assert error < RELATIVE_TOLERANCE

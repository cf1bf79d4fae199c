"""The one way to get an engine: weights resolved and checked, network identified, Segmenter built.

The node, every ``denseaspp`` command, evaluation, training's best-checkpoint check and the demo
all call ``load_engine``, so they share one set of rules: ``demo`` names the packaged weights, an
absent ``weights`` falls back to the release's checkpoint where the README puts it, a missing
file is an error that says what to do, and random weights only ever come with
``allow_untrained`` and a warning.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, DenseASPPError
from ..files import FileRefused, check_regular_file
from ..labels import LabelSet, get_label_set
from ..model import (
    AUTO_MODEL, CLI_OPTIONS, DEMO_WEIGHTS, OptionNames, build_model, find_published_weights, normalization_of,
    uncertainty_band_of,
)
from .backends import BackendSettings, EngineIdentity, TorchBackend, backend_precision, choose_backend, make_backend
from .segmenter import Segmenter, resolve_device


def _warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _say_on_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def load_engine(
    weights: str | Path | None,
    model: str = AUTO_MODEL,
    labels: str | LabelSet = "cityscapes",
    *,
    allow_untrained: bool = False,
    options: OptionNames = CLI_OPTIONS,
    backend: BackendSettings = BackendSettings(backend="torch"),
    warn: Callable[[str], None] = _warn_on_stderr,
    log: Callable[[str], None] = _say_on_stderr,
    **engine_options: Any,
) -> Segmenter:
    """A Segmenter for ``weights`` (a path, ``demo``, or None for the published checkpoint of ``model``).

    ``model`` ``auto`` identifies the network from the checkpoint; the class count always comes
    from ``labels``. ``backend`` says what runs the network (``auto`` picks, see
    ``backends.choose_backend``); an exported engine for a known ``input_size`` is built (or
    loaded from the cache) here, others at the first frame of each size. The Segmenter records
    what it runs: ``weights`` (None: random), ``model_name`` and ``label_set``. ``options`` names
    the caller's settings in errors and warnings (CLI flags or ROS parameters); ``engine_options``
    go to the Segmenter; ``log`` hears about exports.
    """
    label_set = labels if isinstance(labels, LabelSet) else get_label_set(labels)
    path = _resolve(weights, model, allow_untrained, options, warn)
    if path is None and model == AUTO_MODEL:
        raise CheckpointError(f"{options.model.format(AUTO_MODEL)} identifies the network from its weights: random weights need a named model")
    network = build_model(model, label_set.num_classes, path, options)
    normalize = normalization_of(path)
    device = resolve_device(engine_options.get("device", "auto"))
    chosen = choose_backend(backend.backend, device, untrained=path is None)
    precision = backend_precision(chosen, engine_options.get("precision", "auto"))  # checked for every backend
    if chosen == "torch":
        segmenter = Segmenter(network, own_model=True, normalize=normalize, **engine_options)
        if backend.compile != "none":
            segmenter.backend = TorchBackend(segmenter.model, backend.compile)
    else:
        if device.type != "cpu":
            raise DenseASPPError(
                f"the {chosen} backend runs its own engine: leave the device auto or cpu and choose the engine's "
                "device with openvino_device or providers"
            )
        identity = EngineIdentity.of(network, network.variant_name, normalize)
        exported = make_backend(chosen, network, identity, precision, backend, log, warn)
        # The Segmenter's own tensor work (normalising, argmax) stays on the CPU in float32.
        engine_options = {**engine_options, "device": "cpu", "precision": "fp32", "channels_last": False}
        segmenter = Segmenter(network, own_model=True, normalize=normalize, backend=exported, **engine_options)
        if segmenter.multiscale and len(segmenter.scales) > backend.max_engines:
            # Each frame runs every scale: with fewer engines kept, every frame would evict and rebuild.
            raise DenseASPPError(
                f"multi-scale runs {len(segmenter.scales)} input sizes a frame on an exported backend: "
                f"max_engines must be at least {len(segmenter.scales)} (it is {backend.max_engines})"
            )
        if segmenter.input_size is not None and not segmenter.multiscale:
            exported.prepare(segmenter.input_size)
    segmenter.weights, segmenter.label_set = path, label_set  # the Segmenter takes model_name from the network
    segmenter.uncertainty_band = uncertainty_band_of(path)
    return segmenter


def _resolve(
    weights: str | Path | None, model: str, allow_untrained: bool, options: OptionNames, warn: Callable[[str], None]
) -> Path | str | None:
    """The checkpoint to load, or None for random weights (only with ``allow_untrained``)."""
    if weights is not None and str(weights) != "":
        if str(weights) == DEMO_WEIGHTS.name:
            return weights
        try:
            check_regular_file(weights, options.weights.format("").strip())
            return weights
        except FileRefused as error:
            if Path(weights).exists():  # a folder, a FIFO, a device: not a checkpoint, whatever the fallback
                raise CheckpointError(str(error)) from None
            where = "" if Path(weights).is_absolute() else f" (relative to {Path.cwd()})"
            problem = (
                f"{options.weights.format(weights)} does not exist{where}: download the release's checkpoint "
                "there (see the README's Weights section) or give its absolute path"
            )
    else:
        published = find_published_weights(model)
        if published is not None:
            return published
        problem = f"no {options.weights.format('').strip()} given and no published {model} checkpoint under weights/"
    if not allow_untrained:
        raise CheckpointError(
            f"{problem}; {options.weights.format(DEMO_WEIGHTS.name)} runs the synthetic-world demo weights; "
            f"{options.allow_untrained} runs random weights (tests and benchmarks only)"
        )
    warn(f"{problem}: using random weights, the masks will be meaningless")
    return None

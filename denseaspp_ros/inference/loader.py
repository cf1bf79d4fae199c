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

from ..errors import CheckpointError
from ..labels import LabelSet, get_label_set
from ..model import (
    AUTO_MODEL, CLI_OPTIONS, DEMO_WEIGHTS, OptionNames, build_model, find_published_weights, normalization_of,
)
from .segmenter import Segmenter


def _warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def load_engine(
    weights: str | Path | None,
    model: str = AUTO_MODEL,
    labels: str | LabelSet = "cityscapes",
    *,
    allow_untrained: bool = False,
    options: OptionNames = CLI_OPTIONS,
    warn: Callable[[str], None] = _warn_on_stderr,
    **engine_options: object,
) -> Segmenter:
    """A Segmenter for ``weights`` (a path, ``demo``, or None for the published checkpoint of ``model``).

    ``model`` ``auto`` identifies the network from the checkpoint; the class count always comes
    from ``labels``. The Segmenter records what it runs: ``weights`` (None: random),
    ``model_name`` and ``label_set``. ``options`` names the caller's settings in errors and
    warnings (CLI flags or ROS parameters); ``engine_options`` go to the Segmenter.
    """
    label_set = labels if isinstance(labels, LabelSet) else get_label_set(labels)
    path = _resolve(weights, model, allow_untrained, options, warn)
    if path is None and model == AUTO_MODEL:
        raise CheckpointError(f"{options.model.format(AUTO_MODEL)} identifies the network from its weights: random weights need a named model")
    network = build_model(model, label_set.num_classes, path, options)
    segmenter = Segmenter(network, own_model=True, normalize=normalization_of(path), **engine_options)
    segmenter.weights, segmenter.label_set = path, label_set  # the Segmenter takes model_name from the network
    return segmenter


def _resolve(
    weights: str | Path | None, model: str, allow_untrained: bool, options: OptionNames, warn: Callable[[str], None]
) -> Path | str | None:
    """The checkpoint to load, or None for random weights (only with ``allow_untrained``)."""
    if weights is not None and str(weights) != "":
        if str(weights) == DEMO_WEIGHTS.name or Path(weights).is_file():
            return weights
        problem = (
            f"{options.weights.format(weights)} does not exist (relative to {Path.cwd()}): download the release's "
            "checkpoint there (see the README's Weights section) or give its absolute path"
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

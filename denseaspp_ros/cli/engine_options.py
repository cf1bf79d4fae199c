"""The engine options of the commands that segment (infer, bench, eval), and the engine they describe."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..declarations import add_flags, parameters
from ..inference import BACKENDS, BackendSettings, Segmenter, load_engine
from ..model import AUTO_MODEL
from ..serving.settings import NodeSettings

PRECISION_CHOICES = parameters(NodeSettings)["model.precision"].declaration.choices

DEFAULT_MODEL = "DenseASPP161"  # without --weights: the release's network, its checkpoint under weights/ or random


def _add_engine_options(parser: argparse.ArgumentParser, *, lists: bool = False) -> None:
    # The node's rule: auto (the network the weights identify) when weights are given.
    add_flags(parser, NodeSettings, ["model.name"], flags={"model.name": "--model"})
    parser.add_argument(
        "--weights", type=Path,
        help="checkpoint: original .pkl, project .pt or .safetensors; demo = the synthetic-world weights; "
        "default: the release's checkpoint under weights/, else random weights (with a warning)",
    )
    add_flags(parser, NodeSettings, ["model.labels", "model.device"])
    if lists:  # bench: several backends and precisions, timed side by side
        parser.add_argument("--backend", type=_choices(BACKENDS), default=["torch"], help="comma list of " + ", ".join(BACKENDS))
        parser.add_argument("--precision", type=_choices(PRECISION_CHOICES), default=["auto"],
                            help="comma list of " + ", ".join(PRECISION_CHOICES) + " (each backend runs those it can)")
        add_flags(parser, BackendSettings, [name for name in parameters(BackendSettings) if name != "backend"])
    else:
        add_flags(parser, NodeSettings, ["model.precision"])
        add_flags(parser, BackendSettings)
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC memory format (default; faster on CPUs and tensor cores)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    add_flags(parser, NodeSettings, ["max_image_pixels"])


def _choices(allowed: tuple[str, ...]):
    """An argparse type for a comma list of ``allowed`` words."""

    def parse(text: str) -> list[str]:
        words = [word.strip() for word in text.split(",") if word.strip()]
        unknown = [word for word in words if word not in allowed]
        if unknown or not words:
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(allowed)}, got {text!r}")
        return words

    return parse


def backend_settings(args: argparse.Namespace, backend: str | None = None) -> BackendSettings:
    """The backend flags as settings (``backend`` overrides --backend: bench runs several)."""
    values = {name: getattr(args, name) for name in parameters(BackendSettings) if name != "backend"}
    return BackendSettings(backend=backend or args.backend, **values)


def model_of(args: argparse.Namespace) -> str:
    """The network asked: --model, where auto without --weights means the release's network."""
    return DEFAULT_MODEL if args.model == AUTO_MODEL and args.weights is None else args.model


def _build_segmenter(
    args: argparse.Namespace, *, backend: str | None = None, precision: str | None = None, **options: object
) -> Segmenter:
    """The engine of the command line: without --weights (and no published checkpoint), random
    weights with a warning, so a benchmark or a smoke test needs no download; a --weights that
    does not exist is an error."""
    return load_engine(
        args.weights,
        model_of(args),
        args.labels,
        allow_untrained=args.weights is None,
        backend=backend_settings(args, backend),
        device=args.device,
        precision=precision or args.precision,
        channels_last=args.channels_last,
        max_batch=args.batch,
        max_image_pixels=args.max_image_pixels,
        **options,
    )

"""``denseaspp train``: the original recipe; every flag is also a key of the --config YAML file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..declarations import add_flags
from ..train.config import TrainConfig


def register(commands) -> None:
    train = commands.add_parser(
        "train", help="train or fine-tune (the original recipe; under torchrun: DistributedDataParallel)",
        description="Options left out take the --config file's value, else the recipe's default (see README).",
    )
    train.add_argument("--config", type=Path, help="YAML file of training options (flags override it)")
    add_flags(train, TrainConfig, unset=True)  # None: the --config file's value, else the recipe's
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..train import load_config, train

    # Every option but --config is a configuration key of the same name; None leaves the file's value.
    overrides = {name: value for name, value in vars(args).items() if name not in ("command", "run", "config")}
    result = train(load_config(args.config, overrides))
    print(f"trained to step {result['step']}; best validation mIoU {result['best_miou']:.4f}; see {result['output']}/")
    return 0

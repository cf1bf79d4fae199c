"""``denseaspp train``: the original recipe; every flag is also a key of the --config YAML file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..model import MODEL_NAMES
from .arguments import _count, _size


def register(commands) -> None:
    train = commands.add_parser(
        "train", help="train or fine-tune (the original recipe; under torchrun: DistributedDataParallel)",
        description="Options left out take the --config file's value, else the recipe's default (see README).",
    )
    train.add_argument("--config", type=Path, help="YAML file of training options (flags override it)")
    train.add_argument("--data", help="Cityscapes-layout folder (real or synthetic) or a ROS 2 bag")
    train.add_argument("--output", help="run folder: last.pt (resumable), best.pt, *.safetensors, log.csv/json, training.png")
    train.add_argument("--model", choices=MODEL_NAMES)
    train.add_argument("--labels", help="cityscapes or a label set YAML file")
    train.add_argument("--train-split", help="training split folder (default train)")
    train.add_argument("--val-split", help="validation split folder (default val)")
    train.add_argument("--val-data", help="validate on this folder or bag instead")
    train.add_argument("--image-topic", help="bag image topic (Image or CompressedImage)")
    train.add_argument("--label-topic", help="bag label topic (mono8, matched by stamp)")
    train.add_argument("--label-format", choices=("trainid", "labelid"))
    train.add_argument("--steps", type=_count(1))
    train.add_argument("--batch-size", type=_count(1), help="per process")
    train.add_argument("--lr", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--poly-power", type=float)
    train.add_argument("--crop", type=_size, help="HxW of the training crops (default 512x512)")
    train.add_argument("--scale", type=float, nargs=2, metavar=("LOW", "HIGH"), help="random scale range (default 0.5 2.0)")
    train.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None)
    train.add_argument("--init-checkpoint", help="fine-tune from a DenseASPP checkpoint (.pkl/.pt/.safetensors)")
    train.add_argument("--imagenet", help="start the backbone from torchvision ImageNet weights (.pth)")
    train.add_argument("--val-every", type=_count(0), help="steps between validations (0: none)")
    train.add_argument("--bn-batches", type=_count(0), help="batches re-estimating BatchNorm statistics (default 20; 0 off)")
    train.add_argument("--checkpoint-every", type=_count(1))
    train.add_argument("--log-every", type=_count(1))
    train.add_argument("--workers", type=_count(0), help="data loader processes")
    train.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision on CUDA")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--seed", type=_count(0))
    train.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                       help="continue OUTPUT/last.pt when it exists (default)")
    train.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..train import load_config, train

    # Every option but --config is a configuration key of the same name; None leaves the file's value.
    overrides = {name: value for name, value in vars(args).items() if name not in ("command", "run", "config")}
    result = train(load_config(args.config, overrides))
    print(f"trained to step {result['step']}; best validation mIoU {result['best_miou']:.4f}; see {result['output']}/")
    return 0

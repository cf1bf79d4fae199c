"""``denseaspp bag-recover``: make what an interrupted bag writer left readable."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands) -> None:
    recover = commands.add_parser("bag-recover", help="make what an interrupted bag writer left in PATH.partial readable")
    recover.add_argument("partial", type=Path, help="the PATH.partial folder (or PATH)")
    recover.set_defaults(run=run_bag_recover)


def run_bag_recover(args: argparse.Namespace) -> int:
    from ..bags import open_bag, recover_bag

    bag = recover_bag(args.partial)
    reader = open_bag(bag)
    try:
        count = reader.message_count
    finally:
        reader.close()
    print(f"{bag} is readable: the {count} messages written before its writer stopped (it is not the whole run)")
    return 0

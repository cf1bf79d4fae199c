"""``python -m denseaspp_ros.cli``: what torchrun starts in every process of a distributed ``train``."""

import sys

from . import main

if __name__ == "__main__":  # not when a spawned data loader worker imports this as __mp_main__
    sys.exit(main())

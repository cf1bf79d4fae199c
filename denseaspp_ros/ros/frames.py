"""The old import path of ``stamp_ns``, now in ``denseaspp_ros.serving.stamps``: kept only for
ros/demo.py and ros/replay.py, until they import it from there (then delete this module)."""

from ..serving.stamps import stamp_ns

__all__ = ["stamp_ns"]

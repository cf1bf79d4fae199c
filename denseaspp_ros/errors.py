"""Exceptions the package raises for bad input, so callers (CLI, node) can report them in one line."""


class DenseASPPError(Exception):
    """Base class: a problem with the user's input or configuration, not a bug."""


class CheckpointError(DenseASPPError):
    """A weights file is unreadable, unsafe, or does not fit the chosen network."""


class ImageError(DenseASPPError, ValueError):
    """An image has the wrong dtype, shape or channel count."""


class Cancelled(DenseASPPError):
    """Work stopped on request (a node shutting down) between forward passes."""


class LabelSetError(DenseASPPError, ValueError):
    """A custom label set file is missing or malformed."""

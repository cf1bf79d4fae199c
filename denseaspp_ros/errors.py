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


class MissingExtra(DenseASPPError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency, or fail with one line saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtra(
            f"{purpose} needs {module.split('.')[0]}, which is not installed ({error}): "
            f"pip install 'denseaspp_ros[{extra}]' (or pip install -e '.[{extra}]' in a clone)"
        ) from None

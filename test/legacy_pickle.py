"""Write checkpoints the way the original DenseASPP release (PyTorch 0.3.1, Python 2) wrote them.

The release's ``.pkl`` files are legacy (pre-zip) ``torch.save`` output of an ``OrderedDict``:
pickle protocol 2, keys as Python 2 ``str`` (``SHORT_BINSTRING``/``BINSTRING`` opcodes, not
``BINUNICODE``), tensors rebuilt by 0.3.1's ``torch._utils._rebuild_tensor(storage, offset,
size, stride)`` rather than today's ``_rebuild_tensor_v2``, and, for weights trained on a GPU,
storages of type ``torch.cuda.FloatStorage`` at location ``cuda:0``. Modern ``torch.save`` can
produce none of those details by itself, so this module drives its legacy writer with a
pure-Python pickler that emits them.
"""

from __future__ import annotations

import collections
import pickle
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch


class _Python2Pickler(pickle._Pickler):
    """Protocol-2 pickler producing what Python 2's ``cPickle`` and PyTorch 0.3.1 wrote."""

    dispatch = pickle._Pickler.dispatch.copy()
    # Set per file by ``write_original_checkpoint``; torch subclasses this class for the
    # object pickle, so a class attribute is the one place both its pickler and ours see.
    on_gpu = False

    def save_py2_str(self, obj: str) -> None:
        # Python 2's str was bytes: SHORT_BINSTRING below 256 bytes, BINSTRING above.
        text = "cuda:0" if self.on_gpu and obj == "cpu" else obj  # the storage location tag
        encoded = text.encode("ascii")
        if len(encoded) < 256:
            self.write(pickle.SHORT_BINSTRING + struct.pack("<B", len(encoded)) + encoded)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(encoded)) + encoded)
        self.memoize(obj)

    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        if self.on_gpu and isinstance(obj, type) and obj.__module__ == "torch" and obj.__name__.endswith("Storage"):
            self.write(pickle.GLOBAL + b"torch.cuda\n" + obj.__name__.encode("ascii") + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TypedStorage is deprecated, and exactly what 0.3.1 pickled
                storage = torch.storage.TypedStorage(
                    wrap_storage=obj.untyped_storage(), dtype=obj.dtype, _internal=True
                )
            return torch._utils._rebuild_tensor, (storage, obj.storage_offset(), tuple(obj.shape), obj.stride())
        if isinstance(obj, collections.OrderedDict):
            # Python 2.7's OrderedDict.__reduce__: the class called with a list of [key, value] lists.
            return collections.OrderedDict, ([[key, value] for key, value in obj.items()],)
        return NotImplemented


class _Python2PickleModule:
    """The ``pickle_module`` interface ``torch.save`` uses: ``Pickler`` and ``dump``."""

    Pickler = _Python2Pickler

    @staticmethod
    def dump(obj, file, protocol=2) -> None:
        _Python2Pickler(file, protocol).dump(obj)


def write_original_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str | Path, on_gpu: bool = False) -> None:
    """Write ``state_dict`` as the release wrote its checkpoints; ``on_gpu`` marks storages as CUDA ones."""
    tensors = collections.OrderedDict((key, value.detach().cpu().contiguous()) for key, value in state_dict.items())
    _Python2Pickler.on_gpu = on_gpu
    try:
        torch.save(
            tensors,
            path,
            pickle_module=_Python2PickleModule,
            pickle_protocol=2,
            _use_new_zipfile_serialization=False,
        )
    finally:
        _Python2Pickler.on_gpu = False

"""Checkpoint helpers: crash-safe ``torch.save`` and tolerant loading of training states.

BasicSR writes checkpoints straight to their final name, so a kill during ``torch.save``
leaves a truncated ``.pth``/``.state`` that ``--auto_resume`` then picks and fails on.
Here a file is written to a temporary name in the same folder (same file system, so the
rename is atomic), flushed to disk and only then ``os.replace``d onto the final name.
"""

import contextlib
import os
import tempfile
from typing import Any

import torch

TMP_SUFFIX = '.tmp'


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file under ``path``.

    On any error (including KeyboardInterrupt) the temporary file is removed, the
    previous content of ``path`` (if any) is untouched, and the error propagates.

    Args:
        obj: Anything ``torch.save`` accepts.
        path (str): Final file name; its folder must exist.
    """
    folder, name = os.path.split(os.path.abspath(path))
    # A hidden name with a suffix no scanner looks for ('.pth', '.state'), so a stale
    # temporary file left by a SIGKILL is never mistaken for a checkpoint.
    fd, tmp_path = tempfile.mkstemp(prefix=f'.{name}.', suffix=TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp_path)
        raise


def load_checkpoint_cpu(path: str) -> Any:
    """Load a checkpoint onto the CPU (BasicSR's loaders map onto the current CUDA device).

    ``weights_only=True``: tensors, containers and the few types BasicSR states hold only,
    so a state file cannot run code when loaded.
    """
    return torch.load(path, map_location='cpu', weights_only=True)


def try_load_checkpoint(path: str) -> Any | None:
    """Load ``path`` on the CPU, or return None when it is missing, truncated or unreadable."""
    try:
        return load_checkpoint_cpu(path)
    except Exception:  # a truncated zip raises RuntimeError, a foreign file UnpicklingError ...
        return None

"""Checkpoint helpers: crash-safe ``torch.save`` and tolerant loading of training states.

BasicSR writes checkpoints straight to their final name, so a kill during ``torch.save``
leaves a truncated ``.pth``/``.state`` that ``--auto_resume`` then picks and fails on.
Here every checkpoint goes through :func:`gaussiansr_arch.utils.atomic.atomic_path`.
"""

from typing import Any

import torch

from gaussiansr_arch.utils.atomic import TMP_SUFFIX, atomic_path  # noqa: F401  (TMP_SUFFIX: re-export)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file under ``path``.

    On any error (including KeyboardInterrupt) the temporary file is removed, the
    previous content of ``path`` (if any) is untouched, and the error propagates.

    Args:
        obj: Anything ``torch.save`` accepts.
        path (str): Final file name.
    """
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        torch.save(obj, f)


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

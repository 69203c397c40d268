"""Outputs of the tools, as a library (no argument parsing, no exits): names of scales in file names, and
the checks run before any slow work (an output that exists, an output folder that cannot be made), with
one-line :class:`~gaussiansr_arch.toolkit.errors.ToolError` messages. ``tools/common.py`` re-exports them
for the command lines."""

import os

from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.utils import atomic


def format_scale(scale) -> str:
    """Name a scale for file names: 4.0 -> '4', 3.7 -> '3.7', (2.5, 3) -> '2.5x3'."""
    if isinstance(scale, (tuple, list)):
        return 'x'.join(format_scale(s) for s in scale)
    return f'{float(scale):g}'


def check_output_free(path: str, force: bool) -> None:
    """Raise ToolError if ``path`` is a folder, or exists and ``force`` is not set."""
    if os.path.isdir(path):
        raise ToolError(f'output {path} is a folder')
    if os.path.exists(path) and not force:
        raise ToolError(f'output {path} exists; pass --force to overwrite it')


def check_output_dir(folder: str, what: str = 'output folder') -> None:
    """Raise ToolError unless ``folder`` is a writable folder or can be created; creates nothing.

    Run before the slow work, so that an output folder given as an existing file, or one under a
    file or in a folder without write permission, fails at once with one line naming it.
    """
    folder = folder or '.'
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            raise ToolError(f'{what} {folder} is an existing file, not a folder')
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ToolError(f'{what} {folder} is not writable (permission denied)')
        return
    parent = os.path.dirname(os.path.abspath(folder))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ToolError(f'{what} {folder} cannot be created: {parent} is a file, not a folder')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ToolError(f'{what} {folder} cannot be created: no write permission in {parent}')


def os_error_reason(err: OSError) -> str:
    """``'No space left on device'``, plus the file at fault when it is not the temporary file."""
    reason = err.strerror or str(err) or type(err).__name__
    culprit = os.fsdecode(err.filename) if err.filename is not None else ''
    if culprit and not culprit.endswith(atomic.TMP_SUFFIX):
        reason += f': {culprit}'
    return reason

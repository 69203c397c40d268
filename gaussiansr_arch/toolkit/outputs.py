"""Outputs of the tools, as a library (no argument parsing, no exits): names of scales in file names, the
checks run before any slow work (an output that exists, an output folder that cannot be made) and the
atomic writers of text, images and figures, with one-line :class:`~gaussiansr_arch.toolkit.errors.ToolError`
messages naming the file at fault. ``tools/common.py`` re-exports them
for the command lines."""

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.toolkit.plotting import pyplot
from gaussiansr_arch.utils import atomic
from gaussiansr_arch.utils.image_io import write_image_atomic


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


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into a one-line ToolError naming it.

    The atomic writers have removed their temporary file (and the folders they created) by then:
    ``path`` keeps its previous content or stays absent.
    """
    try:
        yield
    except OSError as err:
        raise ToolError(f'cannot write {path}: {os_error_reason(err)}') from None


def write_text_atomic(path: str, text: str) -> None:
    """Write a UTF-8 text file atomically; ToolError naming it when that fails."""
    with writing(path):
        atomic.write_text_atomic(path, text)


def save_image(path: str, img: np.ndarray) -> None:
    """Write an RGB uint8 image atomically (the extension picks the format); ToolError naming it when that fails."""
    with writing(path):
        write_image_atomic(path, img)


def save_figure_atomic(fig, path: str, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically and close it; ToolError naming it when that fails."""
    try:
        with writing(path), atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches='tight', format='png')
    finally:
        pyplot().close(fig)

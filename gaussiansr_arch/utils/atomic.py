"""Atomic file writes: a file appears under its final name complete, or not at all.

Every writer of the package (checkpoints, images, tables, figures, option files) goes
through :func:`atomic_path`: write to a hidden temporary name in the same folder (same file
system, so the rename is atomic), flush it to disk, then ``os.replace`` it onto the final
name. A crash or a kill at any point leaves the previous file (if any) untouched.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator

# Hidden name + a suffix no scanner looks for ('.pth', '.state', '.png'), so a temporary file
# left by a SIGKILL is never mistaken for a checkpoint or an image.
TMP_SUFFIX = '.tmp'


def _default_file_mode() -> int:
    """0o666 minus the umask: the mode ``open()`` would give (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it onto ``path``.

    Missing folders are created. On any error (including KeyboardInterrupt) the temporary file
    is removed and the error propagates.
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix=TMP_SUFFIX, dir=folder)
    os.close(fd)
    os.chmod(tmp, _default_file_mode())
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def write_text_atomic(path: str, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_bytes_atomic(path, text.encode('utf-8'))

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


def make_folders(folder: str) -> list[str]:
    """``os.makedirs(folder, exist_ok=True)``; returns the folders it created, outermost first.

    If creating one fails, those created so far are removed again before the error propagates.
    """
    missing = []
    current = folder
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    missing.reverse()
    try:
        os.makedirs(folder, exist_ok=True)
    except BaseException:
        remove_folders(missing)
        raise
    return missing


def remove_folders(created: list[str]) -> None:
    """Remove the (empty) folders of ``created``, innermost first; anything else stays."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it onto ``path``.

    Missing folders are created. On any error (including KeyboardInterrupt, a full disk or a
    folder that cannot be created) the temporary file is removed, so are the folders created for
    it, ``path`` keeps its previous content (or stays absent), and the error propagates.
    """
    folder, name = os.path.split(os.path.abspath(path))
    created = make_folders(folder)
    tmp, done = None, False
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix=TMP_SUFFIX, dir=folder)
        os.close(fd)
        os.chmod(tmp, _default_file_mode())
        yield tmp
        # Again: writers that recreate the file (safetensors' save_file) leave it mode 0600.
        os.chmod(tmp, _default_file_mode())
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        done = True
    finally:
        if not done:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
            remove_folders(created)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def write_text_atomic(path: str, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    write_bytes_atomic(path, text.encode('utf-8'))

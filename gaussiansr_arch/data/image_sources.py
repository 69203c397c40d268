"""Where the datasets' images come from: folders or LMDBs (with their meta_info), through BasicSR's FileClient.

An :class:`ImageIndex` lists one source's images (names from ``meta_info.txt`` or the folder,
with a clear error for a missing folder, file or LMDB key); LMDB environments are opened once
per process and path (:func:`shared_lmdb_env`) and shared by every dataset and tool reading them.
"""

import os
import os.path as osp
import re

import numpy as np
from basicsr.utils import FileClient
from basicsr.utils.file_client import LmdbBackend

from gaussiansr_arch.utils.image_io import IMAGE_EXTENSIONS, ImageReadError, decode_image


class LmdbKeyError(KeyError):
    """An LMDB key is missing. Unlike KeyError, prints its message as is (one line, no quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def _read_meta_info(meta_file: str) -> list:
    """Image names (first field of each non-empty line) of a BasicSR meta_info.txt."""
    if not osp.isfile(meta_file):
        raise FileNotFoundError(f'meta_info file {meta_file} does not exist')
    with open(meta_file) as f:
        names = [line.split(' ')[0].strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f'meta_info file {meta_file} lists no images')
    return names


# One read-only environment per LMDB and process. py-lmdb refuses to open a path twice in a process,
# which several datasets sharing an LMDB (e.g. one HR LMDB for x2/x3/x4 validation sets) would do.
_LMDB_ENVS = {}


def _lmdb_identity(path: str) -> tuple:
    st = os.stat(osp.join(path, 'data.mdb'))
    return st.st_dev, st.st_ino


def shared_lmdb_env(path: str, **kwargs):
    """A read-only LMDB environment for ``path`` shared within this process.

    Reopened when the LMDB was replaced on disk (new inode) or in a forked child. If a child
    inherited the parent's open environment, py-lmdb will not open the path again; the inherited
    read-only, lock-free mapping is then reused (it stays valid for reads).
    """
    import lmdb

    key = osp.realpath(path)
    ident = _lmdb_identity(key)
    entry = _LMDB_ENVS.get(key)
    if entry is not None and entry[0] == os.getpid() and entry[1] == ident:
        return entry[2]
    if entry is not None and entry[0] == os.getpid():
        entry[2].close()  # replaced on disk: the old mapping is stale
        entry = None
    opts = {'readonly': True, 'lock': False, 'readahead': False}
    opts.update(kwargs)
    try:
        env = lmdb.open(key, **opts)
    except lmdb.Error:
        if entry is None or entry[1] != ident:
            raise
        env = entry[2]
    _LMDB_ENVS[key] = (os.getpid(), ident, env)
    return env


def _lmdb_keys(lmdb_path: str) -> set:
    """All keys of an LMDB. Uses a temporary environment (closed again so that DataLoader workers
    forked later can open the LMDB themselves) unless this process already holds one."""
    import lmdb

    key = osp.realpath(lmdb_path)
    entry = _LMDB_ENVS.get(key)
    shared = entry is not None and entry[0] == os.getpid() and entry[1] == _lmdb_identity(key)
    env = shared_lmdb_env(key) if shared else lmdb.open(key, readonly=True, lock=False, readahead=False)
    try:
        with env.begin(write=False) as txn:
            return {bytes(k).decode('ascii', 'replace') for k in txn.cursor().iternext(values=False)}
    finally:
        if not shared:
            env.close()


class _SharedLmdbBackend(LmdbBackend):
    """basicsr's LmdbBackend, but with environments from :func:`shared_lmdb_env`."""

    def __init__(self, db_paths, client_keys, **kwargs):  # noqa: B027  (no super(): it would open again)
        self.db_paths = [str(p) for p in db_paths]
        self._client = {k: shared_lmdb_env(p, **kwargs) for k, p in zip(client_keys, self.db_paths)}


class ImageIndex:
    """The images of one data root: names, keys/paths and a one-line-error reader.

    Args:
        root (str): Image folder (disk) or ``*.lmdb`` folder (lmdb).
        backend (str): ``'disk'`` or ``'lmdb'``.
        meta_info_file (str | None): Restrict/ordering list; for lmdb defaults to ``root/meta_info.txt``.
        role (str): ``'gt'`` or ``'lq'``, used in messages and as the LMDB client key.
    """

    def __init__(self, root: str, backend: str, meta_info_file: str | None, role: str):
        self.root, self.backend, self.role = str(root), backend, role
        if not osp.isdir(self.root):
            raise FileNotFoundError(f'dataroot_{role} {self.root} does not exist or is not a folder')
        is_lmdb = osp.isfile(osp.join(self.root, 'data.mdb'))
        if backend == 'lmdb':
            if not is_lmdb:
                raise ValueError(
                    f'dataroot_{role} {self.root} is not an LMDB (no data.mdb); '
                    'for an image folder use io_backend: {type: disk}'
                )
            if re.search(r'\.tmp-\d+$', self.root.rstrip('/')):
                # the prepare tools build into <out>.tmp-<pid> and rename it when complete
                raise ValueError(
                    f'dataroot_{role} {self.root} is an unfinished LMDB (a gaussiansr-prepare-* '
                    'build still running or killed); use the final folder once the tool is done'
                )
            meta = meta_info_file or osp.join(self.root, 'meta_info.txt')
            if not osp.isfile(meta):
                raise FileNotFoundError(
                    f'dataroot_{role} {self.root}: meta_info file {meta} does not exist '
                    '(an LMDB not made by BasicSR/gaussiansr-prepare-*, or not finished)'
                )
            names = _read_meta_info(meta)
            # the LMDB key is the file name without extension (basicsr's convention)
            self.stems = [osp.splitext(n)[0] for n in names]
            present = _lmdb_keys(self.root)
            missing = [k for k in self.stems if k not in present]
            if missing:
                more = ' ...' if len(missing) > 3 else ''
                raise LmdbKeyError(
                    f'key(s) {missing[:3]}{more} listed in {meta} are absent from LMDB '
                    f'{self.root} ({len(missing)} missing)'
                )
            self.locations = list(self.stems)
        elif backend == 'disk':
            if is_lmdb:
                raise ValueError(f'dataroot_{role} {self.root} is an LMDB; use io_backend: {{type: lmdb}}')
            if meta_info_file:
                names = _read_meta_info(meta_info_file)
                absent = [n for n in names if not osp.isfile(osp.join(self.root, n))]
                if absent:
                    raise FileNotFoundError(
                        f'{len(absent)} file(s) listed in {meta_info_file} are absent '
                        f'from {self.root}, e.g. {absent[:3]}'
                    )
            else:
                names = sorted(
                    n
                    for n in os.listdir(self.root)
                    if n.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(self.root, n))
                )
            self.stems = [osp.splitext(osp.basename(n))[0] for n in names]
            self.locations = [osp.join(self.root, n) for n in names]
        else:
            raise ValueError(f"io_backend type must be 'disk' or 'lmdb', got {backend!r}")
        if not self.locations:
            raise ValueError(f'dataroot_{role} {self.root} contains no images ({", ".join(IMAGE_EXTENSIONS)})')
        self.by_stem = dict(zip(self.stems, range(len(self.stems))))

    def name(self, i: int) -> str:
        """Path-like name of image ``i``: its file, or ``<lmdb>/<key>`` (basename = key, as SRModel
        derives saved-image names from the basename)."""
        return self.locations[i] if self.backend == 'disk' else osp.join(self.root, self.locations[i])

    def describe(self, i: int) -> str:
        """Name of image ``i`` for error messages."""
        return self.locations[i] if self.backend == 'disk' else f'LMDB {self.root} key {self.locations[i]!r}'

    def read(self, client: FileClient, i: int) -> np.ndarray:
        """Image ``i`` as HxWx3 float32 RGB in [0, 1]."""
        if self.backend == 'lmdb':
            content = client.get(self.locations[i], self.role)
            if content is None:
                raise LmdbKeyError(f'key {self.locations[i]!r} is missing from LMDB {self.root}')
        else:
            content = _read_disk(client, self.locations[i])
        return decode_image(content, self.describe(i), float32=True)


def _read_disk(client: FileClient, path: str) -> bytes:
    try:
        return client.get(path)
    except OSError as err:
        raise ImageReadError(f'cannot read image {path}: {err.strerror or err}') from None


def make_file_client(io_opt: dict, indexes: list) -> FileClient:
    io_opt = dict(io_opt)
    backend = io_opt.pop('type')
    if backend != 'lmdb':
        return FileClient(backend, **io_opt)
    client = FileClient('disk')  # same FileClient interface, LMDB backend with shared environments
    client.backend = 'lmdb'
    client.client = _SharedLmdbBackend([ix.root for ix in indexes], [ix.role for ix in indexes], **io_opt)
    return client


def backend_of(opt: dict, dataset_type: str) -> str:
    io_opt = opt.get('io_backend') or {'type': 'disk'}
    if not isinstance(io_opt, dict) or 'type' not in io_opt:
        raise ValueError(f'{dataset_type}: io_backend must be a dict like {{type: disk}}, got {io_opt!r}')
    return io_opt['type']

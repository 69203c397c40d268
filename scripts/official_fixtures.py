"""What the golden-fixture scripts of the LIIF-family methods share (scripts/make_{lte,itsrn,aliif}_fixtures.py).

Each script imports an official checkout (nothing of it is copied), builds a small official model
with random weights and writes ``official_state.safetensors`` and ``cases.safetensors`` for
``tests/golden_fixtures.py``. This module holds the parts that are the same for all three: the
command line, running the official code on a CPU-only machine without its training-only imports,
LIIF's whole-image queries, random queries, and writing the two files.
"""

import argparse
import importlib
import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]


def parse_args(doc: str, repository: str, commit: str, out_dir: Path, argv=None) -> argparse.Namespace:
    """``--official-code`` (a checkout of ``repository`` at ``commit``) and ``--out``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('--official-code', type=Path, required=True, help=f'checkout of {repository} at {commit}')
    parser.add_argument('--out', type=Path, default=out_dir)
    return parser.parse_args(argv)


def prepare_cpu_import(code_dir: Path) -> None:
    """Make ``code_dir`` importable on a CPU-only machine: on its path, ``Tensor.cuda`` the identity
    without CUDA (the official models call it on coordinates), and ``tensorboardX`` (imported at the
    top of the official ``utils.py``, whose ``make_coord`` alone is used) a stub when absent."""
    sys.path.insert(0, str(code_dir))
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *a, **k: self
    if importlib.util.find_spec('tensorboardX') is None:
        stub = types.ModuleType('tensorboardX')
        stub.SummaryWriter = None
        sys.modules['tensorboardX'] = stub


def import_registry_package(checkout: Path, modules: tuple[str, ...]):
    """LIIF's ``models`` package with only ``modules`` registered (its ``__init__`` would import every
    model and their dependencies), and the official ``utils`` module."""
    prepare_cpu_import(checkout)
    package = types.ModuleType('models')
    package.__path__ = [str(checkout / 'models')]
    sys.modules['models'] = package
    registry = importlib.import_module('models.models')
    package.register, package.make = registry.register, registry.make
    for name in modules:
        importlib.import_module(f'models.{name}')
    return package, importlib.import_module('utils')


def whole_image_queries(make_coord, size, factor: float = 2.0, batch: int = 1):
    """The official whole-image queries of an output ``size``: ``make_coord`` and the cell
    ``(factor / H, factor / W)`` per query (LIIF's cell: factor 2; ITSRN's scale: 1)."""
    coord = make_coord(size).unsqueeze(0).expand(batch, -1, -1)
    cell = torch.ones_like(coord)
    cell[:, :, 0] *= factor / size[0]
    cell[:, :, 1] *= factor / size[1]
    return coord, cell


def random_queries(generator, batch: int, lr_size, count: int, scale: float, factor: float = 2.0):
    """``count`` random queries per image (a few beyond the border) with the cell of ``scale``."""
    coord = (torch.rand(batch, count, 2, generator=generator) * 2 - 1) * 1.02
    cell = torch.tensor([factor / (lr_size[0] * scale), factor / (lr_size[1] * scale)]).expand(batch, count, 2)
    return coord, cell


def write_fixtures(out: Path, source: str, state: dict, spec: dict, tensors: dict, cases: dict) -> None:
    """Write ``official_state.safetensors`` (``state``, ``spec`` in its metadata) and
    ``cases.safetensors`` (``tensors``, ``cases`` in its metadata) into ``out``; print what was written."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {'source': source, 'torch': torch.__version__}
    state = {k: v.contiguous() for k, v in state.items()}
    save_file(state, out / 'official_state.safetensors', {**meta, 'model': json.dumps(spec)})
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, out / 'cases.safetensors', {**meta, 'cases': json.dumps(cases)})
    for path in sorted(out.glob('*.safetensors')):
        print(f'wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size} bytes')

"""What the parity tests of the LIIF-family methods share (tests/test_{lte,itsrn,aliif}.py).

Each method has a golden fixture in ``tests/fixtures/<method>/`` (``scripts/make_<method>_fixtures.py``
wrote it from the official code): ``official_state.safetensors`` (a small official model's state
dict, random weights; its metadata ``model`` is the official ``{name, args}``) and
``cases.safetensors`` (inputs and official outputs; metadata ``cases``: per case, ``out_size`` or
null). :class:`GoldenFixture` reads them and writes the state in the official checkpoint layout;
:func:`module_fixtures` gives a test module its ``converted`` and ``cases`` fixtures;
:func:`parity_diffs` runs our converted model on a case; :class:`ConverterCli` runs a
``gaussiansr-convert-*`` tool and checks the errors and ``--force`` every converter shares.
"""

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from gaussiansr_arch.archs.coordinates import make_cell, make_coord

FIXTURES = Path(__file__).resolve().parent / 'fixtures'


def metadata(path: Path) -> dict:
    with safe_open(str(path), 'pt') as f:
        return f.metadata()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@dataclass(frozen=True)
class GoldenFixture:
    """The golden fixture of one method (``tests/fixtures/<method>``).

    Attributes:
        method (str): The fixture folder's name.
        float32 (bool): Give the state in float32 (A-LIIF's is stored as the float16 values the
            official model ran with).
    """

    method: str
    float32: bool = False

    @property
    def folder(self) -> Path:
        return FIXTURES / self.method

    @cached_property
    def spec(self) -> dict:
        """The official ``{name, args}`` of the fixture's model."""
        return json.loads(metadata(self.folder / 'official_state.safetensors')['model'])

    @cached_property
    def case_sizes(self) -> dict:
        """{case: out_size or None} (None: random queries, no whole image)."""
        cases = json.loads(metadata(self.folder / 'cases.safetensors')['cases'])
        return {case: info['out_size'] for case, info in cases.items()}

    def state(self) -> dict:
        state = load_file(self.folder / 'official_state.safetensors')
        return {k: v.float() for k, v in state.items()} if self.float32 else state

    def cases(self) -> dict:
        return load_file(self.folder / 'cases.safetensors')

    def official_checkpoint(
        self,
        tmp_path: Path,
        sd: dict | None = None,
        name: str | None = None,
        args: dict | None = None,
        file: str = 'official.pth',
        **extra_args,
    ) -> Path:
        """The state (``sd``: another one) in the official layout ``{'model': {name, args, sd}, 'epoch'}``.

        ``name`` / ``args`` replace the fixture's; ``extra_args`` update its args.
        """
        model = {
            'name': self.spec['name'] if name is None else name,
            'args': {**(self.spec['args'] if args is None else args), **extra_args},
            'sd': self.state() if sd is None else sd,
        }
        path = tmp_path / file
        torch.save({'model': model, 'epoch': 1000}, path)
        return path


def module_fixtures(fixture: GoldenFixture, converter: ModuleType, output_name: str) -> tuple:
    """The pytest fixtures ``converted`` (the fixture's official checkpoint converted once per module by
    the converter's command line, as a user runs it) and ``cases``; assign them to those names."""

    @pytest.fixture(scope='module')
    def converted(tmp_path_factory) -> Path:
        tmp = tmp_path_factory.mktemp(fixture.method)
        dst = tmp / output_name
        assert converter.main([str(fixture.official_checkpoint(tmp)), str(dst)]) == 0
        return dst

    @pytest.fixture(scope='module')
    def cases() -> dict:
        return fixture.cases()

    return converted, cases


def parity_diffs(net, case: str, cases: dict, out_size, chunk_size: int = 500, want=None) -> dict:
    """Max |diff| of our ``net`` against the official output of ``case`` (``want``: another official
    output of the same inputs): at the official queries and, for a whole-image case (``out_size``),
    by ``upscale``."""
    lr, coord, cell = (cases[f'{case}.{k}'] for k in ('lr', 'coord', 'cell'))
    want = cases[f'{case}.sr'] if want is None else want
    with torch.no_grad():
        diffs = {'query': max_diff(net(lr, coord, cell), want)}
        if out_size is not None:
            assert torch.equal(make_coord(out_size), coord[0])
            assert torch.equal(make_cell(out_size, len(coord[0])), cell[0])
            image = net.upscale(lr, size=out_size, chunk_size=chunk_size).flatten(2).transpose(1, 2)
            diffs['upscale'] = max_diff(image, want)
    return diffs


@dataclass(frozen=True)
class ConverterCli:
    """A converter's command line (``module.main``) as a user runs it.

    Attributes:
        module (ModuleType): ``gaussiansr_arch.tools.convert_<method>``.
        prog (str): Its program name, which starts every error line.
        label (str): The checkpoint kind its errors name (``'not an official <label> checkpoint'``).
    """

    module: ModuleType
    prog: str
    label: str

    def exit_code(self, argv: list[str]) -> int:
        with pytest.raises(SystemExit) as info:
            self.module.main(argv)
        return info.value.code

    def error_line(self, capsys) -> str:
        """The one stderr line of the last run (and that it is one line, the tool's)."""
        err = capsys.readouterr().err.strip()
        assert '\n' not in err and err.startswith(f'{self.prog}: error:')
        return err

    def fails(self, capsys, src: Path, dst: Path) -> str:
        """Run on ``src`` -> ``dst``, expecting a user error (exit 2); its line."""
        assert self.exit_code([str(src), str(dst)]) == 2
        return self.error_line(capsys)

    def check_input_errors(self, tmp_path: Path, capsys, dst: Path) -> None:
        """A missing file, BasicSR weights and a non-checkpoint: one line each, exit 2, nothing written."""
        assert 'does not exist' in self.fails(capsys, tmp_path / 'missing.pth', dst)
        basicsr_file = tmp_path / 'basicsr.pth'
        torch.save({'params': {'conv.weight': torch.zeros(1)}}, basicsr_file)
        assert f'not an official {self.label} checkpoint' in self.fails(capsys, basicsr_file, dst)
        garbage = tmp_path / 'garbage.pth'
        garbage.write_bytes(b'not a checkpoint')
        assert 'cannot be loaded' in self.fails(capsys, garbage, dst)
        assert not dst.exists()

    def check_force(self, capsys, src: Path, dst: Path) -> None:
        """An existing output is refused (untouched) unless ``--force``; no temporary file is left."""
        assert self.module.main([str(src), str(dst)]) == 0
        before = dst.read_bytes()
        capsys.readouterr()
        assert '--force' in self.fails(capsys, src, dst) and dst.read_bytes() == before
        assert self.module.main([str(src), str(dst), '--force']) == 0
        assert [p.name for p in dst.parent.iterdir()] == [dst.name]

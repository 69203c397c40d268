"""Convert weights between ``.pth`` and ``.safetensors``, recording the arch options in the file.

    gaussiansr-convert-weights net_g_1000000.pth gaussiansr_edsr.safetensors --opt train_gaussiansr.yml
    gaussiansr-convert-weights gaussiansr_edsr.safetensors gaussiansr_edsr.pth
    gaussiansr-convert-weights net_g_5000.pth net_g_5000_params.safetensors --param-key params

One set of parameters goes into the output: ``--param-key``, else ``params_ema`` when the input
has it, else ``params``, else the input itself when it is a bare state dict; the output records it
under that key (``params`` for a bare state dict). The arch options (``network_g``) come from
``--opt`` (a BasicSR YAML) when given, else from the input when it records them; the parameters
are then checked to load strictly into that arch before anything is written. Without either, the
file is converted with a warning: the tools will need ``--opt`` to use it
(``gaussiansr_arch.load_model`` guesses the arch from the shapes).

Either format can be the input and the output (``.pth`` -> ``.pth`` picks one set and records
``network_g``). Both are written by :func:`gaussiansr_arch.utils.weights.save_weights`: atomic,
contiguous CPU tensors, an existing output replaced only with ``--force``. Errors are one line on
stderr with exit status 2, as for every tool (:mod:`gaussiansr_arch.tools.common`).
"""

import argparse
import os
import sys

from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    check_output_dir,
    check_output_free,
    load_yaml,
    writing,
)
from gaussiansr_arch.utils.weights import (
    DEFAULT_PARAM_KEYS,
    TORCH_SUFFIXES,
    build_arch,
    check_fits,
    is_safetensors,
    pick_state_dict,
    picked_key,
    read_weights,
    recorded_network_opt,
    save_weights,
)

PROG = 'gaussiansr-convert-weights'
FORMATS = ('.safetensors', *TORCH_SUFFIXES)


def _check_format(path: str, what: str) -> None:
    if not is_safetensors(path) and not path.lower().endswith(TORCH_SUFFIXES):
        raise ToolError(f'{what} {path}: unknown format; name it {", ".join(FORMATS)}')


def convert(src: str, dst: str, param_key: str | None = None, opt_path: str | None = None, force: bool = False) -> dict:
    """Convert ``src`` to ``dst`` (formats told by the names); returns what was written.

    Returns:
        dict: ``{'param_key': ..., 'network_g': dict | None, 'tensors': int, 'warning': str | None}``.

    Raises:
        ToolError, WeightsError: one line; ``dst`` is then untouched (nothing partial is written).
    """
    _check_format(src, 'input')
    _check_format(dst, 'output')
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise ToolError(f'output {dst} is the input file; give another name')
    check_output_free(dst, force)
    check_output_dir(os.path.dirname(dst))
    network_opt, source = None, None
    if opt_path is not None:
        opt = load_yaml(opt_path)
        if 'network_g' not in opt:
            raise ToolError(f'options file {opt_path}: no network_g key')
        network_opt, source = opt['network_g'], f'options file {opt_path}'
    ckpt = read_weights(src, 'input weights file')
    state = pick_state_dict(ckpt, src, param_key, 'input weights file')
    key = picked_key(ckpt, param_key)
    if network_opt is None and (network_opt := recorded_network_opt(ckpt)) is not None:
        source = 'the network_g it records'
    warning = None
    if network_opt is not None:
        arch = build_arch(network_opt, source if opt_path else f'input weights file {src}')
        check_fits(arch, state, f'input weights file {src}', source)
    else:
        warning = (
            f'{src} records no network_g and no --opt was given: the tools and gaussiansr_arch.load_model '
            f'guess the arch of {dst} from its shapes (pass --opt for what shapes cannot show, e.g. image_skip)'
        )
    with writing(dst):
        save_weights(dst, state, network_g=network_opt, param_key=key)
    return {'param_key': key, 'network_g': network_opt, 'tensors': len(state), 'warning': warning}


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-convert-weights``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            'Convert weights between .pth and .safetensors (either way), keeping one set of parameters '
            '(params_ema if present, else params) and recording the arch options (network_g) in the file, '
            'so that gaussiansr_arch.load_model and the tools load it alone.'
        ),
    )
    parser.add_argument('src', metavar='IN', help='input weights (.pth or .safetensors)')
    parser.add_argument('dst', metavar='OUT', help='output weights (.safetensors or .pth)')
    parser.add_argument(
        '--param-key',
        choices=list(DEFAULT_PARAM_KEYS[::-1]),
        help='parameters to keep (default: params_ema if present, else params)',
    )
    parser.add_argument('--opt', help='BasicSR YAML whose network_g is recorded (default: the one IN records)')
    parser.add_argument('--force', action='store_true', help='overwrite OUT if it exists')
    return parser


def _run(args: argparse.Namespace) -> dict:
    result = convert(args.src, args.dst, args.param_key, args.opt, args.force)
    if result['warning']:
        print(f'warning: {result["warning"]}', file=sys.stderr)
    arch = result['network_g']['type'] if result['network_g'] else 'no network_g'
    print(f'wrote {args.dst}: {result["tensors"]} tensors ({result["param_key"]}), {arch}')
    return result


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())

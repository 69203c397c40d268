"""Export an arbitrary-scale arch (GaussianSR, LIIF, MetaSR ...) as an ONNX graph in query form.

    gaussiansr-export-onnx --weights gaussiansr_edsr.safetensors -o gaussiansr_edsr.onnx
    gaussiansr-export-onnx --weights net_g_1000000.pth --opt train_gaussiansr.yml -o gaussiansr.onnx

The graph every arbitrary-scale app can drive, with dynamic h, w and Q:

* inputs ``lq`` [1,3,h,w] (RGB in [0,1]), ``coord`` [1,Q,2] ((row, col) in [-1,1], LIIF's
  convention: pixel i of n at ``-1 + (2i + 1) / n``) and ``cell`` [1,Q,2] (``(2/H, 2/W)`` for an
  H x W output);
* output ``rgb`` [1,Q,3], nominally in [0,1] and not clamped.

It is ``arch.query(arch.encode(lq), coord, cell)``: the encoder runs at every call. The
weights file's ``network_g`` and the package version are recorded in the model's metadata.
After the export the graph is validated (``--no-check`` skips it): ``onnx.checker`` and an
onnxruntime run on the CPU against PyTorch at LR sizes and query counts other than the traced
ones (proving the axes dynamic), one of them a whole output grid; a graph further than
``CHECK_TOLERANCE`` from PyTorch is refused. The file is written atomically and only then.
``gaussiansr-onnx-render`` (``gaussiansr_arch.toolkit.onnx_runtime.upscale_onnx``) renders whole images through it.

With ``--image-to-image --scale S`` (or ``--size HxW``) the graph is instead what upscaling front
ends run: ``input`` [N,3,h,w] -> ``output`` [N,3,H,W] at that one scale, the coordinate grid and
the row-chunk loop built inside the graph (:mod:`gaussiansr_arch.toolkit.onnx_image`); it is checked
the same way, against ``arch.upscale`` on whole images of two input sizes (one with N = 2).
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from gaussiansr_arch._version import __version__
from gaussiansr_arch.archs.arbitrary_scale import DEFAULT_CHUNK_SIZE, ArbitraryScaleArch
from gaussiansr_arch.archs.encoders import HATEncoder, SwinIREncoder
from gaussiansr_arch.toolkit import onnx_image
from gaussiansr_arch.toolkit.onnx_runtime import INPUT_NAMES, OUTPUT_NAME, import_onnx_module, open_session
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    add_weights_args,
    check_output_dir,
    check_output_free,
    count_parameters,
    format_scale,
    opt_network,
    parse_scale,
    parse_size,
    writing,
)
from gaussiansr_arch.utils import atomic
from gaussiansr_arch.utils.weights import load_model

PROG = 'gaussiansr-export-onnx'
# The example the graph is traced with: sizes no other size equals (h != w, Q != h*w ...), >= 2
# because torch.export specialises sizes 0 and 1.
EXAMPLE_LR_SIZE = (19, 23)
EXAMPLE_QUERIES = 97
# The validation after export, at LR sizes and query counts unlike the example's: random queries,
# or every pixel centre of a 'grid' output size (what rendering sends; GaussianSR's PyTorch path
# then takes its grid-neighbourhood form, the graph the general one).
CHECK_CASES = ({'lr_size': (13, 17), 'queries': 211}, {'lr_size': (24, 9), 'grid': (41, 20)})
# The image-to-image check: whole images of (N, h, w), against arch.upscale at the graph's scale.
IMAGE_CHECK_CASES = ((1, 13, 17), (2, 24, 9))
CHECK_TOLERANCE = 1e-4
# The lowest opset torch.onnx's exporter writes (its version conversion below it fails on Pad).
MIN_OPSET = 18
DIM_NAMES = {'batch': 'N', 'height': 'h', 'width': 'w', 'queries': 'Q'}
# Encoders known not to trace with symbolic sizes, and why (checked before the slow capture).
UNEXPORTABLE_ENCODERS = {
    SwinIREncoder: (
        "the 'swinir' encoder pads to its window size and builds its shifted-window attention masks in "
        'Python from the input size, so a graph would only work at one LR size'
    ),
    HATEncoder: (
        "the 'hat' encoder pads to its window size and builds its shifted-window attention masks in "
        'Python from the input size, so a graph would only work at one LR size'
    ),
}


class QueryGraph(nn.Module):
    """What is exported: ``arch.query(arch.encode(lq), coord, cell)`` as one ``forward`` of three tensors.

    Args:
        arch (ArbitraryScaleArch): the arch, in eval mode.
    """

    def __init__(self, arch: ArbitraryScaleArch):
        super().__init__()
        self.arch = arch

    def forward(self, lq: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """lq [1,3,h,w], coord [1,Q,2], cell [1,Q,2] -> rgb [1,Q,3]."""
        return self.arch.query(self.arch.encode(lq), coord, cell)


@contextlib.contextmanager
def onnx_export_mode() -> Iterator[None]:
    """``torch.onnx.is_in_onnx_export()`` is True inside: the archs then take their traceable paths.

    ``torch.onnx.export`` sets this flag only around its own capture; we capture with
    ``torch.export.export`` ourselves (see :func:`capture`), so we set the same (private) flag.
    """
    try:
        from torch.onnx._internal.exporter import _flags
    except ImportError:
        raise ToolError(
            f'torch {torch.__version__} has no torch.onnx._internal.exporter._flags; {PROG} needs an update'
        ) from None
    previous = _flags._is_onnx_exporting
    _flags._is_onnx_exporting = True
    try:
        if not torch.onnx.is_in_onnx_export():
            raise ToolError(
                f'torch {torch.__version__}: setting the ONNX export flag had no effect; {PROG} needs an update'
            )
        yield
    finally:
        _flags._is_onnx_exporting = previous


def example_inputs(lr_size: Sequence[int], queries: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random lq [1,3,h,w] in [0,1], coord [1,Q,2] in [-1,1] and cells of scales 1 to 4."""
    gen = torch.Generator().manual_seed(seed)
    h, w = lr_size
    lq = torch.rand(1, 3, h, w, generator=gen)
    coord = torch.rand(1, queries, 2, generator=gen) * 2 - 1
    scale = 1 + 3 * torch.rand(1, queries, 1, generator=gen)
    cell = 2 / (torch.tensor([float(h), float(w)]) * scale)
    return lq, coord, cell


def grid_inputs(lr_size: Sequence[int], out_size: Sequence[int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random lq [1,3,h,w] and every pixel centre of an (H, W) output with its cell (as ``render`` sends)."""
    from gaussiansr_arch.archs.coordinates import make_cell, make_coord

    gen = torch.Generator().manual_seed(seed)
    lq = torch.rand(1, 3, *lr_size, generator=gen)
    coord = make_coord(out_size)
    return lq, coord[None], make_cell(out_size, coord.shape[0])[None]


def failure_reason(err: BaseException) -> str:
    """One line saying why ``torch.export`` could not capture the graph with dynamic sizes."""
    text = str(err)
    fixed = dict(
        re.findall(r'You marked (\w+) as dynamic but your code specialized it to be a constant \((\d+)\)', text)
    )
    if fixed:
        sizes = ', '.join(f'{DIM_NAMES.get(name, name)} to {value}' for name, value in fixed.items())
        return (
            f'the traced code fixes {sizes} (the example input): a Python loop, float(), int() or new_tensor '
            'over a size, or a module without a traceable path under torch.onnx.is_in_onnx_export()'
        )
    guard = re.search(r'satisfy the generated guard (.+?)\.?\s*$', text, re.MULTILINE)
    if guard:
        return f'the traced code depends on the size values (guard {guard.group(1)})'
    if 'data-dependent' in text.lower() or 'DataDependent' in type(err).__name__:
        op = re.search(r'aten\.\w+(\.\w+)?', text)
        where = f' ({op.group(0)})' if op else ''
        return f'the traced code branches on tensor values{where}, e.g. torch.unique, .item(), bool(tensor)'
    first = ' '.join(text.strip().splitlines()[0].split()) if text.strip() else type(err).__name__
    return f'{type(err).__name__}: {first[:300]}'


def capture(arch: ArbitraryScaleArch, verbose: bool = False, batch: bool = False) -> torch.export.ExportedProgram:
    """Trace ``QueryGraph(arch)`` with symbolic h, w and Q (and N with ``batch``: traced at N = 2).

    Why ``torch.export`` (torch.onnx's dynamo exporter) and not the TorchScript exporter
    (``dynamo=False``): TorchScript tracing records Python numbers derived from sizes as
    constants, so ``dynamic_axes`` only relabels the inputs and the graph silently computes with
    the example's h and w (LIIF at another size: 0.05 off). ``torch.export`` with ``Dim``\\ s
    raises instead whenever the code fixes a size. We call it ourselves, not through
    ``torch.onnx.export(module)``, because the latter retries with the sizes the error suggests
    (a graph for one size, without a word).

    Raises:
        ToolError: one line saying what kept the graph from being captured.
    """
    dim = torch.export.Dim
    h, w, q = dim('height', min=2), dim('width', min=2), dim('queries', min=1)
    dynamic = {'lq': {2: h, 3: w}, 'coord': {1: q}, 'cell': {1: q}}
    example = example_inputs(EXAMPLE_LR_SIZE, EXAMPLE_QUERIES)
    if batch:
        n = dim('batch', min=1)
        dynamic = {key: {0: n, **axes} for key, axes in dynamic.items()}
        example = tuple(t.expand(2, *t.shape[1:]).contiguous() for t in example)
    name = type(arch).__name__
    axes = 'N, h, w and Q' if batch else 'h, w and Q'
    try:
        with onnx_export_mode(), torch.no_grad():
            return torch.export.export(QueryGraph(arch).eval(), example, dynamic_shapes=dynamic)
    except ToolError:
        raise
    except Exception as err:  # torch.export raises many unrelated types; all mean "not capturable"
        if verbose:
            print(f'{PROG}: torch.export failed:\n{err}', file=sys.stderr)
        raise ToolError(f'cannot export {name} to ONNX with dynamic {axes}: {failure_reason(err)}') from None


def check_exportable(arch: torch.nn.Module, network_opt: dict) -> str:
    """The arch's name, or a one-line ToolError when it has no query form or a known untraceable part."""
    name = network_opt.get('type', type(arch).__name__)
    if not isinstance(arch, ArbitraryScaleArch):
        raise ToolError(
            f'{name} is not an arbitrary-scale arch (no encode/query to export as lq, coord, cell -> rgb); '
            'use the weights of an arbitrary-scale arch such as GaussianSR or LIIF'
        )
    for encoder_type, reason in UNEXPORTABLE_ENCODERS.items():
        if isinstance(getattr(arch, 'encoder', None), encoder_type):
            raise ToolError(f'cannot export {name} to ONNX with dynamic h, w and Q: {reason}')
    return name


def to_onnx(
    arch: ArbitraryScaleArch, network_opt: dict, opset: int | None = None, verbose: bool = False, batch: bool = False
):
    """The ONNX model (``onnx.ModelProto``) of ``arch`` in query form, axes named height/width/queries
    (and batch with ``batch``; else the batch is 1).

    Raises:
        ToolError: the onnx/onnxscript packages are missing, or the arch cannot be captured or converted.
    """
    name = check_exportable(arch, network_opt)
    import_onnx_module('onnx', PROG)
    import_onnx_module('onnxscript', f'{PROG} (torch.onnx exporter)')
    program = capture(arch, verbose, batch)
    try:
        onnx_program = torch.onnx.export(
            program,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            verbose=verbose,
        )
    except Exception as err:  # the exporter's ConversionError and friends
        first = ' '.join(str(err).strip().splitlines()[0].split()) if str(err).strip() else type(err).__name__
        raise ToolError(f'cannot convert {name} to ONNX: {first[:300]}') from None
    graph_inputs = onnx_program.model.graph.inputs
    axes = {graph_inputs[0].shape[2]: 'height', graph_inputs[0].shape[3]: 'width', graph_inputs[1].shape[1]: 'queries'}
    if batch:
        axes[graph_inputs[0].shape[0]] = 'batch'
    onnx_program.rename_axes(axes)
    model = onnx_program.model_proto
    model.doc_string = (
        f'{name} (gaussiansr_arch {__version__}) in query form: rgb [1,Q,3] (nominally [0,1], not clamped) '
        'at coord [1,Q,2] ((row, col) pixel centres in [-1,1], LIIF convention) with cell [1,Q,2] '
        '((2/H, 2/W) for an HxW output), from lq [1,3,h,w] (RGB in [0,1]).'
    )
    for key, value in (('network_g', json.dumps(network_opt)), ('gaussiansr_arch_version', __version__)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    check_dynamic_axes(model, name, batch)
    return model


def check_dynamic_axes(model, name: str, batch: bool = False) -> None:
    """ToolError unless h, w of lq and Q of coord, cell and rgb (and N) are symbolic in the graph's signature."""
    n = 'batch' if batch else '1'
    expected = {'lq': [n, '3', 'height', 'width'], 'coord': [n, 'queries', '2'], 'cell': [n, 'queries', '2']}
    expected['rgb'] = [n, 'queries', '3']
    for value in [*model.graph.input, *model.graph.output]:
        dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
        if value.name in expected and dims != expected[value.name]:
            raise ToolError(f'exported {name} graph has {value.name} {dims}, expected {expected[value.name]}')


def to_image_onnx(
    arch: ArbitraryScaleArch,
    network_opt: dict,
    image: dict,
    opset: int | None = None,
    verbose: bool = False,
    query_model=None,
):
    """The image-to-image ``onnx.ModelProto`` of ``arch`` at ``image['scale']`` or ``image['size']``.

    ``image`` also gives ``chunk_size`` (queries per loop iteration). ``query_model``: a query-form
    model of ``arch`` from ``to_onnx(..., batch=True)``, reused instead of capturing again.

    Raises:
        ToolError: as :func:`to_onnx`, or an output size the arch cannot render.
    """
    name = check_exportable(arch, network_opt)
    scale, size = image.get('scale'), image.get('size')
    if size is not None:
        try:
            arch.check_output_size(EXAMPLE_LR_SIZE, size)
        except ValueError as err:
            raise ToolError(f'--size {size[0]}x{size[1]}: {err}') from None
    if query_model is None:
        query_model = to_onnx(arch, network_opt, opset, verbose, batch=True)
    model = onnx_image.build_image_model(query_model, scale=scale, size=size, chunk_size=image['chunk_size'])
    target = f'x{format_scale(scale)}' if scale is not None else f'{size[0]}x{size[1]}'
    model.doc_string = (
        f'{name} (gaussiansr_arch {__version__}) image-to-image at {target}: input [N,3,h,w] (RGB in [0,1], '
        f'NCHW) -> output [N,3,H,W] (RGB, nominally [0,1], not clamped); '
        f'{onnx_image.image_metadata(scale, size)["output_size_rule"]}. Rendered in a Loop of '
        f'{image["chunk_size"]} output pixels (whole rows) per iteration.'
    )
    for key, value in onnx_image.image_metadata(scale, size, name, image['chunk_size']).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _query_check_cases(arch: ArbitraryScaleArch) -> Iterator[tuple[dict, torch.Tensor, dict, str]]:
    """Feeds of the query-form check (``CHECK_CASES``), PyTorch's answer, the record and where it is."""
    for seed, case in enumerate(CHECK_CASES):
        h, w = case['lr_size']
        if 'grid' in case:
            lq, coord, cell = grid_inputs((h, w), case['grid'], seed)
            kind = f'grid {case["grid"][0]}x{case["grid"][1]}'
        else:
            lq, coord, cell = example_inputs((h, w), case['queries'], seed)
            kind = 'random'
        with torch.no_grad():
            ref = arch(lq, coord, cell)
        feed = {'lq': lq.numpy(), 'coord': coord.numpy(), 'cell': cell.numpy()}
        record = {'lr_size': (h, w), 'queries': coord.shape[1], 'kind': kind}
        yield feed, ref, record, f'lq {h}x{w}, {coord.shape[1]} {kind} queries'


def _image_check_cases(arch: ArbitraryScaleArch, image: dict) -> Iterator[tuple[dict, torch.Tensor, dict, str]]:
    """Feeds of the image-to-image check (``IMAGE_CHECK_CASES``) and ``arch.upscale``'s whole images."""
    scale, size = image.get('scale'), image.get('size')
    for seed, (n, h, w) in enumerate(IMAGE_CHECK_CASES):
        lq = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ref = arch.upscale(lq, size=size, scale=scale)
        record = {'input': (n, h, w), 'output': tuple(ref.shape[-2:]), 'kind': 'image'}
        where = f'input {n}x3x{h}x{w} -> {ref.shape[-2]}x{ref.shape[-1]}'
        yield {onnx_image.INPUT_NAME: lq.numpy()}, ref, record, where


def validate(model, arch: ArbitraryScaleArch, threads: int = 0, image: dict | None = None) -> list[dict]:
    """``onnx.checker`` on ``model``, then onnxruntime (CPU) against PyTorch on every check case.

    The cases: ``CHECK_CASES`` for a query-form graph; with ``image`` (the spec given to
    :func:`to_image_onnx`), whole images of ``IMAGE_CHECK_CASES`` against ``arch.upscale``.

    Returns:
        list[dict]: per case ``max_diff`` and, query form, ``lr_size``, ``queries``, ``kind``
        ('random' or 'grid HxW'); image-to-image, ``input`` (N, h, w), ``output`` (H, W), ``kind`` 'image'.

    Raises:
        ToolError: the checker's complaint, an output of another shape, or a case further than
        ``CHECK_TOLERANCE`` from PyTorch.
    """
    onnx = import_onnx_module('onnx', f'{PROG} (the check; --no-check skips it)')
    name = type(arch).__name__
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx.checker.ValidationError, onnx.shape_inference.InferenceError
        first = ' '.join(str(err).strip().splitlines()[0].split()) if str(err).strip() else type(err).__name__
        raise ToolError(f'exported {name} graph fails onnx.checker: {first[:300]}') from None
    session = open_session(model.SerializeToString(), threads=threads)
    results = []
    cases = _image_check_cases(arch, image) if image is not None else _query_check_cases(arch)
    for feed, ref, record, where in cases:
        (got,) = session.run(None, feed)
        if tuple(got.shape) != tuple(ref.shape):
            raise ToolError(
                f'exported {name} graph gives shape {list(got.shape)}, PyTorch {list(ref.shape)} ({where}); '
                'nothing written'
            )
        diff = float((torch.from_numpy(got) - ref).abs().max())
        results.append({**record, 'max_diff': diff})
        if not diff <= CHECK_TOLERANCE:  # also catches NaN
            raise ToolError(
                f'exported {name} graph differs from PyTorch by {diff:.2e} > {CHECK_TOLERANCE:g} ({where}); '
                'nothing written'
            )
    return results


def export_onnx(
    arch: torch.nn.Module,
    network_opt: dict,
    path: str,
    opset: int | None = None,
    check: bool = True,
    force: bool = False,
    verbose: bool = False,
    image: dict | None = None,
    query_model=None,
) -> dict:
    """Export ``arch`` to ``path`` (atomically, after the check); returns what was done.

    ``image``: ``{'scale': s or (s_h, s_w), 'size': None or (H, W), 'chunk_size': n}`` for an
    image-to-image graph (:func:`to_image_onnx`, which reuses ``query_model`` when given); None for
    the query form.

    Returns:
        dict: ``path``, ``arch``, ``parameters``, ``opset``, ``export_seconds``, ``bytes`` and
        ``checks`` (the :func:`validate` results, empty with ``check`` False).

    Raises:
        ToolError: one line; ``path`` is then untouched.
    """
    name = check_exportable(arch, network_opt)
    check_output_free(path, force)
    check_output_dir(os.path.dirname(path))
    arch.eval()
    start = time.time()
    if image is None:
        model = to_onnx(arch, network_opt, opset, verbose)
    else:
        model = to_image_onnx(arch, network_opt, image, opset, verbose, query_model)
    seconds = time.time() - start
    checks = validate(model, arch, image=image) if check else []
    try:
        data = model.SerializeToString()
    except ValueError as err:  # protobuf's 2 GB limit
        raise ToolError(f'exported {name} graph cannot be serialized as one file: {err}') from None
    with writing(path):
        atomic.write_bytes_atomic(path, data)
    opset_used = next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), None)
    return {
        'path': path,
        'arch': name,
        'parameters': count_parameters(arch),
        'opset': opset_used,
        'export_seconds': seconds,
        'bytes': len(data),
        'checks': checks,
        'image': image,
    }


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-export-onnx``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            'Export an arbitrary-scale SR model as an ONNX graph in query form: inputs lq [1,3,h,w], '
            'coord [1,Q,2], cell [1,Q,2], output rgb [1,Q,3], with dynamic h, w and Q (or, with '
            '--image-to-image, input [N,3,h,w] -> output [N,3,H,W] at one scale); validated with '
            'onnx.checker and onnxruntime against PyTorch before it is written (atomically). Needs the '
            "[onnx] extra: pip install 'gaussiansr_arch[onnx]'."
        ),
    )
    add_weights_args(
        parser,
        'weights file (.pth or .safetensors): a file that records its network_g, or a BasicSR net_g_*.pth with --opt',
    )
    parser.add_argument('-o', '--output', required=True, help='the .onnx file to write')
    parser.add_argument('--force', action='store_true', help='overwrite the output if it exists')
    parser.add_argument(
        '--opset', type=int, default=None, help="ONNX opset (default: the torch.onnx exporter's, 20 with torch 2.14)"
    )
    parser.add_argument(
        '--no-check', action='store_true', help='skip onnx.checker and the onnxruntime-vs-PyTorch comparison'
    )
    parser.add_argument('--verbose', action='store_true', help="print the exporter's progress and full errors")
    image = parser.add_argument_group(
        'image-to-image',
        'a graph input [N,3,h,w] -> output [N,3,H,W] at one fixed scale or size, for upscaling front ends '
        '(chaiNNer, spandrel-style tools); checked against upscale on whole images',
    )
    image.add_argument('--image-to-image', action='store_true', help='export the image-to-image graph')
    target = image.add_mutually_exclusive_group()
    target.add_argument('--scale', help='its upscaling factor, e.g. 1.5, or HxW factors, e.g. 1.5x2 (H = round(h*s))')
    target.add_argument('--size', help='its fixed output size HxW, e.g. 1080x1920, whatever the input size')
    image.add_argument(
        '--chunk-size',
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f'output pixels the graph renders per loop iteration, whole rows (default {DEFAULT_CHUNK_SIZE}); '
        'bounds the memory of the query part',
    )
    return parser


def _run(args: argparse.Namespace) -> dict:
    if not args.output.lower().endswith('.onnx'):
        raise ToolError(f'output {args.output}: name it .onnx')
    if args.opset is not None and args.opset < MIN_OPSET:
        raise ToolError(f'--opset {args.opset}: the torch.onnx exporter writes opset {MIN_OPSET} or later')
    image = None
    if args.image_to_image:
        if args.scale is None and args.size is None:
            raise ToolError('--image-to-image needs --scale S or --size HxW (one scale or size per file)')
        if args.chunk_size <= 0:
            raise ToolError(f'--chunk-size must be > 0, got {args.chunk_size}')
        scale = parse_scale(args.scale) if args.scale is not None else None
        size = parse_size(args.size) if args.size is not None else None
        image = {'scale': scale, 'size': size, 'chunk_size': args.chunk_size}
    else:
        given = [flag for flag, value in (('--scale', args.scale), ('--size', args.size)) if value is not None]
        if args.chunk_size != DEFAULT_CHUNK_SIZE:
            given.append('--chunk-size')
        if given:
            raise ToolError(f'{given[0]} is for --image-to-image; the query-form graph renders any scale')
    check_output_free(args.output, args.force)
    check_output_dir(os.path.dirname(args.output))
    network_g, source = opt_network(args.opt)
    arch = load_model(args.weights, 'cpu', param_key=args.param_key, network_g=network_g, source=source)
    network_opt = arch.network_g
    result = export_onnx(
        arch,
        network_opt,
        args.output,
        args.opset,
        check=not args.no_check,
        force=args.force,
        verbose=args.verbose,
        image=image,
    )
    what = 'query form'
    if image is not None:
        what = 'image-to-image ' + (
            f'x{format_scale(image["scale"])}'
            if image['scale'] is not None
            else f'{image["size"][0]}x{image["size"][1]}'
        )
    print(
        f'wrote {args.output}: {result["arch"]} {what} ({result["parameters"]:,} parameters, opset '
        f'{result["opset"]}, {result["bytes"] / 1e6:.1f} MB), exported in {result["export_seconds"]:.1f}s'
    )
    for c in result['checks']:
        if c['kind'] == 'image':
            n, h, w = c['input']
            where = f'input {n}x3x{h}x{w} -> {c["output"][0]}x{c["output"][1]}, vs upscale'
        else:
            where = f'lq {c["lr_size"][0]}x{c["lr_size"][1]}, {c["queries"]} {c["kind"]} queries'
        print(f'  onnxruntime vs PyTorch: max |diff| {c["max_diff"]:.1e} ({where})')
    if args.no_check:
        print('  not checked (--no-check)')
    return result


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())

"""``gaussiansr-onnx-render``: upscale one image through an ONNX graph of ``gaussiansr-export-onnx``,
with onnxruntime (no PyTorch model or weights needed).

    gaussiansr-onnx-render gaussiansr_edsr.onnx photo.png --scale 3.7 -o results/onnx   # results/onnx/photo_x3.7.png
    gaussiansr-onnx-render gaussiansr_edsr.onnx photo.png --size 1080x1920 -o results/onnx

``-o`` is the output folder, as for every tool that writes images (``gaussiansr-upscale``); the
file is named ``<stem>_x<scale>.png`` or ``<stem>_<H>x<W>.png``. What an app calls, given the graph
alone, is :func:`gaussiansr_arch.toolkit.onnx_runtime.upscale_onnx`.
"""

import argparse
import os
import sys
import time

from gaussiansr_arch.archs.coordinates import output_size_for_scale
from gaussiansr_arch.data.protocol import to_uint8
from gaussiansr_arch.toolkit.onnx_runtime import DEFAULT_ONNX_CHUNK_SIZE, check_query_graph, open_session, upscale_onnx
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    check_output_dir,
    check_output_free,
    output_name,
    parse_scale,
    parse_size,
    save_image,
)
from gaussiansr_arch.utils.image_io import read_image


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m gaussiansr_arch.tools.onnx_render``."""
    parser = argparse.ArgumentParser(
        prog='gaussiansr-onnx-render',
        description=(
            'Upscale one image through an ONNX graph exported by gaussiansr-export-onnx, with onnxruntime '
            '(no PyTorch model or weights needed), to any scale or size; the output is a PNG named '
            '<stem>_x<scale>.png (or <stem>_<H>x<W>.png with --size) in --output, written atomically, '
            'never over an existing file without --force.'
        ),
    )
    parser.add_argument('model', help='the .onnx file written by gaussiansr-export-onnx')
    parser.add_argument('image', help='input image')
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--scale', help='upscaling factor, e.g. 3.7, or HxW factors, e.g. 2.5x3')
    target.add_argument('--size', help='exact output size HxW (height x width), e.g. 1080x1920')
    parser.add_argument('-o', '--output', default='results/onnx_render', help='output folder (default: %(default)s)')
    parser.add_argument('--force', action='store_true', help='overwrite the output if it exists')
    parser.add_argument(
        '--chunk-size',
        type=int,
        default=DEFAULT_ONNX_CHUNK_SIZE,
        help=f'output pixels per graph call; each call re-runs the encoder (default {DEFAULT_ONNX_CHUNK_SIZE})',
    )
    parser.add_argument('--threads', type=int, default=0, help="onnxruntime's intra-op threads (0: its default)")
    return parser


def _run(args: argparse.Namespace) -> str:
    scale = parse_scale(args.scale) if args.scale is not None else None
    size = parse_size(args.size) if args.size is not None else None
    if args.chunk_size <= 0:
        raise ToolError(f'--chunk-size must be > 0, got {args.chunk_size}')
    if args.threads < 0:
        raise ToolError(f'--threads must be >= 0, got {args.threads}')
    check_output_dir(args.output)
    target = os.path.join(args.output, output_name(args.image, scale, size))
    check_output_free(target, args.force)
    session = open_session(args.model, threads=args.threads)
    try:
        check_query_graph(session)
    except ValueError as err:
        raise ToolError(f'model {args.model}: {err}') from None
    img = read_image(args.image)
    out_hw = size if size is not None else output_size_for_scale(img.shape[:2], scale)
    start = time.time()
    sr = upscale_onnx(session, img, out_hw, args.chunk_size)
    save_image(target, to_uint8(sr))
    print(f'wrote {target}: {out_hw[0]}x{out_hw[1]} in {time.time() - start:.1f}s')
    return target


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())

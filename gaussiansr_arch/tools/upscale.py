"""Upscale images with an arbitrary-scale model (GaussianSR, LIIF ...) at any scale or size.

Example::

    gaussiansr-upscale photos/ --scale 3.7 --weights net_g_1000000.pth --opt train_gaussiansr.yml -o out/
    gaussiansr-upscale 'shots/*.jpg' --size 1080x1920 --weights gaussiansr_edsr.pth -o out/ --tile 256
"""

import argparse
import os
import sys
import time

import torch

from gaussiansr_arch.archs.arbitrary_scale import DEFAULT_CHUNK_SIZE
from gaussiansr_arch.archs.coordinates import output_size_for_scale
from gaussiansr_arch.archs.precision import upscale_tensor
from gaussiansr_arch.archs.tiling import encode_tiled, receptive_radius
from gaussiansr_arch.data.protocol import image_to_tensor, tensor_to_image
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    add_execution_args,
    add_weights_args,
    check_output_dir,
    check_output_free,
    check_renderable,
    collect_images,
    fail_if_too_large,
    opt_network,
    output_name,
    parse_scale,
    parse_size,
    prepare_arch,
    progress,
    resolve_device,
    save_image,
)
from gaussiansr_arch.utils.weights import load_model

DEFAULT_MAX_PIXELS = 64e6


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-upscale``."""
    parser = argparse.ArgumentParser(
        prog='gaussiansr-upscale',
        description=(
            'Upscale one image, a folder or a glob of images with an arbitrary-scale SR model. Outputs are '
            'PNGs named <stem>_x<scale>.png (or <stem>_<H>x<W>.png with --size) in --output; existing outputs '
            'are never overwritten without --force.'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument('inputs', nargs='+', help='image files, folders (all their images) or quoted glob patterns')
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument('--scale', help='upscaling factor, e.g. 3.7, or a different factor per axis as HxW, e.g. 2.5x3')
    target.add_argument('--size', help='exact output size HxW (height x width), e.g. 1080x1920')
    add_weights_args(
        parser,
        'weights file: a BasicSR net_g_*.pth (with --opt) or a file that records its own network_g '
        '(e.g. converted LIIF weights)',
    )
    parser.add_argument('-o', '--output', default='results/upscale', help='output folder')
    parser.add_argument('--force', action='store_true', help='overwrite existing outputs')
    parser.add_argument(
        '--chunk-size',
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help='output pixels rendered at a time (bounds decoder memory)',
    )
    parser.add_argument(
        '--tile',
        type=int,
        default=0,
        help='encode the LR image in tiles of this many LR pixels (0 = whole image); the '
        'result equals untiled encoding when --tile-overlap covers the encoder',
    )
    parser.add_argument(
        '--tile-overlap',
        type=int,
        default=None,
        help="LR pixels of context around each tile (default: the encoder's receptive-field "
        'radius, which makes tiling exact)',
    )
    add_execution_args(parser)
    parser.add_argument(
        '--max-pixels',
        type=float,
        default=DEFAULT_MAX_PIXELS,
        help='refuse outputs with more pixels than this (0 = no limit)',
    )
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def _run(args: argparse.Namespace) -> list[str]:
    from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch
    from gaussiansr_arch.utils.image_io import read_image

    scale = parse_scale(args.scale) if args.scale is not None else None
    size = parse_size(args.size) if args.size is not None else None
    if args.chunk_size <= 0:
        raise ToolError(f'--chunk-size must be > 0, got {args.chunk_size}')
    if args.tile < 0 or (args.tile_overlap is not None and args.tile_overlap < 0):
        raise ToolError(f'--tile and --tile-overlap must be >= 0, got {args.tile} and {args.tile_overlap}')
    device = resolve_device(args.device, args.precision)
    paths = collect_images(args.inputs)
    check_output_dir(args.output)

    # Check every output name before the (slow) model load, so a clash fails at once.
    names = {p: os.path.join(args.output, output_name(p, scale, size)) for p in paths}
    seen: dict[str, str] = {}
    for p, out in names.items():
        if out in seen:
            raise ToolError(f'inputs {seen[out]} and {p} would both write {out}; rename one')
        seen[out] = p
        check_output_free(out, args.force)

    network_g, source = opt_network(args.opt)
    arch = load_model(args.weights, device, param_key=args.param_key, network_g=network_g, source=source)
    network_opt = arch.network_g
    if not isinstance(arch, ArbitraryScaleArch):
        raise ToolError(
            f'{network_opt["type"]} is not an arbitrary-scale arch (no upscale); use a GaussianSR/LIIF weights file'
        )
    arch = prepare_arch(arch, args.compile)
    overlap = args.tile_overlap
    if args.tile and overlap is None:
        overlap = receptive_radius(arch.encoder) if hasattr(arch, 'encoder') else None
        if overlap is None:
            overlap = 16
            print(
                f'warning: the receptive field of {network_opt["type"]} is not local; tiles use '
                f'--tile-overlap {overlap} and may show small seams',
                file=sys.stderr,
            )

    written = []
    start = time.time()
    for path in progress(paths, 'upscale', disable=args.quiet):
        img = read_image(path)
        out_hw = size if size is not None else output_size_for_scale(img.shape[:2], scale)
        fail_if_too_large(out_hw[0], out_hw[1], args.max_pixels, path)
        lq = image_to_tensor(img, device)
        try:
            check_renderable(arch, lq, out_hw)
            sr = upscale_tensor(arch, lq, out_hw, args.chunk_size, args.tile or None, overlap or 0, args.precision)
        except torch.cuda.OutOfMemoryError:
            raise ToolError(f'{path}: out of GPU memory; lower --chunk-size or use --tile') from None
        except ToolError as err:
            raise ToolError(f'{path}: {err}') from None
        save_image(names[path], tensor_to_image(sr))
        written.append(names[path])
    if not args.quiet:
        print(f'wrote {len(written)} image(s) to {args.output} in {time.time() - start:.1f}s', file=sys.stderr)
    return written


run, main = Tool(build_parser, _run).entry_points()

__all__ = ['main', 'run', 'build_parser', 'output_name', 'encode_tiled']

if __name__ == '__main__':
    sys.exit(main())

"""Compare several SR models on the same datasets and scales with BasicSR's own metrics.

Writes into ``--output``: ``results.md`` and ``results.csv`` (PSNR/SSIM per dataset x scale,
parameters, seconds per image), ``psnr_vs_scale.png`` and ``crops/*.png`` (the same region of
every model's output beside bicubic and HR), and ``report.html`` (``--html``, see
:mod:`gaussiansr_arch.toolkit.compare_html`). See docs/tools.md and
options/compare/compare_example.yml.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from gaussiansr_arch.archs.arbitrary_scale import DEFAULT_CHUNK_SIZE
from gaussiansr_arch.archs.precision import upscale_tensor
from gaussiansr_arch.data.protocol import (
    DEFAULT_PROTOCOL,
    EVAL_PROTOCOLS,
    PROTOCOLS,
    dataset_family,
    get_protocol,
    image_to_tensor,
    tensor_to_image,
)
from gaussiansr_arch.toolkit.compare_html import HtmlReport
from gaussiansr_arch.toolkit.compare_report import pick_crop, plot_crops, plot_psnr_vs_scale, write_tables
from gaussiansr_arch.toolkit.comparison import (
    DatasetEntry,
    bicubic_upscale,
    crop_border_for,
    default_dataset_name,
    make_pair,
    metrics,
    protocol_border,
)
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    add_execution_args,
    check_output_dir,
    check_output_free,
    check_renderable,
    collect_images,
    count_parameters,
    format_scale,
    is_finite_number,
    load_yaml,
    opt_network,
    prepare_arch,
    progress,
    resolve_device,
)
from gaussiansr_arch.utils.weights import load_model

OUTPUT_FILES = ('results.md', 'results.csv', 'psnr_vs_scale.png')


@dataclass
class ModelEntry:
    """One model to compare: ``kind`` is 'arbitrary', 'fixed' (own ``scale`` only) or 'bicubic'."""

    name: str
    kind: str
    net: torch.nn.Module | None = None
    scale: float | None = None
    params: int = 0


@dataclass
class Result:
    """Accumulated metrics of one model on one dataset at one scale."""

    psnr: list = field(default_factory=list)
    ssim: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    note: str = ''


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-compare``."""
    parser = argparse.ArgumentParser(
        prog='gaussiansr-compare',
        description=(
            'Evaluate several SR models (arbitrary-scale GaussianSR/LIIF, fixed-scale BasicSR archs such as '
            'EDSR/RCAN/SwinIR, and the built-in bicubic baseline) on the same datasets and scales with '
            'basicsr.metrics.calculate_psnr/calculate_ssim. Writes results.md, results.csv, psnr_vs_scale.png '
            'and crops/*.png into --output. Models and datasets come from --config (see '
            'options/compare/compare_example.yml) and/or the flags below.'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument('--config', help='YAML with "models", "datasets" and optional settings')
    parser.add_argument(
        '--model',
        action='append',
        default=[],
        metavar='NAME=WEIGHTS[,OPT_YML]',
        help='add a model (repeatable); NAME=bicubic adds the baseline',
    )
    parser.add_argument(
        '--hr',
        action='append',
        default=[],
        metavar='HR_FOLDER',
        help='add a dataset from an HR folder (LR made by the protocol), named after the folder, or after its '
        'parent for a folder called HR (<root>/Set5/HR is Set5); two datasets of the same name are an error',
    )
    parser.add_argument(
        '--protocol',
        default=None,
        metavar='NAME',
        help=f'evaluation protocol ({", ".join(PROTOCOLS)}) of every dataset that names none (LR per scale, '
        'channel, crop border; '
        f'gaussiansr_arch/data/protocol.py); default: config "protocol" or {DEFAULT_PROTOCOL}',
    )
    parser.add_argument('--scales', nargs='+', type=float, help='scales for --hr datasets (default: 2 3 4)')
    parser.add_argument(
        '--crop-border',
        default=None,
        help="crop border for --hr datasets instead of the protocol's: an int, 'scale' (ceil of the scale), "
        "'scale+N' or 'min(scale,N)'",
    )
    parser.add_argument(
        '--rgb', action='store_true', help="--hr datasets: RGB metrics instead of the protocol's channel"
    )
    parser.add_argument(
        '-o', '--output', default=None, help='output folder (default: config "output" or results/compare)'
    )
    parser.add_argument('--force', action='store_true', help='overwrite existing result files')
    parser.add_argument('--max-images', type=int, default=None, help='use only the first N images per dataset')
    parser.add_argument('--crops', type=int, default=None, help='crop-comparison PNGs per dataset x scale (default 1)')
    parser.add_argument('--crop-size', type=int, default=None, help='side of the crop region in HR pixels (default 96)')
    parser.add_argument(
        '--html',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='write report.html (+ report_files/), an interactive page of the outputs (default: on when --crops > 0)',
    )
    parser.add_argument(
        '--chunk-size', type=int, default=DEFAULT_CHUNK_SIZE, help='queries per chunk for arbitrary-scale models'
    )
    add_execution_args(parser)
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    return parser


# ---------------------------------------------------------------------------- configuration
def _model_from_mapping(item: dict, where: str, device) -> ModelEntry:
    from gaussiansr_arch.archs.arbitrary_scale import ArbitraryScaleArch

    if not isinstance(item, dict) or 'name' not in item:
        raise ToolError(f'{where}: each model needs a "name"')
    name = str(item['name'])
    if item.get('type') == 'bicubic' or (name.lower() == 'bicubic' and 'weights' not in item):
        return ModelEntry(name=name, kind='bicubic')
    if 'weights' not in item:
        raise ToolError(f'{where}: model {name!r} has no "weights"')
    network_g, source = opt_network(item.get('opt'))
    net = load_model(item['weights'], device, param_key=item.get('param_key'), network_g=network_g, source=source)
    network_opt = net.network_g
    if isinstance(net, ArbitraryScaleArch):
        return ModelEntry(name=name, kind='arbitrary', net=net, params=count_parameters(net))
    scale = item.get('scale', network_opt.get('upscale', network_opt.get('scale')))
    if not is_finite_number(scale) or scale <= 0:
        raise ToolError(
            f'{where}: fixed-scale model {name!r} ({network_opt["type"]}) needs "scale" '
            f'(network_g has no upscale), got {scale!r}'
        )
    return ModelEntry(name=name, kind='fixed', net=net, scale=float(scale), params=count_parameters(net))


def _parse_cli_model(text: str) -> dict:
    name, sep, rest = text.partition('=')
    if not name:
        raise ToolError(f'--model {text!r}: expected NAME=WEIGHTS[,OPT_YML] or bicubic')
    if not sep:
        if name.lower() == 'bicubic':
            return {'name': 'Bicubic', 'type': 'bicubic'}
        raise ToolError(f'--model {text!r}: expected NAME=WEIGHTS[,OPT_YML]')
    if rest.lower() == 'bicubic':
        return {'name': name, 'type': 'bicubic'}
    weights, _, opt = rest.partition(',')
    return {'name': name, 'weights': weights, **({'opt': opt} if opt else {})}


def _dataset_from_mapping(item: dict, where: str, default_protocol: str = DEFAULT_PROTOCOL) -> DatasetEntry:
    if not isinstance(item, dict) or 'hr' not in item:
        raise ToolError(f'{where}: each dataset needs an "hr" folder')
    scales = item.get('scales', [2, 3, 4])
    if not isinstance(scales, list) or not scales:
        raise ToolError(f'{where}: dataset {item.get("name", item["hr"])!r}: "scales" must be a non-empty list')
    for s in scales:
        if not is_finite_number(s) or s <= 0:
            raise ToolError(f'{where}: dataset {item.get("name", item["hr"])!r}: scale {s!r} is not a number > 0')
    name = str(item.get('name') or default_dataset_name(item['hr']))
    try:
        proto = get_protocol(item.get('protocol') or default_protocol)
    except ValueError as e:
        raise ToolError(f'{where}: dataset {name!r}: {e}') from None
    family = item.get('family') or dataset_family(name)
    if family not in EVAL_PROTOCOLS:
        raise ToolError(f'{where}: dataset {name!r}: family must be one of {", ".join(EVAL_PROTOCOLS)}, got {family!r}')
    crop = item.get('crop_border')
    y_channel = item.get('test_y_channel')
    ds = DatasetEntry(
        name=name,
        hr=item['hr'],
        scales=[float(s) for s in scales],
        lr=item.get('lr'),
        filename_tmpl=item.get('filename_tmpl', '{}'),
        crop_border=protocol_border(proto, family) if crop is None else crop,
        test_y_channel=proto.test_y_channel(family) if y_channel is None else bool(y_channel),
        protocol=proto.name,
        family=family,
    )
    crop_border_for(ds, ds.scales[0], where)  # validate early
    if ds.lr:
        made = [s for s in ds.scales if not proto.reads_lr_files(s)]
        if made:
            files = ', '.join(f'x{format_scale(s)}' for s in proto.lr_file_scales) or 'no scale'
            raise ToolError(
                f'{where}: dataset {name!r} has an "lr" folder, but protocol {proto.name} reads LR files at {files} '
                f'and makes the LR from the HR at x{format_scale(made[0])}: drop "lr" or those scales'
            )
    if not os.path.isdir(ds.hr):
        raise ToolError(f'{where}: dataset {name!r}: HR folder {ds.hr} does not exist')
    return ds


@torch.no_grad()
def run_model(model: ModelEntry, lr: np.ndarray, size, device, chunk_size: int, precision: str = 'fp32') -> np.ndarray:
    """Super-resolve ``lr`` (uint8 RGB) to ``size`` with ``model`` in ``precision``; returns uint8 RGB."""
    if model.kind == 'bicubic':
        return bicubic_upscale(lr, size)
    lq = image_to_tensor(lr, device)
    if model.kind == 'arbitrary':
        check_renderable(model.net, lq, size)
        return tensor_to_image(upscale_tensor(model.net, lq, size, chunk_size, precision=precision))
    # Fixed-scale archs with windows (SwinIR) need sizes divisible by the window: pad, then crop.
    window = int(getattr(model.net, 'window_size', 1) or 1)
    h, w = lq.shape[-2:]
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        lq = torch.nn.functional.pad(lq, (0, pad_w, 0, pad_h), mode='reflect')
    out = model.net(lq)[..., : size[0], : size[1]]
    if tuple(out.shape[-2:]) != tuple(size):
        raise ToolError(f'model {model.name!r} produced {tuple(out.shape[-2:])}, expected {tuple(size)}')
    return tensor_to_image(out)


# ---------------------------------------------------------------------------- main
def _run(args: argparse.Namespace) -> dict:
    config = load_yaml(args.config) if args.config else {}
    where = f'config {args.config}' if args.config else 'command line'
    device = resolve_device(args.device, args.precision)
    out_dir = args.output or config.get('output') or 'results/compare'
    check_output_dir(out_dir)
    for name in OUTPUT_FILES:
        check_output_free(os.path.join(out_dir, name), args.force)
    max_images = args.max_images if args.max_images is not None else config.get('max_images')
    n_crops = args.crops if args.crops is not None else int(config.get('crops', 1))
    crop_side = args.crop_size or int(config.get('crop_size', 96))
    want_html = args.html if args.html is not None else bool(config.get('html', n_crops > 0))
    report = HtmlReport(out_dir, args.force) if want_html else None

    default_protocol = args.protocol or config.get('protocol') or DEFAULT_PROTOCOL
    if default_protocol not in PROTOCOLS:
        raise ToolError(f'{where}: unknown protocol {default_protocol!r}: choose one of {", ".join(PROTOCOLS)}')
    dataset_items = list(config.get('datasets') or [])
    for hr in args.hr:
        dataset_items.append(
            {
                'hr': hr,
                'scales': args.scales or [2, 3, 4],
                'crop_border': args.crop_border,
                'test_y_channel': False if args.rgb else None,
            }
        )
    datasets = [
        _dataset_from_mapping(item, f'{where}: datasets[{i}]', default_protocol) for i, item in enumerate(dataset_items)
    ]
    seen = {}
    for i, ds in enumerate(datasets):
        if ds.name in seen:
            j, other = seen[ds.name]
            raise ToolError(
                f'{where}: datasets[{j}] ({other.hr}) and datasets[{i}] ({ds.hr}) are both named {ds.name!r}: '
                'give them distinct names (config "name")'
            )
        seen[ds.name] = (i, ds)
    model_items = list(config.get('models') or []) + [_parse_cli_model(t) for t in args.model]
    if not datasets or not model_items:
        raise ToolError(f'{where}: give at least one model (--model / models:) and one dataset (--hr / datasets:)')
    names = [str(m.get('name')) if isinstance(m, dict) else '?' for m in model_items]
    if len(set(names)) != len(names):
        raise ToolError(f'{where}: model names must be unique, got {names}')
    models = [_model_from_mapping(item, f'{where}: models[{i}]', device) for i, item in enumerate(model_items)]
    for m in models:
        if m.net is not None:
            m.net = prepare_arch(m.net, args.compile)

    results = {(m.name, ds.name, s): Result() for m in models for ds in datasets for s in ds.scales}
    crops_dir = os.path.join(out_dir, 'crops')
    if n_crops > 0:
        check_output_dir(crops_dir)
    for ds in datasets:
        paths = collect_images([ds.hr])[:max_images]
        for s in ds.scales:
            border = crop_border_for(ds, s)
            for m in models:
                if m.kind == 'fixed' and abs(m.scale - s) > 1e-6:
                    results[(m.name, ds.name, s)].note = f'skipped: fixed-scale model (x{format_scale(m.scale)} only)'
            for idx, path in enumerate(progress(paths, f'{ds.name} x{format_scale(s)}', disable=args.quiet)):
                lr, hr = make_pair(ds, path, s)
                outputs, report_outputs = [], {}
                for m in models:
                    r = results[(m.name, ds.name, s)]
                    if r.note:
                        continue
                    if device.type == 'cuda':
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    sr = run_model(m, lr, hr.shape[:2], device, args.chunk_size, args.precision)
                    if device.type == 'cuda':
                        torch.cuda.synchronize()
                    r.seconds.append(time.perf_counter() - t0)
                    psnr, ssim = metrics(sr, hr, border, ds.test_y_channel)
                    r.psnr.append(psnr)
                    r.ssim.append(ssim)
                    if report:
                        report_outputs[m.name] = (sr, psnr, ssim)
                    if m.kind != 'bicubic':  # the crop figure always has its own bicubic panel
                        outputs.append((f'{m.name} {psnr:.2f} dB', sr))
                if idx < n_crops:
                    bic = bicubic_upscale(lr, hr.shape[:2])
                    bic_psnr = metrics(bic, hr, border, ds.test_y_channel)[0]
                    panels = [('HR', hr), (f'bicubic {bic_psnr:.2f} dB', bic)] + outputs
                    stem = os.path.splitext(os.path.basename(path))[0]
                    crop_path = os.path.join(crops_dir, f'{ds.name}_x{format_scale(s)}_{stem}.png')
                    check_output_free(crop_path, args.force)
                    plot_crops(crop_path, f'{ds.name} {stem} x{format_scale(s)}', panels, pick_crop(hr, crop_side))
                if report:
                    crop = crop_path if idx < n_crops else None
                    report.add(ds, s, border, path, lr, hr, report_outputs, crop)
    write_tables(out_dir, models, datasets, results)
    plot_psnr_vs_scale(os.path.join(out_dir, 'psnr_vs_scale.png'), models, datasets, results)
    if report:
        report.write(models, datasets, results)
    if not args.quiet:
        print(f'wrote results to {out_dir}', file=sys.stderr)
    return results


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())

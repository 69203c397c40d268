"""Inspect the Gaussian bank of a trained GaussianSR and which kernels the LR pixels select.

Writes into ``--output`` (paper Figs. 6-8):

* ``bank_histograms.png``: histograms of sigma_y, sigma_x, rho and opacity over the bank;
* ``bank_kernels.png``: every bank kernel drawn as an image (opacity x peak-normalised Gaussian,
  on a +-2 LR-pixel window), with its index;
* ``selection_frequency.png`` / ``.csv``: how often each kernel is chosen, per input image and per
  LR scale of the input (the image downscaled by each ``--lr-scales`` factor). The choice is the
  argmax of the classifier on LR features, so it does not depend on the output (upscaling) scale:
  only the LR content, hence the LR scale, can change it;
* ``choice_map_<stem>.png``: the image beside a colour-coded map of the kernel each LR pixel chose.
"""

import argparse
import csv
import io
import math
import os
import sys

import numpy as np
import torch

from gaussiansr_arch.data.protocol import image_to_tensor, lr_size_for, make_lr_uint8
from gaussiansr_arch.toolkit.plotting import pyplot
from gaussiansr_arch.tools.common import (
    Tool,
    ToolError,
    add_weights_args,
    check_output_dir,
    check_output_free,
    collect_images,
    format_scale,
    opt_network,
    progress,
    resolve_device,
    save_figure_atomic,
    write_text_atomic,
)
from gaussiansr_arch.utils.weights import load_model

SCALE_NOTE = (
    'kernel choice = argmax of the classifier on LR features: independent of the output scale; '
    'it can only change with the LR content (shown per LR scale of the input)'
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-kernel-bank``."""
    parser = argparse.ArgumentParser(
        prog='gaussiansr-kernel-bank',
        description=(
            'Plot the Gaussian bank of a trained GaussianSR (parameter histograms, the kernels as images) '
            'and, for some images, the kernel-selection frequency per image and per LR scale and a map of the '
            'kernel each LR pixel chose. All PNGs go to --output.'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument('inputs', nargs='*', help='LR images, folders or quoted globs (none: bank plots only)')
    add_weights_args(parser, 'GaussianSR weights (net_g_*.pth with --opt, or self-describing weights with network_g)')
    parser.add_argument(
        '--lr-scales',
        nargs='+',
        type=float,
        default=[1.0, 2.0, 4.0],
        help='also analyse each image downscaled by these factors (1 = as given)',
    )
    parser.add_argument('-o', '--output', default='results/kernel_bank', help='output folder')
    parser.add_argument('--force', action='store_true', help='overwrite existing PNGs')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def kernel_images(bank: np.ndarray, size: int = 33, extent: float = 2.0) -> np.ndarray:
    """[N,size,size] images of the bank's kernels: opacity * exp(-0.5 d^T Sigma^-1 d), d in LR pixels.

    The Gaussian is the arch's own :func:`~gaussiansr_arch.archs.gaussian_field.gaussian_weight`
    (evaluated in float64).
    """
    from gaussiansr_arch.archs.gaussian_field import gaussian_weight

    axis = np.linspace(-extent, extent, size)
    offset = torch.from_numpy(np.stack(np.meshgrid(axis, axis, indexing='ij'), axis=-1))  # [size,size,2] (dy, dx)
    params = torch.as_tensor(np.asarray(bank), dtype=torch.float64).reshape(-1, 4)  # (sigma_y, sigma_x, rho, opacity)
    sigma, rho, opacity = params[:, None, None, 0:2], params[:, None, None, 2], params[:, None, None, 3]
    return (opacity * gaussian_weight(offset[None], sigma, rho)).numpy()


def plot_histograms(bank: np.ndarray, path: str) -> None:
    """Histograms of the four kernel parameters (paper Fig. 6)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, col, name in zip(axes, range(4), ('sigma_y (LR px)', 'sigma_x (LR px)', 'rho', 'opacity')):
        ax.hist(bank[:, col], bins=min(30, max(5, len(bank) // 3)), color='tab:blue', edgecolor='white')
        ax.set_title(name)
        ax.set_ylabel('kernels')
    fig.suptitle(f'Gaussian bank: {len(bank)} kernels')
    save_figure_atomic(fig, path)


def plot_kernels(bank: np.ndarray, path: str) -> None:
    """All kernels as a mosaic, each labelled with its bank index."""
    plt = pyplot()
    imgs = kernel_images(bank)
    n, side = len(imgs), imgs.shape[1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gap = 3
    mosaic = np.full((rows * (side + gap), cols * (side + gap)), np.nan)
    for i, img in enumerate(imgs):
        r, c = divmod(i, cols)
        mosaic[r * (side + gap) : r * (side + gap) + side, c * (side + gap) : c * (side + gap) + side] = img
    fig, ax = plt.subplots(figsize=(1.0 * cols + 1.5, 1.0 * rows + 0.6))
    im = ax.imshow(mosaic, cmap='magma', vmin=0, vmax=1, interpolation='nearest')
    for i in range(n):
        r, c = divmod(i, cols)
        ax.text(c * (side + gap) + 1, r * (side + gap) + 4, str(i), color='white', fontsize=6)
    ax.axis('off')
    ax.set_title('bank kernels: opacity x Gaussian on a +-2 LR-pixel window')
    fig.colorbar(im, ax=ax, fraction=0.03)
    save_figure_atomic(fig, path)


@torch.no_grad()
def kernel_choice(arch, img: np.ndarray, device) -> np.ndarray:
    """[h,w] bank index each LR pixel of ``img`` (uint8 RGB) chose (eval-mode argmax)."""
    state = arch.encode(image_to_tensor(img, device))
    return state.kernels.choice[0].cpu().numpy()


def downscale(img: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB-bicubic downscale of a uint8 RGB image by ``factor`` (1 = unchanged) to the protocol's
    LR size ``floor(n / factor)`` (at least 1), 8-bit like a saved LR (the whole image, not cropped)."""
    if factor == 1:
        return img
    size = tuple(max(1, n) for n in lr_size_for(img.shape[:2], factor))
    return make_lr_uint8(img, size)


def plot_choice_map(img: np.ndarray, choice: np.ndarray, n_kernels: int, title: str, path: str) -> None:
    """The LR image beside its per-pixel kernel index map (one colour per bank index)."""
    plt = pyplot()
    cmap = plt.get_cmap('tab20' if n_kernels <= 20 else 'nipy_spectral', n_kernels)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    axes[0].imshow(img, interpolation='nearest')
    axes[0].set_title(title)
    im = axes[1].imshow(choice, cmap=cmap, vmin=-0.5, vmax=n_kernels - 0.5, interpolation='nearest')
    used = len(np.unique(choice))
    axes[1].set_title(f'chosen kernel per LR pixel ({used} of {n_kernels} used)')
    for ax in axes:
        ax.axis('off')
    fig.colorbar(im, ax=axes[1], fraction=0.046, label='bank index')
    save_figure_atomic(fig, path)


def plot_frequencies(freqs: dict, n_kernels: int, path: str) -> None:
    """One subplot per image: selection frequency over the bank, one line per LR scale."""
    plt = pyplot()
    stems = list(freqs)
    fig, axes = plt.subplots(len(stems), 1, figsize=(12, 2.8 * len(stems) + 0.6), squeeze=False, layout='constrained')
    for ax, stem in zip(axes[:, 0], stems):
        for factor, freq in freqs[stem].items():
            ax.plot(np.arange(n_kernels), freq, marker='.', label=f'LR / {format_scale(factor)}')
        ax.set_title(stem)
        ax.set_xlabel('bank index')
        ax.set_ylabel('fraction of LR pixels')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle('kernel selection frequency\n' + SCALE_NOTE, fontsize=9)
    save_figure_atomic(fig, path)


def _run(args: argparse.Namespace) -> dict:
    from gaussiansr_arch.archs.gaussiansr_arch import GaussianSR
    from gaussiansr_arch.utils.image_io import read_image

    for f in args.lr_scales:
        if not math.isfinite(f) or f < 1:
            raise ToolError(f'--lr-scales {f:g}: factors must be finite and >= 1')
    device = resolve_device(args.device)
    paths = collect_images(args.inputs) if args.inputs else []
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    outputs = ['bank_histograms.png', 'bank_kernels.png']
    if paths:
        outputs += ['selection_frequency.png', 'selection_frequency.csv'] + [f'choice_map_{s}.png' for s in stems]
    check_output_dir(args.output)
    outputs = [os.path.join(args.output, name) for name in outputs]
    for out in outputs:
        check_output_free(out, args.force)

    network_g, source = opt_network(args.opt)
    arch = load_model(args.weights, device, param_key=args.param_key, network_g=network_g, source=source)
    network_opt = arch.network_g
    if not isinstance(arch, GaussianSR) or arch.splatting is None:
        raise ToolError(
            f'weights {args.weights}: {network_opt["type"]} has no Gaussian bank '
            f'(needs GaussianSR with splat_channels > 0)'
        )
    bank = arch.splatting.bank.kernels().detach().cpu().numpy()
    n = len(bank)
    plot_histograms(bank, outputs[0])
    plot_kernels(bank, outputs[1])

    freqs: dict = {}
    for path, stem in zip(progress(paths, 'kernel choice', disable=args.quiet or not paths), stems):
        img = read_image(path)
        freqs[stem] = {}
        for factor in args.lr_scales:
            lr = downscale(img, factor)
            choice = kernel_choice(arch, lr, device)
            freqs[stem][factor] = np.bincount(choice.ravel(), minlength=n) / choice.size
            if factor == args.lr_scales[0]:
                plot_choice_map(
                    lr,
                    choice,
                    n,
                    f'{stem} (LR / {format_scale(factor)}, {lr.shape[0]}x{lr.shape[1]})',
                    os.path.join(args.output, f'choice_map_{stem}.png'),
                )
    if paths:
        plot_frequencies(freqs, n, os.path.join(args.output, 'selection_frequency.png'))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator='\n')
        writer.writerow(['image', 'lr_scale'] + [f'k{i}' for i in range(n)])
        for stem, per_scale in freqs.items():
            for factor, freq in per_scale.items():
                writer.writerow([stem, format_scale(factor)] + [f'{v:.6f}' for v in freq])
        write_text_atomic(os.path.join(args.output, 'selection_frequency.csv'), buf.getvalue())
    if not args.quiet:
        print(f'wrote {len(outputs)} file(s) to {args.output}', file=sys.stderr)
    return {'bank': bank, 'frequencies': freqs, 'outputs': outputs}


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())

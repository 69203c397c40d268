"""What ``gaussiansr-compare`` writes: the CSV and Markdown tables, the PSNR-vs-scale plot and crops.

Every function takes the comparison's models, datasets and per-(model, dataset, scale) results as
``compare`` builds them and writes atomically (a failed write leaves nothing partial).
"""

import csv
import io
import os

import numpy as np

from gaussiansr_arch.toolkit.outputs import format_scale, save_figure_atomic, write_text_atomic
from gaussiansr_arch.toolkit.plotting import pyplot


def pick_crop(hr: np.ndarray, side: int) -> tuple[int, int, int]:
    """Top-left corner and side of the most textured square (highest HR variance on a coarse grid)."""
    side = max(8, min(side, hr.shape[0], hr.shape[1]))
    gray = hr.astype(np.float32).mean(axis=2)
    best, best_yx = -1.0, (0, 0)
    step = max(1, side // 2)
    for y in range(0, hr.shape[0] - side + 1, step):
        for x in range(0, hr.shape[1] - side + 1, step):
            v = float(gray[y : y + side, x : x + side].var())
            if v > best:
                best, best_yx = v, (y, x)
    return best_yx[0], best_yx[1], side


def _mean(values: list) -> float:
    return float(np.mean(values)) if values else float('nan')


def write_tables(out_dir: str, models, datasets, results) -> None:
    """results.csv (one row per model x dataset x scale) and results.md (PSNR/SSIM grid)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(['model', 'dataset', 'scale', 'psnr', 'ssim', 'params', 'seconds_per_image', 'images', 'note'])
    for m in models:
        for ds in datasets:
            for s in ds.scales:
                r = results[(m.name, ds.name, s)]
                writer.writerow(
                    [
                        m.name,
                        ds.name,
                        format_scale(s),
                        f'{_mean(r.psnr):.4f}',
                        f'{_mean(r.ssim):.4f}',
                        m.params,
                        f'{_mean(r.seconds):.4f}',
                        len(r.psnr),
                        r.note,
                    ]
                )
    write_text_atomic(os.path.join(out_dir, 'results.csv'), buf.getvalue())

    cols = [(ds, s) for ds in datasets for s in ds.scales]
    lines = [
        '# SR comparison',
        '',
        'PSNR (dB) / SSIM with `basicsr.metrics` on uint8 images. '
        'Protocol per dataset: '
        + '; '.join(
            f'{ds.name}: {"Y channel" if ds.test_y_channel else "RGB"}, crop border {ds.crop_border}' for ds in datasets
        )
        + '.',
        '',
        '| model | params | s/img | ' + ' | '.join(f'{ds.name} x{format_scale(s)}' for ds, s in cols) + ' |',
        '|---|---:|---:|' + '---:|' * len(cols),
    ]
    notes = []
    for m in models:
        cells, secs = [], []
        for ds, s in cols:
            r = results[(m.name, ds.name, s)]
            secs.extend(r.seconds)
            cells.append(f'{_mean(r.psnr):.2f} / {_mean(r.ssim):.4f}' if r.psnr else '-')
            if r.note:
                notes.append(f'- {m.name} on {ds.name} x{format_scale(s)}: {r.note}')
        params = f'{m.params / 1e6:.2f}M' if m.params else '-'
        lines.append(f'| {m.name} | {params} | {_mean(secs):.3f} | ' + ' | '.join(cells) + ' |')
    if notes:
        lines += ['', 'Notes:', ''] + notes
    write_text_atomic(os.path.join(out_dir, 'results.md'), '\n'.join(lines) + '\n')


def plot_psnr_vs_scale(path: str, models, datasets, results) -> None:
    """One subplot per dataset: PSNR against scale, one line per model."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for m in models:
            pts = [
                (s, _mean(results[(m.name, ds.name, s)].psnr)) for s in ds.scales if results[(m.name, ds.name, s)].psnr
            ]
            if pts:
                xs, ys = zip(*sorted(pts))
                ax.plot(xs, ys, marker='o', label=m.name)
        ax.set_title(ds.name)
        ax.set_xlabel('scale')
        ax.set_ylabel('PSNR (dB)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure_atomic(fig, path)


def plot_crops(path: str, title: str, panels: list, box: tuple[int, int, int]) -> None:
    """Side-by-side crops ``panels`` = [(label, uint8 image)] of the region ``box`` = (y, x, side)."""
    plt = pyplot()
    y, x, side = box
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (label, img) in zip(axes[0], panels):
        ax.imshow(img[y : y + side, x : x + side], interpolation='nearest')
        ax.set_title(label, fontsize=8)
        ax.axis('off')
    fig.suptitle(title, fontsize=9)
    save_figure_atomic(fig, path)

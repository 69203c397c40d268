"""Plot the validation curves of several BasicSR training runs on one figure.

Sources per run: BasicSR text logs (``train_*.log``; validation blocks ``Validation <name>``
followed by ``# psnr: 30.1234`` lines, the iteration taken from the last training line
``[epoch: .., iter: 5,000, ...]`` before them: :mod:`gaussiansr_arch.toolkit.training_log`, the
parser ``gaussiansr-model-card`` uses too) and/or TensorBoard event files (scalars
``metrics/<dataset>/<metric>``, as BasicSR writes them). One subplot per (dataset, metric).
"""

import argparse
import glob
import os
import sys
from collections import defaultdict

from gaussiansr_arch.toolkit.plotting import pyplot
from gaussiansr_arch.toolkit.training_log import Curves, parse_logs
from gaussiansr_arch.tools.common import Tool, ToolError, check_output_dir, check_output_free, save_figure_atomic


def parse_events(path: str) -> Curves:
    """Scalars ``metrics/<dataset>/<metric>`` of TensorBoard event files under ``path``."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise ToolError(f'{path}: reading TensorBoard events needs the tensorboard package') from None
    acc = EventAccumulator(path, size_guidance={'scalars': 0})
    try:
        acc.Reload()
    except Exception as err:  # corrupt event file
        raise ToolError(f'event file {path}: cannot read ({type(err).__name__}: {err})') from None
    curves: Curves = defaultdict(dict)
    for tag in acc.Tags().get('scalars', []):
        parts = tag.split('/')
        if len(parts) >= 3 and parts[0] == 'metrics':
            key = ('/'.join(parts[1:-1]), parts[-1])
            for ev in acc.Scalars(tag):
                curves[key][int(ev.step)] = float(ev.value)
    return curves


def find_sources(path: str) -> tuple[list[str], list[str]]:
    """Text logs and event-file folders of a run given as a file or a folder."""
    if os.path.isfile(path):
        if os.path.basename(path).startswith('events.out.tfevents'):
            return [], [path]
        return [path], []
    if os.path.isdir(path):
        logs = sorted(glob.glob(os.path.join(path, 'train_*.log')))
        events = sorted(glob.glob(os.path.join(path, '**', 'events.out.tfevents*'), recursive=True))
        if not logs and not events:
            raise ToolError(f'run {path}: no train_*.log or events.out.tfevents* inside')
        return logs, events
    raise ToolError(f'run {path}: no such file or folder')


def load_run(path: str) -> Curves:
    """All validation curves of one run; later logs (a resumed run) override earlier points."""
    logs, events = find_sources(path)
    merged: Curves = parse_logs(logs)
    for ev in events:
        for key, pts in parse_events(ev).items():
            merged[key].update(pts)
    return merged


def plot_runs(runs: dict, path: str, title: str | None = None) -> list:
    """One subplot per (dataset, metric) with one line per run; returns the subplot keys."""
    plt = pyplot()
    keys = sorted({k for curves in runs.values() for k in curves})
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for label, curves in runs.items():
            pts = sorted(curves.get(key, {}).items())
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker='.', label=label)
        ax.set_title(f'{key[0]}  {key[1]}')
        ax.set_xlabel('iteration')
        ax.set_ylabel(key[1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis('off')
    if title:
        fig.suptitle(title)
    save_figure_atomic(fig, path)
    return keys


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``gaussiansr-plot-curves``."""
    parser = argparse.ArgumentParser(
        prog='gaussiansr-plot-curves',
        description=(
            'Plot validation curves (PSNR, SSIM ...) of several BasicSR runs on one PNG, one subplot per '
            'validation dataset and metric. Each RUN is a train_*.log file, an events.out.tfevents* file, or '
            'a folder holding them (e.g. experiments/<name> or tb_logger/<name>).'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument('runs', nargs='+', metavar='RUN', help='log file, event file or run folder')
    parser.add_argument('--labels', nargs='+', help='legend label per RUN (default: folder or file name)')
    parser.add_argument(
        '-o', '--output', default='results', help='output folder (as for every tool that writes images)'
    )
    parser.add_argument('--name', default='curves.png', help='file name of the PNG written in the output folder')
    parser.add_argument('--metrics', nargs='+', help='only these metrics (e.g. psnr)')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--force', action='store_true', help='overwrite the output PNG')
    return parser


def _label(path: str) -> str:
    path = os.path.normpath(path)
    return os.path.basename(path if os.path.isdir(path) else os.path.dirname(path)) or os.path.basename(path)


def _run(args: argparse.Namespace) -> dict:
    if args.labels and len(args.labels) != len(args.runs):
        raise ToolError(f'--labels: {len(args.labels)} labels for {len(args.runs)} runs')
    if os.path.basename(args.name) != args.name or not args.name.lower().endswith('.png'):
        raise ToolError(f'--name {args.name}: a file name ending in .png (the folder is -o)')
    if args.output.lower().endswith('.png') and not os.path.exists(args.output):
        raise ToolError(f'-o {args.output}: -o is the output folder; name the file with --name')
    check_output_dir(args.output)
    png = os.path.join(args.output, args.name)
    check_output_free(png, args.force)
    runs = {}
    for i, path in enumerate(args.runs):
        curves = load_run(path)
        if args.metrics:
            curves = {k: v for k, v in curves.items() if k[1] in args.metrics}
        if not curves:
            raise ToolError(f'run {path}: no validation metrics found')
        label = args.labels[i] if args.labels else _label(path)
        while label in runs:
            label += "'"
        runs[label] = curves
    keys = plot_runs(runs, png, args.title)
    print(f'wrote {png} ({len(runs)} runs, {len(keys)} subplots)', file=sys.stderr)
    return runs


run, main = Tool(build_parser, _run).entry_points()

if __name__ == '__main__':
    sys.exit(main())

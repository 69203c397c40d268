"""What a BasicSR training log (``train_<name>_<time>.log``) says, for the tools that read runs.

One parser, shared by ``gaussiansr-plot-curves`` (curves) and ``gaussiansr-model-card`` (the
validation table and how far training went):

* validation blocks: a line ``Validation <dataset>`` followed by ``# <metric>: <value>`` lines
  (BasicSR's ``_log_validation_metric_values``). BasicSR does not print the iteration there, so
  it is taken from the last training line ``[epoch: .., iter: 5,000, ...]`` before the block:
  exact when ``print_freq`` divides ``val_freq`` (BasicSR's defaults and every YAML of ours). The
  ``Best: ... @ N iter`` suffix is not used: after the last iteration BasicSR validates once more
  with an iteration past ``total_iter``, which would be a point that was never trained;
* progress: the last logged training iteration, whether the log ends with ``End of training``,
  and the world size BasicSR reports (``World size (gpu number): N``).

A resumed run writes one log per launch into the same folder; :func:`parse_logs` merges them in
launch order (later points win).
"""

import contextlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gaussiansr_arch.toolkit.errors import ToolError

ITER_RE = re.compile(r'\biter:\s*([\d,]+)')
VALIDATION_RE = re.compile(r'Validation\s+(\S+)')
METRIC_RE = re.compile(r'#\s*([A-Za-z0-9_\-]+):\s*([-+0-9.eE]+|nan|inf)')
WORLD_SIZE_RE = re.compile(r'World size \(gpu number\):\s*(\d+)')
END_OF_TRAINING = 'End of training'
# BasicSR names logs train_<name>_<YYYYmmdd_HHMMSS>.log: the time orders the launches of a run.
LOG_TIME_RE = re.compile(r'_(\d{8}_\d{6})\.log$')

# Curves: {(dataset, metric): {iteration: value}}
Curves = dict


def read_log_lines(path: str) -> list[str]:
    """The lines of a log; ToolError naming it when it cannot be read."""
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.readlines()
    except OSError as err:
        raise ToolError(f'log {path}: cannot read ({err.strerror or err})') from None


def parse_log(path: str) -> Curves:
    """Validation metrics of one BasicSR text log: ``{(dataset, metric): {iter: value}}``.

    A validation logged before any training line (nothing trained yet in this log) is skipped.
    """
    curves: Curves = defaultdict(dict)
    current_iter, dataset = None, None
    for line in read_log_lines(path):
        m_val = VALIDATION_RE.search(line)
        if m_val:
            dataset = m_val.group(1).rstrip(':,')
            continue
        m_metric = METRIC_RE.search(line)
        if m_metric and dataset is not None:
            if current_iter is not None:
                with contextlib.suppress(ValueError):  # e.g. '1.2.3'
                    curves[(dataset, m_metric.group(1))][current_iter] = float(m_metric.group(2))
            continue
        m_iter = ITER_RE.search(line)
        if m_iter and 'Best:' not in line:
            current_iter = int(m_iter.group(1).replace(',', ''))
            dataset = None
    return curves


def launch_order(path: str) -> tuple[str, float]:
    """Sort key of the logs of one run: the launch time in BasicSR's file name, then the file's mtime."""
    found = LOG_TIME_RE.search(os.path.basename(path))
    return (found.group(1) if found else '', os.path.getmtime(path))


def parse_logs(paths: Iterable[str]) -> Curves:
    """Validation metrics of the logs of one run (:func:`parse_log`), merged in launch order."""
    merged: Curves = defaultdict(dict)
    for path in sorted(paths, key=launch_order):
        for key, points in parse_log(path).items():
            merged[key].update(points)
    return merged


@dataclass
class TrainingProgress:
    """How far the logs of a run went.

    Attributes:
        last_iter (int | None): The last training iteration logged (every ``print_freq``).
        ended (bool): The last log says ``End of training`` (BasicSR then saved ``net_g_latest``
            after ``total_iter`` iterations).
        world_size (int | None): Processes of the last launch (GPUs, or CPU processes with gloo).
    """

    last_iter: int | None = None
    ended: bool = False
    world_size: int | None = None


def training_progress(paths: Iterable[str]) -> TrainingProgress:
    """:class:`TrainingProgress` of the logs of one run (the last launch decides ``ended``)."""
    progress = TrainingProgress()
    for path in sorted(paths, key=launch_order):
        progress.ended = False
        for line in read_log_lines(path):
            if END_OF_TRAINING in line:
                progress.ended = True
            elif (found := WORLD_SIZE_RE.search(line)) is not None:
                progress.world_size = int(found.group(1))
            elif 'Best:' not in line and (found := ITER_RE.search(line)) is not None:
                progress.last_iter = int(found.group(1).replace(',', ''))
    return progress

"""What ``gaussiansr-train`` / ``gaussiansr-test`` add around BasicSR's own pipelines.

    with basicsr_entry('train', argv, 'gaussiansr-train') as root:
        if root is not None:  # None: --help was printed
            basicsr.train.train_pipeline(root)

* ``--root DIR``: where experiments/, tb_logger/ and results/ go (default: the working directory);
  every other argument goes to BasicSR's own parser (through ``sys.argv``, restored afterwards);
  torch.distributed.launch's ``--local-rank`` is renamed to BasicSR's ``--local_rank``;
* the ``-opt`` YAML is checked first (:mod:`gaussiansr_arch.utils.option_checks`);
* :func:`gaussiansr_arch.utils.basicsr_patches.install`: CPU DDP, crash-safe CPU resume, a resume that
  continues the run's batch stream;
* usage errors BasicSR reports as tracebacks (unknown registry type, missing or mistyped options,
  unreadable images, missing LMDB keys, weights of another arch, truncated weight files, unusable
  resume states, a non-finite loss) exit with one line (:mod:`gaussiansr_arch.utils.entry_errors`);
  ``GAUSSIANSR_DEBUG=1`` (or ``--debug``) shows the traceback instead.

A top-level module: it names errors of the datasets and models, which ``utils`` may not import.
"""

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from os import path as osp

from gaussiansr_arch.data.arbitrary_scale_dataset import LmdbKeyError
from gaussiansr_arch.models.arbitrary_scale_sr_model import NonFiniteLossError
from gaussiansr_arch.utils import basicsr_patches
from gaussiansr_arch.utils.entry_errors import entry_error_message
from gaussiansr_arch.utils.image_io import ImageReadError
from gaussiansr_arch.utils.option_checks import options_file_error

# Errors whose message says all a user needs (which option, file or iteration); EntryError
# (resume states, network files) is one too.
USER_ERRORS = (ImageReadError, LmdbKeyError, NonFiniteLossError)


@contextlib.contextmanager
def basicsr_entry(pipeline: str, argv: list[str] | None, prog: str) -> Iterator[str | None]:
    """Run the body as BasicSR's ``<pipeline>.py`` would run, yielding the root path (None after --help).

    Args:
        pipeline (str): 'train' or 'test' (which options are required).
        argv (list[str] | None): Arguments without the program name; None = ``sys.argv[1:]``.
        prog (str): Program name shown in messages and recorded in the copied YAML.
    """
    parser = argparse.ArgumentParser(prog=prog, add_help=False)
    parser.add_argument('--root', default=None)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if any(a in ('-h', '--help') for a in rest):
        print(
            f'usage: {prog} -opt YAML [--launcher none|pytorch|slurm] [--auto_resume] [--debug] '
            '[--force_yml K:K=V ...] [--local_rank N] [--root DIR]\n'
            '  --root DIR  folder receiving experiments/, tb_logger/ and results/ (default: cwd)'
        )
        yield None
        return
    rest = [a.replace('--local-rank', '--local_rank', 1) if a.startswith('--local-rank') else a for a in rest]
    root = osp.abspath(args.root if args.root is not None else os.getcwd())
    debug = os.environ.get('GAUSSIANSR_DEBUG', '') not in ('', '0') or '--debug' in rest
    if '-opt' in rest and rest.index('-opt') + 1 < len(rest):  # else BasicSR's parser prints its usage
        problem = options_file_error(rest[rest.index('-opt') + 1], pipeline)
        if problem is not None:
            raise SystemExit(f'{prog}: error: {problem}')
    basicsr_patches.install()
    saved_argv, sys.argv = sys.argv, [prog, *rest]
    try:
        yield root
    except Exception as err:
        message = None if debug else entry_error_message(err, USER_ERRORS)
        if message is None:
            raise
        raise SystemExit(f'{prog}: error: {message}') from None
    finally:
        sys.argv = saved_argv

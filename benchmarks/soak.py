"""Soak test: a long CPU training run through the real train entry, with resident memory sampled.

Not part of CI (minutes to tens of minutes). Trains a tiny GaussianSR for ``--iters`` iterations
(checkpoints and validation included, so every periodic code path runs many times) and checks that
resident memory (VmRSS) does not grow between iteration ``--from-iter`` and the end by more than
``--max-growth`` (a leak of even a few KB per iteration shows up over thousands of iterations).

    python benchmarks/soak.py --iters 2000 --work /tmp/gsr_soak   # exit 1 when memory grows too much

Memory is read from ``/proc/self/status`` (psutil is not a dependency): by a model hook at every
``--sample-every`` iterations (exact iteration numbers) and by a background thread every second
(the peak, which also sees validation and checkpoint saving).
"""

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

import gaussiansr_arch  # noqa: F401  (torchvision shim + registration: must precede any basicsr import)

# isort: split
from basicsr.utils.registry import MODEL_REGISTRY

from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel
from gaussiansr_arch.utils.option_files import read_options

OPTIONS = Path(__file__).resolve().parent / 'options' / 'soak.yml'  # soak_opt sets the run's part

RSS_SAMPLES: dict[int, int] = {}  # iteration -> VmRSS in kB (filled by the model hook)
SAMPLE_EVERY = [100]


def vm_rss_kb() -> int:
    """Resident set size of this process in kB, from /proc/self/status."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('VmRSS not found in /proc/self/status (Linux only)')


if 'SoakArbitraryScaleSRModel' not in MODEL_REGISTRY:

    @MODEL_REGISTRY.register()
    class SoakArbitraryScaleSRModel(ArbitraryScaleSRModel):
        """ArbitraryScaleSRModel that records VmRSS after every ``SAMPLE_EVERY`` training steps."""

        def optimize_parameters(self, current_iter: int) -> None:
            super().optimize_parameters(current_iter)
            if current_iter % SAMPLE_EVERY[0] == 0:
                RSS_SAMPLES[current_iter] = vm_rss_kb()


class PeakSampler(threading.Thread):
    """Samples VmRSS every ``interval`` seconds; keeps the peak and the sample count."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak, self.count = interval, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, vm_rss_kb())
            self.count += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def make_data(root: Path) -> dict:
    """Three 96x96 training photos and one 48x48 validation photo (scikit-image), on disk."""
    import skimage.data

    train, val = root / 'train', root / 'val'
    train.mkdir(parents=True, exist_ok=True)
    val.mkdir(exist_ok=True)
    photos = [
        skimage.data.astronaut()[100:196, 180:276],
        skimage.data.chelsea()[60:156, 120:216],
        skimage.data.coffee()[100:196, 200:296],
    ]
    for i, img in enumerate(photos):
        cv2.imwrite(str(train / f'{i:04d}.png'), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(val / '0000.png'), cv2.cvtColor(np.ascontiguousarray(photos[0][:48, :48]), cv2.COLOR_RGB2BGR))
    return {'train': str(train), 'val': str(val)}


def soak_opt(data: dict, iters: int, ckpt_every: int, val_every: int) -> dict:
    """A tiny GaussianSR config: ~25k parameters, 16x16 LR patches, batch 2, 128 queries
    (``benchmarks/options/soak.yml`` with the data folders and the command line's frequencies)."""
    opt = read_options(OPTIONS)
    opt['datasets']['train']['dataroot_gt'] = data['train']
    opt['datasets']['val_x2']['dataroot_gt'] = data['val']
    opt['train']['scheduler']['milestones'] = [iters // 2]
    opt['train']['total_iter'] = iters
    opt['val']['val_freq'] = val_every
    opt['logger']['save_checkpoint_freq'] = ckpt_every
    return opt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iters', type=int, default=2000)
    parser.add_argument('--from-iter', type=int, default=200, help='baseline iteration of the growth figure')
    parser.add_argument('--sample-every', type=int, default=100)
    parser.add_argument('--ckpt-every', type=int, default=500)
    parser.add_argument('--val-every', type=int, default=500)
    parser.add_argument('--max-growth', type=float, default=0.05, help='allowed relative VmRSS growth')
    parser.add_argument('--work', default='/tmp/gsr_soak', help='data and experiments folder (reused)')
    args = parser.parse_args(argv)
    if args.from_iter % args.sample_every or args.iters % args.sample_every:
        parser.error('--from-iter and --iters must be multiples of --sample-every')
    SAMPLE_EVERY[0] = args.sample_every

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    yml = work / 'soak.yml'
    yml.write_text(yaml.safe_dump(soak_opt(make_data(work / 'data'), args.iters, args.ckpt_every, args.val_every)))

    from gaussiansr_arch.train import main as train_main

    sampler = PeakSampler()
    sampler.start()
    start = time.time()
    # --force_yml name=...: a fresh experiment folder each run (BasicSR would rename an existing one)
    train_main(['-opt', str(yml), '--root', str(work), '--force_yml', f'name=soak_{int(start)}'])
    seconds = time.time() - start
    sampler.stop()

    base, last = RSS_SAMPLES[args.from_iter], RSS_SAMPLES[args.iters]
    growth = (last - base) / base
    result = {
        'iters': args.iters,
        'seconds': round(seconds, 1),
        'sec_per_iter': round(seconds / args.iters, 4),
        f'rss_kb_at_{args.from_iter}': base,
        f'rss_kb_at_{args.iters}': last,
        'growth': round(growth, 4),
        'peak_rss_kb': sampler.peak,
        'samples_kb': RSS_SAMPLES,
        'max_growth': args.max_growth,
        'passed': growth < args.max_growth,
    }
    print(json.dumps(result, indent=1))
    print(
        f'soak: VmRSS {base} kB at iter {args.from_iter} -> {last} kB at iter {args.iters}: '
        f'{100 * growth:+.2f}% ({"PASS" if result["passed"] else "FAIL"}, limit {100 * args.max_growth:.0f}%), '
        f'{seconds:.0f}s',
        file=sys.stderr,
    )
    return 0 if result['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())

"""Smoke test of the benchmark scripts: each runs end to end with tiny sizes and prints its figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks'


def run(script: str, *args: str, timeout: float = 120) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=BENCH.parent,
    )
    assert proc.returncode == 0, f'{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout


@pytest.mark.parametrize(
    'script',
    [
        'bench_inference.py',
        'bench_memory.py',
        'bench_train.py',
        'bench_quality.py',
        'bench_precision.py',
        'gpu_check.py',
    ],
)
def test_help(script):
    assert 'usage' in run(script, '--help', timeout=60)


def test_inference_tiny():
    out = run(
        'bench_inference.py',
        '--cases',
        '8:16',
        '--runs',
        '1',
        '--multi-lr',
        '8',
        '--multi-n',
        '3',
        '--gemm-rows',
        '256',
        '--threads',
        '1',
        '--no-pretrained',
    )
    assert 'machine:' in out and 'RANDOM-INIT' in out
    assert 'LIIF/x' in out and 'upscale_many' in out and 'ratio' in out


def test_memory_tiny():
    out = run('bench_memory.py', '--lr', '8', '--sizes', '16', '--models', 'gaussiansr')
    assert 'peak resident memory' in out and 'GaussianSR peak' in out


def test_train_tiny(tmp_path):
    out = run(
        'bench_train.py',
        '--iters',
        '2',
        '--warmup',
        '1',
        '--batch',
        '1',
        '--lr-size',
        '8',
        '--sample-q',
        '16',
        '--models',
        'gaussiansr',
        'liif',
        'liif-official-form',
        '--malloc-tuned',
        '--workdir',
        str(tmp_path),
        timeout=200,
    )
    assert 'GaussianSR / liif time per iteration' in out
    assert 'GaussianSR / liif-official-form time per iteration' in out and 'MALLOC_TOP_PAD_' in out


def test_quality_tiny(tmp_path):
    out = run(
        'bench_quality.py',
        '--iters',
        '1',
        '--batch',
        '1',
        '--lr-size',
        '8',
        '--sample-q',
        '16',
        '--eval-every',
        '1',
        '--eval-crop',
        '24',
        '--eval-scales',
        '2',
        '--seeds',
        '0',
        '1',
        '--models',
        'gaussian8',
        'bicubic64+skip',
        'gaussian8+skip',
        '--out',
        str(tmp_path),
        timeout=200,
    )
    assert 'bicubic' in out and 'mean +- std over 2 seed(s)' in out
    assert 'gaussian8+skip - bicubic64+skip' in out and 'gaussian8+skip - gaussian8' in out
    result = json.loads((tmp_path / 'quality.json').read_text())
    assert set(result['curves']) == {'0', '1'} and (tmp_path / 'psnr_vs_iter.png').is_file()


def test_gpu_check_cpu_tiny(tmp_path):
    """gpu_check.sh's script on the CPU with tiny sizes: tests skipped here (the suite runs them)."""
    out = run(
        'gpu_check.py',
        '--device',
        'cpu',
        '--quick',
        '--skip-tests',
        '--cases',
        '8:16',
        '--runs',
        '1',
        '--train-iters',
        '2',
        '--train-batch',
        '1',
        '--train-lr-size',
        '8',
        '--train-sample-q',
        '16',
        '--out',
        str(tmp_path / 'check.md'),
        timeout=300,
    )
    table = (tmp_path / 'check.md').read_text()
    assert '| 8 -> 16 (1 runs) |' in table and 'liif-official-form bf16' in table
    assert '| gaussiansr (bf16) |' in table and 'GaussianSR / LIIF (fp32)' in out


def test_gpu_check_takes_the_other_gaussian_archs(tmp_path):
    run(
        'gpu_check.py',
        '--device',
        'cpu',
        '--skip-tests',
        '--skip-train',
        '--models',
        'gsasr',
        'continuoussr',
        '--cases',
        '12:30',
        '--runs',
        '1',
        '--precisions',
        'fp32',
        '--out',
        str(tmp_path / 'check.md'),
        timeout=300,
    )
    table = (tmp_path / 'check.md').read_text()
    assert '| LR -> output | gsasr fp32 | continuoussr fp32 |' in table and '| 12 -> 30 (1 runs) |' in table


def test_precision_tiny():
    out = run(
        'bench_precision.py',
        '--case',
        '8:16',
        '--runs',
        '1',
        '--scales',
        '2',
        '--crop',
        '24',
        '--no-compile',
        '--threads',
        '1',
        timeout=200,
    )
    assert 'fp32 / bf16' in out and 'gaussiansr x2:' in out and 'liif x2:' in out

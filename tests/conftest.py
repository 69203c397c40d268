"""Shared pytest fixtures. Importing gaussiansr_arch first applies the torchvision shim."""

import os
from pathlib import Path

import pytest
import torch

import gaussiansr_arch  # noqa: F401

from train_helpers import TINY_NET

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / 'shared'


def pytest_addoption(parser):
    parser.addoption(
        '--device', default=None, help='device of tests/test_device.py (default: $GAUSSIANSR_TEST_DEVICE or cpu)'
    )


@pytest.fixture(scope='session')
def device(request) -> torch.device:
    """The device of the device-wide method tests: ``--device cuda`` or GAUSSIANSR_TEST_DEVICE=cuda."""
    name = request.config.getoption('--device') or os.environ.get('GAUSSIANSR_TEST_DEVICE', 'cpu')
    dev = torch.device(name)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        pytest.exit(f'--device {name}: CUDA is not available on this machine', returncode=4)
    return dev


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture
def shared_dir() -> Path:
    """The read-only ../shared folder; tests that need it skip cleanly when it is absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f'{SHARED_DIR} is absent')
    return SHARED_DIR


# The tiny GaussianSR every plumbing test uses (defined once, in train_helpers).
TINY_GAUSSIANSR_OPT = TINY_NET

"""Shared pytest fixtures. Importing gaussiansr_arch first applies the torchvision shim."""

from pathlib import Path

import pytest
import torch

import gaussiansr_arch  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / 'shared'


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


TINY_GAUSSIANSR_OPT = {
    'type': 'GaussianSR',
    'encoder': 'edsr-baseline',
    'encoder_opt': {'num_feat': 16, 'num_block': 1},
    'splat_channels': 4,
    'bank_size': 16,
    'decoder_hidden': [32, 32],
}

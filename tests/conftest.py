"""Shared pytest fixtures. Importing gaussiansr_arch first applies the torchvision shim."""

from pathlib import Path

import pytest
import torch

import gaussiansr_arch  # noqa: F401

from train_helpers import TINY_NET

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


# The tiny GaussianSR every plumbing test uses (defined once, in train_helpers).
TINY_GAUSSIANSR_OPT = TINY_NET

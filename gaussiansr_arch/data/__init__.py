"""Registers every `*_dataset.py` module of this folder with BasicSR (like basicsr.data)."""

from os import path as osp

from gaussiansr_arch.utils.registry_scan import import_modules_with_suffix

_modules = import_modules_with_suffix(__name__, osp.dirname(osp.abspath(__file__)), '_dataset')

"""Thin wrapper: `python scripts/export_onnx.py --help` runs gaussiansr_arch.tools.export_onnx (no install needed)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.export_onnx import main  # noqa: E402

if __name__ == '__main__':
    main()

"""Thin wrapper: `python scripts/onnx_render.py --help` runs gaussiansr_arch.tools.onnx_render (no install needed)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.onnx_render import main  # noqa: E402

if __name__ == '__main__':
    main()

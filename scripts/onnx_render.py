"""Thin wrapper: ``python scripts/onnx_render.py ARGS`` = ``gaussiansr-onnx-render ARGS`` from a checkout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaussiansr_arch.tools.onnx_render import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())

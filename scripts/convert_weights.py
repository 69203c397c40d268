"""Convert weights between .pth and .safetensors (same as ``gaussiansr-convert-weights``).

python scripts/convert_weights.py net_g_latest.pth model.safetensors [--opt run.yml] [--param-key params_ema]
"""

import sys

from gaussiansr_arch.tools.convert_weights import main

if __name__ == '__main__':
    sys.exit(main())

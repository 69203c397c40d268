"""Write the model card of a trained run (same as ``gaussiansr-model-card``).

python scripts/model_card.py experiments/<name> [-o README.md] [--weights model.safetensors] [--force]
"""

import sys

from gaussiansr_arch.tools.model_card import main

if __name__ == '__main__':
    sys.exit(main())

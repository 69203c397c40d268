"""Test hooks for distributed runs: a model that records every training step on every rank.

    torchrun --nproc_per_node=2 tests/ddp_hooks.py train -opt X.yml --launcher pytorch --root DIR

``DDPHookedArbitraryScaleSRModel`` writes into ``opt['test_dump_dir']``:
``step_rank<r>_iter<i>.pt`` (weights after the step, batch scales, a checksum of the batch),
``resumed_rank<r>.pt`` (weights and iteration right after resuming) and ``val_rank<r>_iter<i>``
(an empty marker per validation run).
"""

import os
import sys

import torch

import train_helpers  # noqa: F401  (shim + HookedArbitraryScaleSRModel; its dir is on sys.path)

# isort: split
from basicsr.utils.registry import MODEL_REGISTRY

from gaussiansr_arch.models.arbitrary_scale_sr_model import ArbitraryScaleSRModel

if 'DDPHookedArbitraryScaleSRModel' not in MODEL_REGISTRY:

    @MODEL_REGISTRY.register()
    class DDPHookedArbitraryScaleSRModel(ArbitraryScaleSRModel):
        """ArbitraryScaleSRModel recording each step, resume and validation per rank."""

        def _path(self, name: str) -> str:
            folder = self.opt['test_dump_dir']
            os.makedirs(folder, exist_ok=True)
            return os.path.join(folder, name)

        def optimize_parameters(self, current_iter: int) -> None:
            super().optimize_parameters(current_iter)
            torch.save(
                {
                    'net_g': {k: v.clone() for k, v in self.get_bare_model(self.net_g).state_dict().items()},
                    'scale': self.scale.clone(),
                    'lq_sum': float(self.lq.double().sum()),
                },
                self._path(f'step_rank{self.opt["rank"]}_iter{current_iter}.pt'),
            )

        def resume_training(self, resume_state: dict) -> None:
            super().resume_training(resume_state)
            torch.save(
                {
                    'iter': resume_state['iter'],
                    'net_g': self.get_bare_model(self.net_g).state_dict(),
                    'optimizers': [o.state_dict() for o in self.optimizers],
                },
                self._path(f'resumed_rank{self.opt["rank"]}.pt'),
            )

        def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
            open(self._path(f'val_rank{self.opt["rank"]}_iter{current_iter}'), 'w').close()
            return super().nondist_validation(dataloader, current_iter, tb_logger, save_img)


if __name__ == '__main__':
    kind, argv = sys.argv[1], sys.argv[2:]
    if kind != 'train':
        raise SystemExit(f'unknown entry {kind!r}: use train')
    from gaussiansr_arch.train import main

    main(argv)

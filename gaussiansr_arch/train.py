"""Training entry point: BasicSR's ``train_pipeline`` with the GaussianSR plugin registered.

    gaussiansr-train -opt options/train/train_GaussianSR_EDSR-baseline_DIV2K.yml [--auto_resume] [--root DIR]
    torchrun --nproc_per_node=2 -m gaussiansr_arch.train -opt X.yml --launcher pytorch
"""

from gaussiansr_arch.utils.basicsr_adapters import run_basicsr_entry


def main(argv: list[str] | None = None) -> None:
    """Train as ``basicsr/train.py`` does; ``argv`` excludes the program name (None: sys.argv)."""
    run_basicsr_entry('train', argv, prog='gaussiansr-train')


if __name__ == '__main__':
    main()

"""Training entry point: BasicSR's ``train_pipeline`` with the GaussianSR plugin registered.

    gaussiansr-train -opt options/train/train_GaussianSR_EDSR-baseline_DIV2K.yml [--auto_resume] [--root DIR]
    torchrun --nproc_per_node=2 -m gaussiansr_arch.train -opt X.yml --launcher pytorch

What ``--root``, the option checks, the BasicSR patches and the one-line errors are: gaussiansr_arch/entry.py.
"""

from basicsr.train import train_pipeline

from gaussiansr_arch.entry import basicsr_entry


def main(argv: list[str] | None = None) -> None:
    """Train as ``basicsr/train.py`` does; ``argv`` excludes the program name (None: sys.argv)."""
    with basicsr_entry('train', argv, prog='gaussiansr-train') as root:
        if root is not None:
            train_pipeline(root)


if __name__ == '__main__':
    main()

"""Test entry point: BasicSR's ``test_pipeline`` with the GaussianSR plugin registered.

    gaussiansr-test -opt options/test/test_GaussianSR_EDSR-baseline_Set5.yml [--root DIR]

What ``--root``, the option checks, the BasicSR patches and the one-line errors are: gaussiansr_arch/entry.py.
"""

from basicsr.test import test_pipeline

from gaussiansr_arch.entry import basicsr_entry


def main(argv: list[str] | None = None) -> None:
    """Test as ``basicsr/test.py`` does; ``argv`` excludes the program name (None: sys.argv)."""
    with basicsr_entry('test', argv, prog='gaussiansr-test') as root:
        if root is not None:
            test_pipeline(root)


if __name__ == '__main__':
    main()

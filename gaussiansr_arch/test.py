"""Test entry point: BasicSR's ``test_pipeline`` with the GaussianSR plugin registered.

    gaussiansr-test -opt options/test/test_GaussianSR_EDSR-baseline_Set5.yml [--root DIR]
"""

from gaussiansr_arch.utils.basicsr_adapters import run_basicsr_entry


def main(argv: list[str] | None = None) -> None:
    """Test as ``basicsr/test.py`` does; ``argv`` excludes the program name (None: sys.argv)."""
    run_basicsr_entry('test', argv, prog='gaussiansr-test')


if __name__ == '__main__':
    main()

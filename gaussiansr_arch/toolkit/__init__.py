"""What the command-line tools share, as a library (layer 3, below ``tools/``): ONNX rendering and
graph building, the comparison report, training-log parsing, LMDB building, weight conversions and
atomic outputs with one-line errors (:class:`~gaussiansr_arch.toolkit.errors.ToolError`).

No argument parsing and no exits here: ``tools/`` holds the command lines, and no tool module
imports another (``tests/test_layers.py``).
"""

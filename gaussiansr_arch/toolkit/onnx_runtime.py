"""Render any output size through an ONNX graph of ``gaussiansr-export-onnx`` (query form), with onnxruntime.

From Python (what an app does, given the graph alone)::

    from gaussiansr_arch.toolkit.onnx_runtime import upscale_onnx
    sr = upscale_onnx('gaussiansr_edsr.onnx', rgb_uint8_image, (1080, 1920))  # [1080,1920,3] float32 RGB

The graph is in query form (inputs ``lq`` [1,3,h,w], ``coord`` [1,Q,2], ``cell`` [1,Q,2]; output
``rgb`` [1,Q,3]): :func:`upscale_onnx` sends the output's pixel centres, whole rows at a time, as
:meth:`ArbitraryScaleArch.render` does, so its result equals ``arch.upscale`` up to float rounding.
Every call of the graph encodes ``lq`` again, so larger chunks mean fewer encoder runs (and more
memory: GaussianSR needs ~20 KB per query, i.e. ~330 MB at the default 16384).

onnxruntime (the ``[onnx]`` extra), numpy and torch are imported when a function runs, not with this module.
"""

import os
from collections.abc import Sequence

from gaussiansr_arch.toolkit.errors import ToolError

# Queries per graph call. Each call re-runs the encoder on the whole LR image (query-form graph),
# so this is larger than the PyTorch default of 8192; GaussianSR's field and 3x3 neighbourhood
# take ~20 KB per query, so 16384 stays near 330 MB.
DEFAULT_ONNX_CHUNK_SIZE = 16384
INPUT_NAMES = ('lq', 'coord', 'cell')
OUTPUT_NAME = 'rgb'
ONNX_EXTRA = "pip install 'gaussiansr_arch[onnx]'"


def import_onnx_module(name: str, purpose: str):
    """Import ``onnx``, ``onnxruntime`` or ``onnxscript``; a one-line ToolError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ToolError(f'{purpose} needs the {name} package (the [onnx] extra): {ONNX_EXTRA}') from None


def open_session(model, providers: Sequence[str] = ('CPUExecutionProvider',), threads: int = 0):
    """An onnxruntime ``InferenceSession`` for a path or serialized model bytes (``threads`` 0: onnxruntime's default).

    Raises:
        ToolError: onnxruntime missing, or a file that is not a loadable ONNX model (one line naming it).
    """
    ort = import_onnx_module('onnxruntime', 'running an ONNX graph')
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    name = 'exported graph' if isinstance(model, bytes) else f'model {model}'
    if not isinstance(model, bytes) and not os.path.isfile(model):
        raise ToolError(f'{name}: no such file')
    try:
        return ort.InferenceSession(model, sess_options=options, providers=list(providers))
    except Exception as err:  # onnxruntime's load errors have no common base class
        reason = ' '.join(str(err).split())[:300] or type(err).__name__
        raise ToolError(f'{name}: onnxruntime cannot load it ({reason})') from None


def check_query_graph(session) -> None:
    """Raise ValueError unless ``session`` has the inputs lq, coord, cell and the output rgb."""
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = tuple(o.name for o in session.get_outputs())
    if inputs != INPUT_NAMES or outputs != (OUTPUT_NAME,):
        raise ValueError(
            f'not a gaussiansr-export-onnx graph: inputs {list(inputs)} and outputs {list(outputs)}, '
            f'expected {list(INPUT_NAMES)} and [{OUTPUT_NAME!r}]'
        )


def upscale_onnx(session_or_path, image, size: Sequence[int], chunk_size: int = DEFAULT_ONNX_CHUNK_SIZE):
    """Upscale one image to ``size`` = (H, W) through an exported query graph.

    Args:
        session_or_path: an ``onnxruntime.InferenceSession`` (any providers) or the path of a
            ``.onnx`` file (opened on the CPU).
        image (ndarray): [h,w,3] RGB, uint8 or float in [0,1].
        size (Sequence[int]): output (H, W).
        chunk_size (int): output pixels per graph call (whole rows, at least one row).

    Returns:
        ndarray: [H,W,3] float32 RGB, nominally in [0,1] (not clamped), as ``arch.upscale``.

    Raises:
        ValueError: a bad image, size or chunk size, or a graph without the query-form inputs.
    """
    import numpy as np
    import torch

    from gaussiansr_arch.archs.coordinates import check_size, make_cell, make_coord_rows
    from gaussiansr_arch.data.protocol import to_float

    h_out, w_out = check_size(size)
    if chunk_size <= 0:
        raise ValueError(f'chunk_size must be > 0, got {chunk_size}')
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be an [h,w,3] RGB array, got shape {image.shape}')
    lq = to_float(image) if image.dtype == np.uint8 else image.astype(np.float32)  # as the tools' image_to_tensor
    lq = np.ascontiguousarray(lq.transpose(2, 0, 1)[None])
    session = (
        open_session(os.fspath(session_or_path)) if isinstance(session_or_path, (str, os.PathLike)) else session_or_path
    )
    check_query_graph(session)

    out = np.empty((h_out, w_out, 3), dtype=np.float32)
    rows_per_chunk = max(1, chunk_size // w_out)
    for r0 in range(0, h_out, rows_per_chunk):
        r1 = min(h_out, r0 + rows_per_chunk)
        # The coordinates ArbitraryScaleArch.render sends, from the same function (same float bits).
        coord = make_coord_rows((h_out, w_out), r0, r1, dtype=torch.float32)
        cell = make_cell((h_out, w_out), coord.shape[0], dtype=torch.float32)
        feed = {'lq': lq, 'coord': coord[None].numpy(), 'cell': cell[None].numpy()}
        (rgb,) = session.run([OUTPUT_NAME], feed)
        out[r0:r1] = rgb[0].reshape(r1 - r0, w_out, 3)
    return out

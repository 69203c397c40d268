"""An image-to-image ONNX graph at one scale (or output size), built around the exported query graph.

``gaussiansr-export-onnx --image-to-image --scale 1.5`` writes a graph with one input ``input``
[N,3,h,w] (RGB in [0,1], N, h and w dynamic) and one output ``output`` [N,3,H,W], what the common
upscaling front ends (chaiNNer, spandrel-style tools) run. It is the query graph of
:func:`gaussiansr_arch.tools.export_onnx.to_onnx` (captured with a dynamic batch) rewired with
plain ONNX ops:

1. the nodes that depend on ``lq`` alone (the encoder and the reusable state) run once;
2. H, W follow our ``upscale`` exactly: ``max(1, round(n * s))`` in double precision (ONNX
   ``Round`` rounds half to even, as Python's ``round``), or the fixed ``--size``;
3. the pixel centres and cells are the ones :func:`~gaussiansr_arch.archs.coordinates.axis_coord`
   and ``make_cell`` compute, with the same float32/double rounding, so the graph sees the same bits;
4. the nodes that depend on ``coord``/``cell`` (the query) run in an ONNX ``Loop``, ``R`` whole
   output rows per iteration (``R = max(1, chunk_size // W)``, the rows of the last iteration
   clamped to the last row and dropped afterwards): the query's memory is bounded by
   ``chunk_size``, not by the output size, as ``ArbitraryScaleArch.render``'s chunks.

Nothing here imports onnx at module import time (the [onnx] extra is optional).
"""

import math
from collections.abc import Sequence

INPUT_NAME = 'input'
OUTPUT_NAME = 'output'
QUERY_INPUTS = ('lq', 'coord', 'cell')
QUERY_OUTPUT = 'rgb'
PREFIX = 'i2i_'  # names of the values this module adds (the exporter's never start so)


def image_metadata(scale=None, size=None, arch: str = '', chunk_size: int = 0) -> dict[str, str]:
    """What a front end reads from ``metadata_props``: scale or fixed size, colour order, range, arch."""
    meta = {
        'graph': 'image-to-image',
        'arch': arch,
        'input_layout': 'NCHW',
        'colour_order': 'RGB',
        'color_order': 'RGB',
        'value_range': '[0, 1]',
        'output_clamped': 'false',
        'queries_per_iteration': str(chunk_size),
    }
    if scale is not None:
        scales = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
        meta['scale'] = repr(float(scales[0])) if scales[0] == scales[1] else 'x'.join(repr(float(s)) for s in scales)
        meta['scale_h'], meta['scale_w'] = repr(float(scales[0])), repr(float(scales[1]))
        meta['output_size_rule'] = 'H = max(1, round(h * scale_h)), W = max(1, round(w * scale_w)); half to even'
    else:
        meta['output_size'] = f'{size[0]}x{size[1]}'
        meta['output_size_rule'] = f'H, W = {size[0]}, {size[1]} whatever the input size'
    return meta


def _split(graph) -> tuple[list, list]:
    """Copies of the graph's nodes, lq renamed: those that depend on coord or cell (the query, in
    the loop) and the others."""
    import onnx

    query_values = set(QUERY_INPUTS[1:])
    outer, inner = [], []
    for original in graph.node:  # the exporter writes them in topological order
        node = onnx.NodeProto()
        node.CopyFrom(original)
        for i, name in enumerate(node.input):  # lq is the image-to-image graph's input
            if name == QUERY_INPUTS[0]:
                node.input[i] = INPUT_NAME
        if any(name in query_values for name in node.input):
            inner.append(node)
            query_values.update(node.output)
        else:
            outer.append(node)
    if QUERY_OUTPUT not in query_values:
        raise ValueError(f'the query graph has no {QUERY_OUTPUT!r} computed from coord and cell')
    return outer, inner


def build_image_model(query_model, scale=None, size: Sequence[int] | None = None, chunk_size: int = 8192):
    """The image-to-image ``onnx.ModelProto`` from a query-form model with a dynamic batch.

    Args:
        query_model (onnx.ModelProto): inputs lq [N,3,h,w], coord [N,Q,2], cell [N,Q,2] -> rgb [N,Q,3].
        scale (float | tuple[float, float] | None): the fixed upscaling factor(s) (rows, cols).
        size (Sequence[int] | None): a fixed output (H, W) instead.
        chunk_size (int): output pixels (queries) per loop iteration (at least one row).

    Raises:
        ValueError: neither or both of scale and size, a bad value, or not a query-form graph.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from gaussiansr_arch.archs.coordinates import check_scale, check_size

    if (scale is None) == (size is None):
        raise ValueError('give exactly one of scale or size')
    if chunk_size <= 0:
        raise ValueError(f'chunk_size must be > 0, got {chunk_size}')
    if scale is not None:
        scales = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
        if len(scales) != 2:
            raise ValueError(f'scale must be a number or a (scale_h, scale_w) pair, got {scale!r}')
        scales = tuple(check_scale(s) for s in scales)
    else:
        size = check_size(size)
    names = tuple(i.name for i in query_model.graph.input)
    if names != QUERY_INPUTS or [o.name for o in query_model.graph.output] != [QUERY_OUTPUT]:
        raise ValueError(f'not a query-form graph: inputs {list(names)}, expected {list(QUERY_INPUTS)}')

    model = onnx.ModelProto()
    model.CopyFrom(query_model)
    graph = model.graph
    outer, inner = _split(graph)
    inner_values = {o for n in inner for o in n.output}
    value_info = list(graph.value_info)

    nodes = []

    def const(name, value, dtype):
        import numpy as np

        nodes.append(
            helper.make_node(
                'Constant', [], [PREFIX + name], value=numpy_helper.from_array(np.asarray(value, dtype=dtype))
            )
        )
        return PREFIX + name

    def op(op_type, inputs, name, **attrs):
        nodes.append(helper.make_node(op_type, list(inputs), [PREFIX + name], **attrs))
        return PREFIX + name

    # The output size, int64 [2] (H, W), and the scalars H, W.
    shape = op('Shape', [INPUT_NAME], 'shape')
    if scale is not None:
        lr_hw = op('Slice', [shape, const('two', [2], 'int64'), const('four', [4], 'int64')], 'lr_hw')
        hw = op('Cast', [lr_hw], 'lr_hw_double', to=TensorProto.DOUBLE)
        hw = op('Mul', [hw, const('scales', scales, 'float64')], 'hw_scaled')
        hw = op('Max', [op('Round', [hw], 'hw_round'), const('one_double', 1.0, 'float64')], 'hw_double')
        hw = op('Cast', [hw], 'hw', to=TensorProto.INT64)
    else:
        hw = const('hw', list(size), 'int64')
    zero = const('zero', 0, 'int64')
    one = const('one', 1, 'int64')
    out_h = op('Gather', [hw, zero], 'out_h', axis=0)
    out_w = op('Gather', [hw, one], 'out_w', axis=0)

    def axis(n, tag):
        """axis_coord(n): (-1 + 1/n) and 2/n rounded once from double to float32, then c0 + c1 * i in float32."""
        r = op(
            'Div',
            [const(f'one_{tag}', 1.0, 'float64'), op('Cast', [n], f'{tag}_double', to=TensorProto.DOUBLE)],
            f'{tag}_r',
        )
        c0 = op(
            'Cast',
            [op('Add', [const(f'minus_one_{tag}', -1.0, 'float64'), r], f'{tag}_c0_double')],
            f'{tag}_c0',
            to=TensorProto.FLOAT,
        )
        c1 = op(
            'Cast',
            [op('Mul', [const(f'two_{tag}', 2.0, 'float64'), r], f'{tag}_c1_double')],
            f'{tag}_c1',
            to=TensorProto.FLOAT,
        )
        index = op('Cast', [op('Range', [zero, n, one], f'{tag}_range')], f'{tag}_index', to=TensorProto.FLOAT)
        return op('Add', [c0, op('Mul', [c1, index], f'{tag}_scaled')], f'{tag}_coord')

    def cell(n, tag):
        """make_cell: 2.0 / n in double, rounded to float32."""
        d = op(
            'Div',
            [const(f'two_cell_{tag}', 2.0, 'float64'), op('Cast', [n], f'{tag}_cell_n', to=TensorProto.DOUBLE)],
            f'{tag}_cell_double',
        )
        return op('Cast', [d], f'{tag}_cell', to=TensorProto.FLOAT)

    row_coord, col_coord = axis(out_h, 'rows'), axis(out_w, 'cols')
    axes0, axes1 = const('axes0', [0], 'int64'), const('axes1', [1], 'int64')
    cell_hw = op(
        'Concat',
        [op('Unsqueeze', [cell(out_h, 'h'), axes0], 'cell_h1'), op('Unsqueeze', [cell(out_w, 'w'), axes0], 'cell_w1')],
        'cell_hw',
        axis=0,
    )
    batch = op('Gather', [shape, zero], 'batch', axis=0)
    rows = op('Max', [op('Div', [const('chunk', chunk_size, 'int64'), out_w], 'chunk_rows'), one], 'rows_per_iter')
    iterations = op('Div', [op('Sub', [op('Add', [out_h, rows], 'h_plus_rows'), one], 'h_ceil'), rows], 'iterations')
    last_row = op('Sub', [out_h, one], 'last_row')
    outer_nodes = [*outer, *nodes]

    # The loop body: rows [i R, (i+1) R) (clamped to the last row), every column, batch-expanded.
    nodes = []
    body_iter, body_cond = PREFIX + 'iter', PREFIX + 'cond'
    start = op('Mul', [body_iter, rows], 'row_start')
    row_index = op(
        'Min',
        [op('Add', [start, op('Range', [zero, rows, one], 'row_offsets')], 'row_index_raw'), last_row],
        'row_index',
    )
    chunk_rows = op('Gather', [row_coord, row_index], 'chunk_row_coord', axis=0)
    grid_shape = op(
        'Concat', [op('Unsqueeze', [rows, axes0], 'rows1'), op('Unsqueeze', [out_w, axes0], 'w1')], 'grid_shape', axis=0
    )
    rr = op('Expand', [op('Unsqueeze', [chunk_rows, axes1], 'rows_col'), grid_shape], 'grid_rows')
    cc = op('Expand', [op('Unsqueeze', [col_coord, axes0], 'cols_row'), grid_shape], 'grid_cols')
    axes2 = const('axes2', [2], 'int64')
    grid = op(
        'Concat', [op('Unsqueeze', [rr, axes2], 'grid_r'), op('Unsqueeze', [cc, axes2], 'grid_c')], 'grid', axis=2
    )
    queries = op('Mul', [rows, out_w], 'queries')
    q_shape = op(
        'Concat',
        [
            op('Unsqueeze', [batch, axes0], 'batch1'),
            op('Unsqueeze', [queries, axes0], 'queries1'),
            const('two1', [2], 'int64'),
        ],
        'query_shape',
        axis=0,
    )
    nodes.append(
        helper.make_node(
            'Expand',
            [
                op(
                    'Unsqueeze',
                    [op('Reshape', [grid, const('flat', [-1, 2], 'int64')], 'grid_flat'), axes0],
                    'grid_batch1',
                ),
                q_shape,
            ],
            ['coord'],
        )
    )
    nodes.append(helper.make_node('Expand', [cell_hw, q_shape], ['cell']))
    nodes.append(helper.make_node('Identity', [body_cond], [PREFIX + 'cond_out']))
    body = helper.make_graph(
        [*nodes, *inner],
        'query_rows',
        [
            helper.make_tensor_value_info(body_iter, TensorProto.INT64, []),
            helper.make_tensor_value_info(body_cond, TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info(PREFIX + 'cond_out', TensorProto.BOOL, []),
            helper.make_tensor_value_info(QUERY_OUTPUT, TensorProto.FLOAT, None),
        ],
        value_info=[v for v in value_info if v.name in inner_values and v.name != QUERY_OUTPUT],
    )

    # After the loop: [iterations, N, R*W, 3] -> [N, 3, H, W].
    nodes = []
    stacked = PREFIX + 'stacked'
    nodes.append(helper.make_node('Loop', [iterations, ''], [stacked], body=body))
    per_batch = op('Transpose', [stacked], 'per_batch', perm=[1, 0, 2, 3])
    rows_shape = op(
        'Concat',
        [
            op('Unsqueeze', [batch, axes0], 'batch_1'),
            const('minus1', [-1], 'int64'),
            op('Unsqueeze', [out_w, axes0], 'w_1'),
            const('three', [3], 'int64'),
        ],
        'rows_shape',
        axis=0,
    )
    padded = op('Reshape', [per_batch, rows_shape], 'padded')
    image = op(
        'Slice', [padded, const('zero1', [0], 'int64'), op('Unsqueeze', [out_h, axes0], 'h_1'), axes1], 'image_nhwc'
    )
    nodes.append(helper.make_node('Transpose', [image], [OUTPUT_NAME], perm=[0, 3, 1, 2]))

    del graph.node[:]
    graph.node.extend([*outer_nodes, *nodes])
    del graph.value_info[:]
    graph.value_info.extend(v for v in value_info if v.name not in inner_values)

    lq = graph.input[0]
    elem = lq.type.tensor_type.elem_type
    out_dims = ['out_height', 'out_width'] if scale is not None else list(size)
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(INPUT_NAME, elem, ['batch', 3, 'height', 'width']))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, elem, ['batch', 3, *out_dims]))
    return model


def output_size_of(lr_size: Sequence[int], scale=None, size=None) -> tuple[int, int]:
    """The (H, W) the image-to-image graph gives for an (h, w) input (our ``upscale``'s rule)."""
    if size is not None:
        return tuple(size)
    scales = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    return tuple(max(1, round(n * float(s))) for n, s in zip(lr_size, scales))


def rows_per_iteration(out_w: int, chunk_size: int) -> int:
    """Output rows the graph's loop renders per iteration for an output of width ``out_w``."""
    return max(1, chunk_size // out_w)


def iterations(out_size: Sequence[int], chunk_size: int) -> int:
    """Loop iterations for an (H, W) output."""
    return math.ceil(out_size[0] / rows_per_iteration(out_size[1], chunk_size))

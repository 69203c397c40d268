"""GaussianSR (Hu et al., AAAI 2025): arbitrary-scale SR with a continuous Gaussian feature field.

Pipeline (paper Fig. 2, 4): encoder -> Selective Gaussian Splatting (one bank kernel per LR
pixel) -> dual-stream decoupling (the first ``splat_channels`` feature channels become a
Gaussian field, the rest are bicubically interpolated) -> both evaluated at the queries ->
decoder -> RGB. Deviations from the authors' code are listed in README "Method".
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY

from gaussiansr_arch.archs.arbitrary_scale import DEFAULT_CHUNK_SIZE, ArbitraryScaleArch
from gaussiansr_arch.archs.coordinates import check_size, make_coord_rows, pixel_position, size_tensor
from gaussiansr_arch.archs.decoders import build_decoder
from gaussiansr_arch.archs.encoders import build_encoder
from gaussiansr_arch.archs.gaussian_field import evaluate_gaussian_table, gaussian_table
from gaussiansr_arch.archs.hr_neighbourhood import GridNeighbourhood, grid_neighbourhood, neighbourhood_points
from gaussiansr_arch.archs.interpolation import check_image_skip, image_skip_at, resize_bicubic, sample_bicubic
from gaussiansr_arch.archs.selective_splatting import KernelParams, SelectiveGaussianSplatting
from gaussiansr_arch.utils.arch_detect import mlp_shape
from gaussiansr_arch.utils.methods import Method, ReferenceSchedule, register_method

# Rows (query x image) the decoder runs at once in ``query`` on a CPU: 4096 x 512 float32 = 8 MB
# (see ``query``). Other devices decode all queries at once (their allocators cache blocks).
DECODER_ROWS_CPU = 4096


@dataclass
class GaussianSRState:
    """What ``GaussianSR.encode`` computes once per LR image and every query reuses.

    Attributes:
        lq (Tensor): [B,3,h,w] input, RGB in [0,1].
        image (Tensor): [B,3,h,w] input normalised to [-1,1] (for the image skip).
        bicubic_feat (Tensor): [B,C-S,h,w] features of the bicubic stream.
        kernels (KernelParams | None): per-pixel Gaussians (None when S = 0).
        gaussians (Tensor | None): [B,h+2r,w+2r,S+3] the Gaussian stream as a ``gaussian_table``
            (built once here, looked up by every query chunk; None when S = 0).
    """

    lq: torch.Tensor
    image: torch.Tensor
    bicubic_feat: torch.Tensor
    kernels: KernelParams | None
    gaussians: torch.Tensor | None


def relative_coord_and_cell(coord: torch.Tensor, cell: torch.Tensor, lr_size: Sequence[int]):
    """Offset of each query from its nearest LR pixel centre and its cell, x (h, w) as LIIF/LTE.

    Returns:
        tuple[Tensor, Tensor]: rel_coord in [-1, 1] and rel_cell, both [..., 2].
    """
    size = size_tensor(lr_size, coord)
    pos = pixel_position(coord, size)
    rel_coord = 2 * (pos - torch.floor(pos + 0.5))
    return rel_coord, cell * size


@ARCH_REGISTRY.register()
class GaussianSR(ArbitraryScaleArch):
    """GaussianSR with paper defaults when built with no arguments (1.84M parameters).

    Args:
        encoder (str): 'edsr-baseline' (default), 'rdn' or 'swinir' (feature-only).
        encoder_opt (dict | None): Options of the encoder (e.g. num_feat, num_block).
        splat_channels (int): Channels rendered as a Gaussian field; 0 = "Bicubic-64". Default: 8.
        bank_size (int): Kernels in the Gaussian bank. Default: 100.
        sigma_range (Sequence[float]): Sigma bounds in LR pixels. Default: (0.1, 0.7); with
            radius 3 the ignored Gaussians weigh < 1.2e-4 in total (see ``truncation_bound``).
        radius (int): Neighbourhood radius; each query sums (2r+1)^2 Gaussians. Default: 3.
        tau (float): Gumbel-softmax temperature in training. Default: 1.
        decoder (str): A name in ``decoders.DECODERS``: 'lte' (default, authors' code) or 'mlp'
            (paper text).
        decoder_hidden (Sequence[int] | None): MLP widths; default [256]*4 (lte), [256]*3 (mlp).
        num_freq (int): coef/freq channels of the LTE decoder. Default: 256.
        decoder_act (str | None): 'gelu' or 'relu'; default gelu (lte), relu (mlp).
        image_skip (str): LR image interpolation added to the output ('bilinear' as LTE, or
            'bicubic'). Default: 'none', as the paper and the authors' code (README deviations).
    """

    def __init__(
        self,
        encoder: str = 'edsr-baseline',
        encoder_opt: dict | None = None,
        splat_channels: int = 8,
        bank_size: int = 100,
        sigma_range: Sequence[float] = (0.1, 0.7),
        radius: int = 3,
        tau: float = 1.0,
        decoder: str = 'lte',
        decoder_hidden: Sequence[int] | None = None,
        num_freq: int = 256,
        decoder_act: str | None = None,
        image_skip: str = 'none',
    ):
        super().__init__()
        self.encoder = build_encoder(encoder, **(encoder_opt or {}))
        channels = self.encoder.out_channels
        if not 0 <= splat_channels <= channels:
            raise ValueError(f'splat_channels must be in [0, {channels}], got {splat_channels}')
        if radius < 0:
            raise ValueError(f'radius must be >= 0, got {radius}')
        self.splat_channels, self.radius, self.image_skip = splat_channels, radius, check_image_skip(image_skip)
        self.splatting = (
            SelectiveGaussianSplatting(channels, bank_size, tuple(sigma_range), tau) if splat_channels > 0 else None
        )
        self.decoder = build_decoder(decoder, channels, decoder_hidden, num_freq, decoder_act)
        self.decoder_type = decoder  # the name, for reports; behaviour follows the decoder's declared capabilities

    # ------------------------------------------------------------------ encoding
    def state_from_features(self, lq: torch.Tensor, feat: torch.Tensor) -> GaussianSRState:
        """The per-pixel Gaussians and the two streams from the encoder features [B,C,h,w]."""
        s = self.splat_channels
        kernels = self.splatting(feat) if self.splatting is not None else None
        gaussians = None
        if kernels is not None:
            gaussians = gaussian_table(feat[:, :s], kernels.sigma, kernels.rho, kernels.opacity, self.radius)
        return GaussianSRState(
            lq=lq, image=self.encoder_input(lq), bicubic_feat=feat[:, s:], kernels=kernels, gaussians=gaussians
        )

    def render_features(self, state: GaussianSRState, coord: torch.Tensor) -> torch.Tensor:
        """Both streams at [B,Q,2] points (or any [B,...,2]), concatenated.

        Returns:
            Tensor: [B,Q,C] (or [B,...,C]), the Gaussian-field channels first.
        """
        streams = []
        if state.gaussians is not None:
            streams.append(evaluate_gaussian_table(state.gaussians, coord, self.radius))
        if state.bicubic_feat.shape[1] > 0:
            flat = sample_bicubic(state.bicubic_feat, coord.reshape(coord.shape[0], -1, 2))
            streams.append(flat.reshape(*coord.shape[:-1], flat.shape[-1]))
        return torch.cat(streams, dim=-1)

    def render_grid_features(self, state: GaussianSRState, grid: GridNeighbourhood) -> torch.Tensor:
        """``render_features`` at the points of a :class:`GridNeighbourhood`: [B,N,C].

        The bicubic stream is resized onto each image's whole grid with two matrix products
        and looked up, cheaper in training than sampling (and back-propagating) point by point.
        """
        streams = []
        if state.gaussians is not None:
            streams.append(evaluate_gaussian_table(state.gaussians, grid.points, self.radius))
        if state.bicubic_feat.shape[1] > 0:
            streams.append(
                torch.stack(
                    [
                        resize_bicubic(feat, size).flatten(0, 1).index_select(0, pixels)
                        for feat, size, pixels in zip(state.bicubic_feat, grid.sizes, grid.pixels)
                    ]
                )
            )
        return torch.cat(streams, dim=-1)

    # ------------------------------------------------------------------ querying
    def query(self, state: GaussianSRState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB [B,Q,3] at arbitrary coordinates (training and LIIF-style querying).

        On a CPU the decoder runs on ``DECODER_ROWS_CPU`` (query, image) rows at a time: the
        same result, but every activation stays under 8 MB, which glibc's allocator recycles;
        whole-batch activations (tens of MB each) are mapped fresh and page-faulted every step.
        Under ONNX export all queries are decoded at once (see ``_query_for_export``).
        """
        if torch.onnx.is_in_onnx_export():
            return self._query_for_export(state, coord, cell)
        lr_size = state.lq.shape[-2:]
        if self.decoder.reads_neighbourhood:
            features_of = self._neighbourhood_lookup(state, coord, cell)
        else:

            def features_of(part):
                return self.render_features(state, coord[:, part])

        queries = max(1, coord.shape[1])  # one (empty) chunk when there are no queries
        step = max(1, DECODER_ROWS_CPU // coord.shape[0]) if coord.device.type == 'cpu' else queries
        out = []
        for start in range(0, queries, step):
            part = slice(start, start + step)
            rel_coord, rel_cell = relative_coord_and_cell(coord[:, part], cell[:, part], lr_size)
            out.append(self.decoder(features_of(part), rel_coord, rel_cell))
        return (torch.cat(out, dim=1) + image_skip_at(state.image, coord, self.image_skip)) * 0.5 + 0.5

    def _query_for_export(self, state: GaussianSRState, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """``query`` as one traceable graph with a symbolic number of queries (ONNX export).

        The same function as ``query``, vectorised: no Python loop over query chunks (its trip
        count would depend on Q) and always the general 3x3 neighbourhood, never
        ``grid_neighbourhood``, whose on-grid test and ``torch.unique`` depend on the values
        (its distinct points are the same points, at float-rounding distance).
        """
        if self.decoder.reads_neighbourhood:
            points = neighbourhood_points(coord, cell)
            feat = self.render_features(state, points)
            feat = feat.masked_fill((points.abs() > 1).any(dim=-1, keepdim=True), 0.0)
        else:
            feat = self.render_features(state, coord)
        rel_coord, rel_cell = relative_coord_and_cell(coord, cell, state.lq.shape[-2:])
        out = self.decoder(feat, rel_coord, rel_cell)
        return (out + image_skip_at(state.image, coord, self.image_skip)) * 0.5 + 0.5

    def _neighbourhood_lookup(self, state, coord, cell) -> Callable[[slice], torch.Tensor]:
        """A function giving the features at the 3x3 HR pixels around queries ``coord[:, part]``:
        [B,q,9,C], zeros outside the image.

        Training queries are pixel centres of the HR crop, so their neighbourhoods overlap:
        each distinct HR pixel is then rendered once (x1: 9x fewer points, x1.5: 4x, x4: 1.3x).
        """
        grid = grid_neighbourhood(coord, cell)
        if grid is None:
            points = neighbourhood_points(coord, cell)
            feat = self.render_features(state, points)
            feat = feat.masked_fill((points.abs() > 1).any(dim=-1, keepdim=True), 0.0)
            return lambda part: feat[:, part]
        # A zero row at the end stands for every neighbour beyond the border: lookups then
        # need no mask over the (9x larger) neighbourhood tensor.
        feat = F.pad(self.render_grid_features(state, grid).flatten(0, 1), (0, 0, 0, 1))
        index = grid.index.masked_fill(grid.outside, feat.shape[0] - 1)

        def lookup(part: slice) -> torch.Tensor:
            rows = index[:, part]
            return feat.index_select(0, rows.flatten()).view(*rows.shape, -1)

        return lookup

    def render(self, state: GaussianSRState, size: Sequence[int], chunk_size: int = DEFAULT_CHUNK_SIZE):
        """Whole image in row tiles, each decoded by the decoder's dense form (LTE: dense 3x3 convs).

        Equal to querying every pixel centre (tested) but renders each HR pixel's features
        once instead of nine times. Memory is bounded by ``chunk_size`` pixels per tile.
        A decoder without a dense form renders by queries (``ArbitraryScaleArch.render``).
        """
        if not self.decoder.has_dense_form:
            return super().render(state, size, chunk_size)
        h, w = check_size(size)
        if chunk_size <= 0:
            raise ValueError(f'chunk_size must be > 0, got {chunk_size}')
        lq = state.lq
        b, device, dtype = lq.shape[0], lq.device, lq.dtype
        rows_per_tile = max(1, chunk_size // w)
        cell = torch.tensor([2.0 / h, 2.0 / w], device=device, dtype=dtype).view(1, 1, 1, 2)
        out = torch.empty(b, 3, h, w, device=device, dtype=dtype)
        for r0 in range(0, h, rows_per_tile):
            r1 = min(h, r0 + rows_per_tile)
            lo, hi = max(0, r0 - 1), min(h, r1 + 1)  # one halo row each side for the 3x3 convs
            coord = make_coord_rows((h, w), lo, hi, device=device, dtype=dtype).unsqueeze(0).expand(b, -1, -1)
            feat = self.render_features(state, coord).reshape(b, hi - lo, w, -1)
            top, bottom = int(r0 - lo == 0), int(hi - r1 == 0)
            if top or bottom:  # zero rows beyond the image
                feat = F.pad(feat, (0, 0, 0, 0, top, bottom))
            # [B,C,R,W] as a channels-last view (no copy): the conv then writes channels-last
            # output, which the per-pixel decoder reads without another transpose.
            feat = feat.permute(0, 3, 1, 2)
            inner = coord.reshape(b, hi - lo, w, 2)[:, r0 - lo : r0 - lo + (r1 - r0)]
            rel_coord, rel_cell = relative_coord_and_cell(inner, cell, lq.shape[-2:])
            rgb = self.decoder.forward_dense(feat, rel_coord, rel_cell, pad_rows=False)
            skip = image_skip_at(state.image, inner.reshape(b, -1, 2), self.image_skip)
            rgb = (rgb.reshape(b, -1, 3) + skip) * 0.5 + 0.5
            out[:, :, r0:r1] = rgb.transpose(1, 2).reshape(b, 3, r1 - r0, w)
        return out


# ---------------------------------------------------------------------------- the method descriptor
# splat_channels assumed when a GaussianSR has a splatting module (the paper's, GaussianSR's default).
DEFAULT_SPLAT_CHANNELS = 8


def detect_gaussiansr(state: Mapping[str, torch.Tensor], channels: int) -> dict | None:
    """GaussianSR's options from ``splatting.*`` and ``decoder.*``; None if they do not fit (utils/arch_detect.py)."""
    opt: dict = {}
    classifier = state.get('splatting.classifier.weight')
    if classifier is None:
        opt['splat_channels'] = 0
    else:
        opt['splat_channels'] = min(DEFAULT_SPLAT_CHANNELS, channels)
        opt['bank_size'] = int(classifier.shape[0])
    mlp = mlp_shape(state, 'decoder.mlp.')
    if mlp is None or mlp[2] != 3:
        return None
    if 'decoder.coef.weight' in state:
        opt['decoder'] = 'lte'
        opt['num_freq'] = int(state['decoder.coef.weight'].shape[0])
    else:
        opt['decoder'] = 'mlp'
    opt['decoder_hidden'] = mlp[1]
    return opt


METHOD = register_method(
    Method(
        arch='GaussianSR',
        marker='decoder.',
        detect=detect_gaussiansr,
        tiny={
            'encoder': 'edsr-baseline',
            'encoder_opt': {'num_feat': 16, 'num_block': 1},
            'splat_channels': 4,
            'bank_size': 16,
            'decoder_hidden': [32, 32],
        },
        protocol='liif',  # the paper reports LIIF's protocol (its tables are LIIF's)
        default_model="the paper's model",
        description="EDSR-baseline encoder, the authors' LTE-style decoder, no image skip",
        schedule=ReferenceSchedule(
            2_000_000, 16, 48, 'the GaussianSR paper (Hu et al., AAAI 2025; 2000 epochs x 1000 iterations)'
        ),
        image_skip=True,
        # The text's MLP decoder; the paper's Table 5 "Bicubic-64" ablation (no Gaussian stream).
        variants={'mlp': {'decoder': 'mlp'}, 'bicubic64': {'splat_channels': 0}},
        test_encoders=('edsr-baseline', 'rdn', 'swinir'),  # RDN, SwinIR: trained here, the paper reports EDSR only
        order=0,
    )
)

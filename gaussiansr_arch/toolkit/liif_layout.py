"""The LIIF repository's encoder layout, shared by the converters of LIIF-derived official code
(``gaussiansr-convert-liif``, ``gaussiansr-convert-lte``, ``gaussiansr-convert-itsrn``): its EDSR /
EDSR-baseline keys and ``encoder_spec`` -> this package's ``EDSRBaselineEncoder`` weights and
options, and (where a converter asks for it) its RDN keys -> ``RDNEncoder``'s."""

import re
from collections import OrderedDict

import torch

from gaussiansr_arch.toolkit.errors import ToolError
from gaussiansr_arch.utils.arch_detect import detect_encoder

# LIIF's encoder names -> ours and the res_scale its factory uses.
ENCODER_NAMES = {'edsr-baseline': ('edsr-baseline', 1.0), 'edsr': ('edsr-baseline', 0.1)}
# Weights of LIIF's EDSR that its no-upsampling forward never uses (mean shifts, upsampler).
UNUSED_ENCODER_KEYS = re.compile(r'^(sub_mean|add_mean|tail)\.')
_BLOCK_CONV = re.compile(r'^body\.(\d+)\.body\.([02])\.(weight|bias)$')
# EDSR-PyTorch's RDN names (LIIF's ``rdn``, GSASR's ``RDNNOUP``) -> RDNEncoder's.
RDN_KEYS = (
    (re.compile(r'^SFENet1\.'), 'conv_first.'),
    (re.compile(r'^SFENet2\.'), 'conv_second.'),
    (re.compile(r'^RDBs\.(\d+)\.convs\.(\d+)\.conv\.0\.'), r'blocks.\1.layers.\2.conv.'),
    (re.compile(r'^RDBs\.(\d+)\.LFF\.'), r'blocks.\1.local_fusion.'),
    (re.compile(r'^GFF\.'), 'global_fusion.'),
)


def convert_edsr_encoder(sd: dict, num_block: int | None = None) -> 'OrderedDict[str, torch.Tensor]':
    """Rename LIIF/EDSR-PyTorch EDSR keys (without the ``encoder.`` prefix) to ``EDSRBaselineEncoder``'s.

    ``head.0`` -> ``conv_first``; ``body.i.body.0/2`` -> ``body.i.conv1/conv2``; the last body
    conv ``body.N`` -> ``conv_after_body``. Mean shifts and the upsampler are dropped (unused).

    Raises:
        ToolError: keys that match none of these (listed).
    """
    if num_block is None:
        num_block = len({int(m.group(1)) for k in sd if (m := _BLOCK_CONV.match(k))})
    out, unexpected = OrderedDict(), []
    for key, value in sd.items():
        if m := _BLOCK_CONV.match(key):
            out[f'body.{m.group(1)}.conv{1 if m.group(2) == "0" else 2}.{m.group(3)}'] = value
        elif key.startswith('head.0.'):
            out['conv_first.' + key[len('head.0.') :]] = value
        elif key.startswith(f'body.{num_block}.'):
            out['conv_after_body.' + key[len(f'body.{num_block}.') :]] = value
        elif not UNUSED_ENCODER_KEYS.match(key):
            unexpected.append(key)
    if unexpected:
        raise ToolError(
            f'unexpected encoder key(s) {unexpected[:3]} ({len(unexpected)} in all); '
            'only EDSR / EDSR-baseline encoders are supported'
        )
    if 'conv_first.weight' not in out:
        raise ToolError('no EDSR head (head.0.weight) found')
    return out


def edsr_encoder_opt(enc_sd: dict, res_scale: float) -> dict:
    """Encoder options that rebuild the converted EDSR encoder (sizes read from the weights)."""
    num_block = len({k.split('.')[1] for k in enc_sd if k.startswith('body.')})
    return {
        'num_feat': int(enc_sd['conv_first.weight'].shape[0]),
        'num_block': num_block,
        'res_scale': float(res_scale),
    }


def convert_rdn_encoder(sd: dict) -> 'OrderedDict[str, torch.Tensor]':
    """Rename LIIF/EDSR-PyTorch RDN keys (without the ``encoder.`` prefix) to ``RDNEncoder``'s.

    Raises:
        ToolError: keys that match none of :data:`RDN_KEYS` (listed; e.g. the upsampler ``UPNet``
            of an RDN with upsampling, not a feature encoder).
    """
    out, unexpected = OrderedDict(), []
    for key, value in sd.items():
        pattern, name = next(((p, n) for p, n in RDN_KEYS if p.match(key)), (None, None))
        if pattern is None:
            unexpected.append(key)
        else:
            out[pattern.sub(name, key)] = value
    if unexpected:
        raise ToolError(f'unexpected RDN encoder key(s) {unexpected[:3]} ({len(unexpected)} in all)')
    if 'conv_first.weight' not in out or 'blocks.0.layers.0.conv.weight' not in out:
        raise ToolError('no RDN shallow conv or dense block (SFENet1.weight, RDBs.0.convs.0.conv.0.weight) found')
    return out


def encoder_of(args: dict, sd: dict, rdn: bool = False) -> tuple[str, dict, dict]:
    """Our encoder name, its options and its converted weights from a LIIF-repo model's args and state dict.

    Args:
        rdn (bool): Accept the ``rdn`` encoder too (options read from the shapes).

    Raises:
        ToolError: an encoder other than EDSR / EDSR-baseline (and RDN with ``rdn``), or keys that do not fit.
    """
    spec = args.get('encoder_spec') or {}
    name = spec.get('name', 'edsr-baseline')
    enc_raw = {k[len('encoder.') :]: v for k, v in sd.items() if k.startswith('encoder.')}
    if rdn and name == 'rdn':
        enc_sd = convert_rdn_encoder(enc_raw)
        found = detect_encoder(enc_sd)
        if found is None or found[0] != 'rdn':
            raise ToolError('the rdn encoder weights do not have the RDN layout')
        return 'rdn', found[1], enc_sd
    if name not in ENCODER_NAMES:
        supported = sorted([*ENCODER_NAMES, 'rdn'] if rdn else ENCODER_NAMES)
        raise ToolError(f'encoder {name!r} is not supported (supported: {supported})')
    ours, default_res_scale = ENCODER_NAMES[name]
    enc_sd = convert_edsr_encoder(enc_raw)
    enc_args = spec.get('args') or {}
    return ours, edsr_encoder_opt(enc_sd, enc_args.get('res_scale', default_res_scale)), enc_sd


def renamed_head(sd: dict, prefixes: dict) -> 'OrderedDict[str, torch.Tensor]':
    """The official state dict's non-encoder keys under our names (``prefixes``: official -> ours).

    Raises:
        ToolError: keys under none of the prefixes (the first three listed).
    """
    out, unexpected = OrderedDict(), []
    for key, value in sd.items():
        if key.startswith('encoder.'):
            continue
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            unexpected.append(key)
        else:
            out[prefixes[prefix] + key[len(prefix) :]] = value
    if unexpected:
        raise ToolError(f'unexpected key(s) {unexpected[:3]} ({len(unexpected)} in all)')
    return out

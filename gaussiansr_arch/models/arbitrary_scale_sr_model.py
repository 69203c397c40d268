"""BasicSR model for arbitrary-scale SR archs (GaussianSR, LIIF-style query interface).

Differences from ``basicsr.models.sr_model.SRModel`` (everything else is inherited,
validation loop and metrics included):

* training queries the arch at sampled HR coordinates: ``net_g(lq, coord, cell)`` -> [B,Q,3];
* ``test`` renders whole images with the arch's chunked ``upscale``;
* optional gradient clipping, ``grad_norm`` logging, and a policy for non-finite losses;
* optional mixed precision (``train.amp``: bf16 / fp16 autocast, fp16 with a gradient scaler whose
  state is saved in the ``.state`` file) and ``torch.compile`` (``train.compile``);
* CPU: DDP without ``device_ids``; CUDA requested on a machine without one falls back to CPU;
* checkpoints are written atomically (temporary file + ``os.replace``);
* a network file that does not fit (another arch, truncated) fails in one line naming it;
* ``pretrain_network_g`` may be a ``.safetensors`` file; ``logger.save_safetensors`` also writes
  every ``net_g_<iter>.pth`` as a self-describing ``net_g_<iter>.safetensors``.
"""

import hashlib
import json
import math
from collections import OrderedDict
from os import path as osp

import torch
import torch.distributed as dist
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DistributedDataParallel

from gaussiansr_arch.archs.arbitrary_scale import DEFAULT_CHUNK_SIZE
from gaussiansr_arch.archs.precision import check_precision, compile_arch
from gaussiansr_arch.utils.checkpoint import atomic_torch_save
from gaussiansr_arch.utils.data_stream import rng_state
from gaussiansr_arch.utils.entry_errors import check_network_file
from gaussiansr_arch.utils.total_batch import check_total_batch
from gaussiansr_arch.utils.weights import is_safetensors, read_network_state, save_weights

NAN_POLICIES = ('raise', 'skip')


class NonFiniteLossError(FloatingPointError):
    """Raised (policy ``raise``) when the loss or the gradient norm is NaN/inf."""


def batch_digest(*tensors: torch.Tensor) -> str:
    """sha256 of a training batch's tensors (``lq, gt, coord, cell``; ``logger.batch_digests``)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@MODEL_REGISTRY.register()
class ArbitraryScaleSRModel(SRModel):
    """SR model whose generator is an ``ArbitraryScaleArch``.

    Extra YAML options:
        train.pixel_opt: BasicSR pixel loss (default ``{type: L1Loss, loss_weight: 1.0}``).
        train.grad_clip (float, optional): max total gradient norm; off when absent or <= 0.
        train.nan_policy ('raise' | 'skip'): what a NaN/inf loss or gradient does. ``raise``
            (default) stops training before the weights change, so the last checkpoint is a
            good one; ``skip`` drops that step (no optimizer or EMA update) and logs it.
        train.amp ('bf16' | 'fp16' | null): autocast the arch's forward in that precision (loss,
            optimizer and weights stay float32). fp16 needs CUDA and uses a gradient scaler
            (saved in and restored from the ``.state`` file); bf16 works on the CPU too. The
            Gaussian field keeps its exponent and sums in float32 (``archs/gaussian_field.py``).
        train.compile (bool): ``torch.compile`` the arch (in place: checkpoint keys unchanged);
            falls back to eager with a warning where no compiler works.
        val.chunk_size (int): queries rendered at once in validation/test (memory bound).
        datasets.<val set>.metrics: that set's own metrics, replacing ``val.metrics`` for it.
        logger.save_safetensors (bool): with every ``net_g_<iter>.pth`` also write
            ``net_g_<iter>.safetensors``: the EMA weights when EMA is on (else ``params``), the
            YAML's ``network_g`` and the package version in its metadata, ready for
            ``gaussiansr_arch.load_model`` and the tools. Default: false.
        logger.batch_digests (bool): append ``<iter> <sha256 of lq, gt, coord, cell>`` of every
            training batch to ``<experiment>/batch_digests.txt`` (rank 0), to check that runs of
            different models saw identical batches. Default: false.
        path.pretrain_network_g: a ``.pth`` or ``.safetensors`` file (a ``.safetensors`` holds one
            set of parameters, loaded whatever ``param_key_g`` says).
    """

    def __init__(self, opt: dict) -> None:
        check_total_batch(opt)  # logs the total batch (before num_gpu changes: the dataloader used it)
        if opt.get('num_gpu', 0) != 0 and not torch.cuda.is_available():
            # BasicSR would put the nets on 'cuda' and crash; a YAML written for a GPU
            # box should still run (slowly) on a CPU one.
            get_root_logger().warning(f'num_gpu={opt["num_gpu"]} but CUDA is unavailable: using the CPU.')
            opt['num_gpu'] = 0
        super().__init__(opt)

    # ------------------------------------------------------------------ setup
    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        if not train_opt.get('pixel_opt') and not train_opt.get('perceptual_opt'):
            # The paper trains with L1 only; make that the default instead of BasicSR's error.
            train_opt['pixel_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
        if train_opt.get('perceptual_opt'):
            raise ValueError(
                'perceptual_opt is not supported: arbitrary-scale training predicts scattered query pixels, not images'
            )
        self.nan_policy = train_opt.get('nan_policy', 'raise')
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f'train.nan_policy must be one of {NAN_POLICIES}, got {self.nan_policy!r}')
        self.grad_clip = float(train_opt.get('grad_clip') or 0)
        self.num_skipped_steps = 0
        self.amp_dtype, self.grad_scaler = self._setup_amp(train_opt.get('amp'))
        if train_opt.get('compile'):
            compile_arch(self.get_bare_model(self.net_g))
        super().init_training_settings()

    def _setup_amp(self, amp) -> tuple[torch.dtype | None, 'torch.amp.GradScaler | None']:
        """Autocast dtype and (fp16) gradient scaler of ``train.amp``; one-line errors."""
        if amp in (None, False, 'fp32', 'none'):
            return None, None
        try:  # the same precisions, and the same fp16-needs-CUDA rule, as inference's --precision
            dtype = check_precision(amp, self.device)
        except ValueError as err:
            raise ValueError(f'train.amp: {err} (or null)') from None
        scaler = torch.amp.GradScaler(self.device.type) if amp == 'fp16' else None
        get_root_logger().info(f'mixed precision: {amp} autocast' + (' with a gradient scaler' if scaler else ''))
        return dtype, scaler

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """Like BasicSR's, but DDP on the CPU gets no ``device_ids`` (BasicSR asks CUDA for one)."""
        if self.opt['dist'] and self.device.type == 'cpu':
            net = net.to(self.device)
            find_unused = self.opt.get('find_unused_parameters', False)
            return DistributedDataParallel(net, find_unused_parameters=find_unused)
        return super().model_to_device(net)

    # ------------------------------------------------------------------ data
    def feed_data(self, data: dict) -> None:
        """Take ``lq``, ``gt`` and, when present, ``coord``/``cell`` (training) and ``scale``."""
        super().feed_data(data)
        for key in ('coord', 'cell'):
            if key in data:
                setattr(self, key, data[key].to(self.device))
            elif hasattr(self, key):
                delattr(self, key)  # a stale training batch must not leak into validation
        self.scale = data.get('scale')

    # ------------------------------------------------------------------ training
    @master_only
    def _record_batch_digest(self, current_iter: int) -> None:
        path = osp.join(self.opt['path']['experiments_root'], 'batch_digests.txt')
        with open(path, 'a', encoding='utf-8') as file:
            file.write(f'{current_iter} {batch_digest(self.lq, self.gt, self.coord, self.cell)}\n')

    def optimize_parameters(self, current_iter: int) -> None:
        """One step: query the arch at the sampled coordinates, pixel loss, backward, step."""
        if not hasattr(self, 'coord') or not hasattr(self, 'cell'):
            raise KeyError('training batches must carry coord and cell (use ArbitraryScaleImageDataset)')
        if (self.opt.get('logger') or {}).get('batch_digests'):
            self._record_batch_digest(current_iter)
        self.optimizer_g.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            self.output = self.net_g(self.lq, self.coord, self.cell)
        self.output = self.output.float()  # the loss (and its gradient) in float32

        loss_dict = OrderedDict()
        l_total = self.cri_pix(self.output, self.gt)
        loss_dict['l_pix'] = l_total
        scaler = self.grad_scaler
        (scaler.scale(l_total) if scaler else l_total).backward()
        if scaler:
            scaler.unscale_(self.optimizer_g)  # clip and measure the true gradient

        params = [p for group in self.optimizer_g.param_groups for p in group['params']]
        # With max_norm=inf this only measures the norm (clip coefficient clamps to 1).
        max_norm = self.grad_clip if self.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        loss_dict['grad_norm'] = grad_norm.detach()

        # fp16: an overflowing gradient is the scaler's business (it skips the step and lowers
        # the scale); only a non-finite loss is the NaN policy's.
        checked = (l_total.detach(),) if scaler else (l_total.detach(), grad_norm.detach())
        if self._all_ranks_finite(*checked):
            if scaler:
                scale_before = scaler.get_scale()
                scaler.step(self.optimizer_g)
                scaler.update()
                stepped = scaler.get_scale() >= scale_before
            else:
                self.optimizer_g.step()
                stepped = True
            if stepped and self.ema_decay > 0:
                self.model_ema(decay=self.ema_decay)
        elif self.nan_policy == 'raise':
            raise NonFiniteLossError(
                f'non-finite loss/gradient at iteration {current_iter} (l_pix={l_total.item()}, '
                f'grad_norm={grad_norm.item()}); the weights were not updated. Lower the learning '
                f'rate, set train.grad_clip, or set train.nan_policy: skip.'
            )
        else:
            self.optimizer_g.zero_grad(set_to_none=True)
            if scaler:
                scaler.update()
            self.num_skipped_steps += 1
            get_root_logger().warning(
                f'non-finite loss/gradient at iteration {current_iter}: step skipped ({self.num_skipped_steps} so far).'
            )

        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.num_skipped_steps:
            self.log_dict['skipped_steps'] = self.num_skipped_steps

    def _all_ranks_finite(self, *values: torch.Tensor) -> bool:
        """True when every value is finite on every rank (all ranks must take the same branch)."""
        ok = torch.tensor([float(all(bool(torch.isfinite(v).all()) for v in values))], device=self.device)
        if self.opt['dist']:
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        return bool(ok.item() > 0)

    # ------------------------------------------------------------------ inference
    def test(self) -> None:
        """Render the whole image: the GT size when a GT is fed, else ``scale`` x the LR size."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        # The bare model: its upscale is a plain method (DDP only wraps forward), and
        # validation runs on rank 0 alone, so no collective call may happen here.
        net = self.get_bare_model(net)
        was_training = net.training
        val_opt = self.opt.get('val') or {}
        chunk_size = int(val_opt.get('chunk_size', DEFAULT_CHUNK_SIZE))
        net.eval()
        with torch.no_grad():
            if hasattr(self, 'gt') and self.gt.dim() == 4:
                self.output = net.upscale(self.lq, size=tuple(self.gt.shape[-2:]), chunk_size=chunk_size)
            else:
                self.output = net.upscale(self.lq, scale=self._test_scale(), chunk_size=chunk_size)
        net.train(was_training)

    def _test_scale(self):
        """The scale of the fed batch (dataset ``scale`` key) or, failing that, the YAML's."""
        scale = self.scale if self.scale is not None else self.opt.get('scale')
        if scale is None:
            raise ValueError('no GT and no scale: the dataset must yield "scale" to render without GT')
        if torch.is_tensor(scale):
            # A collated batch: every image of a validation batch shares one scale.
            scale = scale.reshape(scale.shape[0], -1)[0] if scale.dim() else scale
            scale = float(scale) if scale.numel() == 1 else tuple(float(s) for s in scale)
        elif isinstance(scale, (list, tuple)) and len(scale) == 1:
            scale = float(scale[0])
        return scale

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        """BasicSR's validation, leaving the global RNG as it found it (validation loaders draw
        their seeds from it), so a validation does not change the training that follows and a
        resumed run, which does not repeat it, draws the same noise (utils/data_stream.py)."""
        devices = [torch.cuda.current_device()] if self.device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices):
            super().validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """BasicSR's validation loop, with a dataset's own ``metrics`` when it defines them.

        Protocols differ per benchmark and scale (Y channel with crop = scale on Set5 ...,
        RGB with crop = scale + 6 on DIV2K-val), while BasicSR has one ``val.metrics`` for
        every val set. A dataset option ``metrics`` (same format) replaces it for that set.
        """
        dataset_metrics = dataloader.dataset.opt.get('metrics')
        if not dataset_metrics:
            return super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        val_opt = self.opt['val']
        yaml_metrics = val_opt.get('metrics')
        val_opt['metrics'] = dataset_metrics
        try:
            return super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            val_opt['metrics'] = yaml_metrics

    # ------------------------------------------------------------------ checkpoints
    def load_network(self, net, load_path, strict=True, param_key='params') -> None:
        """BasicSR's ``load_network``, after a check that fails in one line naming the file.

        basicsr 1.4.2 ``BaseModel.load_network`` (basicsr/models/base_model.py) reports a truncated
        file with a zip error that does not name it, and another arch's weights with a RuntimeError
        listing every key (hundreds of lines); :func:`check_network_file` raises a ``CheckpointError``
        with the tools' one mismatch report instead.
        """
        check_network_file(self.get_bare_model(net), load_path, strict, param_key)
        if not is_safetensors(load_path):
            super().load_network(net, load_path, strict, param_key)
            return
        # BasicSR's load_network (torch.load) for a .safetensors file: same logging and key report.
        net = self.get_bare_model(net)
        state, param_key = read_network_state(load_path, param_key)
        get_root_logger().info(
            f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].'
        )
        self._print_different_keys_loading(net, state, strict)
        net.load_state_dict(state, strict=strict)

    @master_only
    def save_network(self, net, net_label: str, current_iter, param_key='params') -> None:
        """Save network(s) like BasicSR, atomically (a kill never leaves a partial ``.pth``).

        ``net_g`` files also record the YAML's ``network_g``, so they load without the YAML
        (``gaussiansr_arch.load_model``, the tools' ``--weights``).

        With ``logger.save_safetensors``, also ``<net_label>_<iter>.safetensors``: ``params_ema``
        when saved (EMA on), else the first key, recorded as its ``param_key``, with the YAML's
        ``network_g`` (for ``net_g``).
        """
        label = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError('net and param_key must have the same length')
        save_dict = {}
        for net_, key_ in zip(nets, keys):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[key_] = OrderedDict((k.removeprefix('module.'), v.detach().cpu()) for k, v in state_dict.items())
        network_g = self.opt.get('network_g') if net_label == 'net_g' else None
        pth_dict = dict(save_dict)
        if network_g:
            # Self-describing checkpoints: load_model / the tools rebuild the arch from the file alone
            # (BasicSR's load_network reads only its param_key). Plain types for weights_only loading.
            pth_dict['network_g'] = json.loads(json.dumps(network_g))
        path = osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth')
        atomic_torch_save(pth_dict, path)
        if (self.opt.get('logger') or {}).get('save_safetensors'):
            key = 'params_ema' if 'params_ema' in save_dict else keys[0]
            save_weights(
                osp.join(self.opt['path']['models'], f'{net_label}_{label}.safetensors'),
                save_dict[key],
                network_g=network_g,
                param_key=key,
            )

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """Save the resume state atomically; it also records the experiment name.

        The name lets ``load_resume_state`` refuse a state from another experiment (whose
        network files would otherwise be looked up in this experiment's folder); ``data_stream``
        (the run's batch stream origin) lets the resumed run see the batches this run would have.
        """
        if current_iter == -1:
            return  # BasicSR keeps no 'latest' state
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'name': self.opt['name'],
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        if getattr(self, 'grad_scaler', None) is not None:
            state['grad_scaler'] = self.grad_scaler.state_dict()
        if self.opt.get('data_stream'):  # set by gaussiansr-train (utils/data_stream.py)
            state['data_stream'] = dict(self.opt['data_stream'])
            state['rng'] = rng_state()
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state: dict) -> None:
        """BasicSR's resume, plus the fp16 gradient scaler's state when the run uses one."""
        super().resume_training(resume_state)
        scaler = getattr(self, 'grad_scaler', None)
        if scaler is not None and 'grad_scaler' in resume_state:
            scaler.load_state_dict(resume_state['grad_scaler'])

"""The training batch stream across resumes: a resumed run sees the batches the uninterrupted run would.

BasicSR's trainer restarts the saved epoch's sampler from its beginning on resume, and the
training datasets' per-process batch counter (``sample_seed``, ``batch_scale``) restarts at zero,
so a resumed run trains on other batches than the run it continues. The stream of a run is fixed by
where it started (its *origin*: the iteration before its first batch and that batch's BasicSR epoch)
and by the number of batches per epoch: the ``k``-th batch after the origin (``k >= 1``) is batch
``(k - 1) % n`` of epoch ``origin_epoch + (k - 1) // n``, and the dataset's counter has counted
``k - 1`` batches before it. A fresh run's origin is (0, 0). The resume state records the origin
(``data_stream``), and the resumed run drops the batches of the saved epoch that were already
trained on and sets the dataset's counter, so it continues the same stream. The state also records
the global RNG (``rng``: torch's, and CUDA's when used; what training noise such as GaussianSR's
Gumbel-softmax draws), restored where the uninterrupted run would be: after the resumed epoch's
loader drew its seed. Validation does not move the RNG (the model validates under ``fork_rng``),
so a single-process resumed run reaches the uninterrupted run's weights (``tests/test_data_stream.py``).
Under DDP each rank's RNG differs and only rank 0 saves, so the RNG is not restored there.

A state without ``data_stream`` (saved by an older version) is resumed as before: its stream
restarts at the saved epoch, and that resume becomes the origin of what follows. ``basicsr.train``'s
data loaders are wrapped by :mod:`gaussiansr_arch.utils.basicsr_patches` (``create_train_val_dataloader``).
"""

import itertools
from dataclasses import asdict, dataclass

import torch
from torch.utils.data import Sampler

from gaussiansr_arch.utils.checkpoint import load_checkpoint_cpu


@dataclass(frozen=True)
class DataStream:
    """Where a run's batch stream starts.

    Attributes:
        origin_iter (int): The iteration before the stream's first batch (0 for a fresh run).
        origin_epoch (int): BasicSR's epoch of that first batch.
    """

    origin_iter: int = 0
    origin_epoch: int = 0

    def to_state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> 'DataStream | None':
        """The stream a resume state records; None for a state without one (older versions)."""
        stream = state.get('data_stream')
        if not isinstance(stream, dict):
            return None
        return cls(int(stream['origin_iter']), int(stream['origin_epoch']))


@dataclass(frozen=True)
class ResumePosition:
    """Where a resumed run picks the stream up.

    Attributes:
        stream (DataStream): The stream the resumed run continues.
        batches_done (int): Batches of the stream trained on before the resume.
        skip_batches (int): Batches of the saved epoch to drop (0 to ``batches_per_epoch``).
        exact (bool): Whether the run continues its stream (False: an older state, or one that
            does not fit the loader, e.g. another batch size; the stream restarts at the saved epoch).
    """

    stream: DataStream
    batches_done: int
    skip_batches: int
    exact: bool


def resume_position(state: dict, batches_per_epoch: int) -> ResumePosition:
    """Where a run resumed from ``state`` (BasicSR's ``epoch`` and ``iter``) picks up its stream.

    Args:
        state (dict): The resume state: ``iter``, ``epoch`` and, when recorded, ``data_stream``.
        batches_per_epoch (int): Batches per epoch of the train loader (per process).
    """
    resume_iter, resume_epoch = int(state['iter']), int(state['epoch'])
    restart = ResumePosition(DataStream(resume_iter, resume_epoch), 0, 0, False)
    stream = DataStream.from_state(state)
    if stream is None or batches_per_epoch < 1:
        return restart
    batches_done = resume_iter - stream.origin_iter
    expected_epoch = stream.origin_epoch + max(batches_done - 1, 0) // batches_per_epoch
    if batches_done < 0 or resume_epoch != expected_epoch:
        return restart
    # batches of the saved epoch already trained on: 1 to batches_per_epoch (all of them when the
    # save ended an epoch), 0 when the state is the stream's origin
    skip = batches_done - (resume_epoch - stream.origin_epoch) * batches_per_epoch
    return ResumePosition(stream, batches_done, skip, True)


def rng_state() -> dict:
    """The global RNG state training noise draws from: torch's, and the current CUDA device's."""
    state = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


class ResumedEpochSampler(Sampler):
    """A train sampler (BasicSR's ``EnlargedSampler``) whose epoch ``epoch`` starts ``skip`` samples in.

    Every other epoch is the wrapped sampler's own; ``set_epoch`` is still called on the wrapped one.
    ``rng`` (a :func:`rng_state`) is restored when epoch ``epoch`` starts: the loader has then drawn
    its per-epoch seed from the global RNG, as the uninterrupted run had before it saved.
    """

    def __init__(self, sampler: Sampler, epoch: int, skip: int, rng: dict | None = None) -> None:
        self.sampler, self.epoch, self.skip, self.rng = sampler, epoch, skip, rng

    def __iter__(self):
        indices = iter(self.sampler)
        if getattr(self.sampler, 'epoch', None) == self.epoch:
            if self.rng is not None:
                set_rng_state(self.rng)
                self.rng = None
            return itertools.islice(indices, self.skip, None)
        return indices

    def __len__(self) -> int:
        return len(self.sampler)


def continue_data_stream(opt: dict, train_loader, train_sampler, logger) -> DataStream:
    """Make the train loader continue the resumed run's stream; record the stream in ``opt``.

    Runs after BasicSR built the loaders (``create_train_val_dataloader``) and before the model:
    the model saves ``opt['data_stream']`` in every resume state. Resuming from a state without
    one, or one whose epochs do not fit this loader, restarts the stream at the saved epoch (with a
    warning) as BasicSR does. Exact with ``num_worker_per_gpu: 0``; with workers, the datasets'
    per-sample draws (``sample_seed``, ``batch_scale``) restart with the workers, as every epoch.
    """
    path = (opt.get('path') or {}).get('resume_state')
    stream = DataStream()
    if path and train_loader is not None:
        state = load_checkpoint_cpu(path)
        position = resume_position(state, len(train_loader))
        stream = position.stream
        if position.exact:
            skip_samples = position.skip_batches * train_loader.batch_size
            rng = state.get('rng') if int(opt.get('world_size', 1)) == 1 else None
            train_loader.batch_sampler.sampler = ResumedEpochSampler(
                train_sampler, int(state['epoch']), skip_samples, rng
            )
            if hasattr(train_loader.dataset, 'resume_stream'):
                train_loader.dataset.resume_stream(position.batches_done)
            logger.info(
                f'Data stream continued: {position.batches_done} batches since iteration {stream.origin_iter}; '
                f'epoch {state["epoch"]} resumes at its batch {position.skip_batches}.'
            )
        else:
            logger.warning(
                f'Data stream restarts at epoch {state["epoch"]}: {path} records no stream that fits this loader '
                '(saved by an older version, or another batch or dataset size), so batches differ from an '
                'uninterrupted run from here on.'
            )
    opt['data_stream'] = stream.to_state()
    return stream

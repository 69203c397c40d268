"""A resumed run sees the batches the uninterrupted run would (gaussiansr_arch/utils/data_stream.py).

Units: where a resume picks the stream up, for fresh, mid-epoch, end-of-epoch, older and
mismatched states. End to end: a tiny GaussianSR run of 8 iterations (3 batches per epoch,
Gumbel-softmax noise, a validation every 2) against the same run stopped at 4 and at 6 and resumed
each time with ``--auto_resume``: identical batches (``logger.batch_digests``) and identical final
weights.
"""

import pytest
import torch

from gaussiansr_arch.utils import checkpoint
from gaussiansr_arch.utils.data_stream import DataStream, ResumedEpochSampler, resume_position

import train_helpers as th


def _state(it: int, epoch: int, origin: tuple[int, int] | None = (0, 0)) -> dict:
    state = {'iter': it, 'epoch': epoch}
    if origin is not None:
        state['data_stream'] = DataStream(*origin).to_state()
    return state


@pytest.mark.parametrize(
    ('it', 'epoch', 'origin', 'done', 'skip'),
    [
        (4, 1, (0, 0), 4, 1),  # batch 4 of a 3-batch epoch is batch 0 of epoch 1
        (6, 1, (0, 0), 6, 3),  # a save that ends epoch 1: all of it is dropped, epoch 2 follows
        (3, 0, (0, 0), 3, 3),
        (1, 0, (0, 0), 1, 1),
        # a stream restarted at iteration 1000, epoch 9 (an older version's resume), 105 per epoch
        (2500, 23, (1000, 9), 1500, 30),
        (3000, 28, (1000, 9), 2000, 5),
    ],
)
def test_resume_position_continues_the_stream(it, epoch, origin, done, skip):
    n = 105 if origin[0] else 3
    position = resume_position(_state(it, epoch, origin), n)
    assert position.exact and position.stream == DataStream(*origin)
    assert (position.batches_done, position.skip_batches) == (done, skip)


@pytest.mark.parametrize(
    'state',
    [
        _state(4, 1, origin=None),  # saved by an older version: no stream recorded
        _state(4, 2, origin=(0, 0)),  # epochs that do not fit 3 batches per epoch (other batch size)
        _state(4, 0, origin=(0, 0)),
        _state(4, 1, origin=(5, 0)),  # an origin after the save
    ],
)
def test_resume_position_restarts_a_stream_that_does_not_fit(state):
    position = resume_position(state, 3)
    assert not position.exact
    assert position.stream == DataStream(state['iter'], state['epoch'])
    assert (position.batches_done, position.skip_batches) == (0, 0)


class _EpochSampler:
    def __init__(self, n: int):
        self.n, self.epoch = n, 0

    def __iter__(self):
        return iter(range(self.epoch * 100, self.epoch * 100 + self.n))

    def __len__(self):
        return self.n


def test_resumed_epoch_sampler_skips_only_in_its_epoch():
    inner = _EpochSampler(6)
    sampler = ResumedEpochSampler(inner, epoch=1, skip=4)
    assert list(sampler) == [0, 1, 2, 3, 4, 5]
    inner.epoch = 1
    assert list(sampler) == [104, 105]
    inner.epoch = 2
    assert list(sampler) == list(range(200, 206)) and len(sampler) == 6


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    return th.make_tiny_data(tmp_path_factory.mktemp('data'))


def _stream_yaml(data: dict, folder) -> str:
    # validation after every save: it must not move the RNG the training noise draws from
    opt = th.train_opt(data, 'stream', total_iter=8, ckpt_freq=2, val_freq=2, model_type='ArbitraryScaleSRModel')
    # 3 images x 2 / batch 2: 3 batches per epoch, so the resumes land mid-epoch and at an epoch's end
    opt['datasets']['train'].update(dataset_enlarge_ratio=2, sample_seed=5, batch_scale=True)
    opt['logger']['batch_digests'] = True
    return th.write_yaml(opt, folder / 'stream.yml')


def _train(yml: str, root, *extra: str) -> None:
    th.run_entry('train', '-opt', yml, '--root', str(root), *extra)


def test_resumed_runs_train_on_the_batches_and_reach_the_weights_of_the_uninterrupted_run(data, tmp_path):
    yml = _stream_yaml(data, tmp_path)
    whole, pieces = tmp_path / 'whole', tmp_path / 'pieces'
    _train(yml, whole)
    _train(yml, pieces, '--force_yml', 'train:total_iter=4')
    _train(yml, pieces, '--auto_resume', '--force_yml', 'train:total_iter=6')  # resumes mid-epoch 1
    _train(yml, pieces, '--auto_resume')  # resumes at the end of epoch 1
    exp_whole, exp_pieces = whole / 'experiments' / 'stream', pieces / 'experiments' / 'stream'
    digests = (exp_whole / 'batch_digests.txt').read_text().splitlines()
    assert [line.split()[0] for line in digests] == [str(i) for i in range(1, 9)]
    assert len({line.split()[1] for line in digests}) == 8
    assert (exp_pieces / 'batch_digests.txt').read_text().splitlines() == digests
    log = th.read_logs(exp_pieces, 'train')
    assert 'epoch 1 resumes at its batch 1.' in log and 'epoch 1 resumes at its batch 3.' in log
    final = [checkpoint.load_checkpoint_cpu(str(e / 'models' / 'net_g_8.pth')) for e in (exp_whole, exp_pieces)]
    for key in ('params', 'params_ema'):
        assert all(torch.equal(v, final[1][key][k]) for k, v in final[0][key].items()), key
    state = checkpoint.load_checkpoint_cpu(str(exp_pieces / 'training_states' / '8.state'))
    assert state['data_stream'] == {'origin_iter': 0, 'origin_epoch': 0}


def test_a_state_without_a_stream_restarts_it_with_a_warning(data, tmp_path):
    yml = _stream_yaml(data, tmp_path)
    _train(yml, tmp_path, '--force_yml', 'train:total_iter=4')
    exp = tmp_path / 'experiments' / 'stream'
    path = exp / 'training_states' / '4.state'
    state = checkpoint.load_checkpoint_cpu(str(path))
    del state['data_stream']  # as an older version saved it
    checkpoint.atomic_torch_save(state, str(path))
    _train(yml, tmp_path, '--auto_resume', '--force_yml', 'train:total_iter=6')
    assert 'Data stream restarts at epoch 1' in th.read_logs(exp, 'train')
    resumed = checkpoint.load_checkpoint_cpu(str(exp / 'training_states' / '6.state'))
    assert resumed['data_stream'] == {'origin_iter': 4, 'origin_epoch': 1}  # the restart is the new origin

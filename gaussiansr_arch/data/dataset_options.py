"""Option checks shared by the datasets: unknown keys and typed values fail in one line naming the key."""

import numbers

# Keys BasicSR itself (options parsing, build_dataloader, train/test pipelines) puts or reads in a
# dataset's options, plus ``metrics`` (a val set's own protocol, read by ArbitraryScaleSRModel);
# they are accepted by every dataset here whether used or not.
BASICSR_DATASET_KEYS = frozenset(
    {
        'name',
        'type',
        'phase',
        'scale',
        'batch_size_per_gpu',
        'num_worker_per_gpu',
        'dataset_enlarge_ratio',
        'prefetch_mode',
        'num_prefetch_queue',
        'pin_memory',
        'persistent_workers',
        'use_shuffle',
        'num_gpu',
        'dist',
        'manual_seed',
        'world_size',
        'rank',
        'metrics',
    }
)


def check_options(opt: dict, own_keys, dataset_type: str) -> None:
    """Raise ValueError listing unknown option keys (typos would otherwise be silently ignored)."""
    allowed = set(own_keys) | BASICSR_DATASET_KEYS
    unknown = sorted(k for k in opt if k not in allowed)
    if unknown:
        raise ValueError(f'{dataset_type}: unknown option key(s) {unknown}; allowed keys are {sorted(allowed)}')


def option_value(
    opt: dict, key: str, default, dataset_type: str, kind: str, nullable: bool = False, choices: tuple = ()
):
    """``opt[key]`` (or ``default``) checked to be of ``kind`` ('int', 'number', 'bool' or 'choice').

    A quoted YAML value (``scale_min: '1'``) or a word where a number belongs would otherwise be
    converted silently or fail deep inside with a traceback; ``bool('false')`` is even True.
    Integral floats are accepted for 'int' (``lr_size: 48.0``). 'choice': one of the strings
    ``choices`` (case-sensitive).
    """
    value = opt.get(key, default)
    if value is None and nullable:
        return None
    if kind == 'choice':
        if not isinstance(value, str) or value not in choices:
            raise ValueError(
                f'{dataset_type}: option {key} must be one of {", ".join(choices)}, '
                f'got {value!r} ({type(value).__name__})'
            )
        return value
    if kind == 'bool':
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok and kind == 'int':
            ok = float(value).is_integer()
    if not ok:
        expected = {'int': 'an integer', 'number': 'a number', 'bool': 'true or false'}[kind]
        hint = ' (write it without quotes; YAML reads 1e-4 as text, write 1.0e-4)' if isinstance(value, str) else ''
        raise ValueError(
            f'{dataset_type}: option {key} must be {expected}, got {value!r} ({type(value).__name__}){hint}'
        )
    if kind == 'int':
        return int(value)
    return float(value) if kind == 'number' else value

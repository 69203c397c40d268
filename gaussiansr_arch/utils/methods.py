"""One descriptor per method, declared by its arch next to its class: the one list of methods.

Every ``archs/<name>_arch.py`` registers its class with BasicSR's ``ARCH_REGISTRY`` and a
:class:`Method` here with :func:`register_method`. Whatever lists methods loops over
:func:`methods`: shape detection (``utils/arch_detect.py``), model cards (reference schedule,
description), the benchmarks' model lists, the test option files, the device and contract tests.
A new method is then one file (docs/architecture.md, "Adding a method").

Utils layer: plain data and a dict; it imports nothing of the package. The registry fills when
``gaussiansr_arch.archs`` is imported (``import gaussiansr_arch`` does it), as BasicSR's does.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ['Method', 'ReferenceSchedule', 'register_method', 'methods', 'get_method', 'method_networks']

# (state dict, encoder output channels) -> the options without ``type`` and encoder, or None.
Detector = Callable[[Mapping[str, Any], int], dict | None]


@dataclass(frozen=True)
class ReferenceSchedule:
    """The training schedule a method's published results come from (model cards compare a run to it)."""

    iterations: int
    batch: int
    lr_size: int
    source: str


@dataclass(frozen=True)
class Method:
    """What the periphery needs to know about one method (one registered arch).

    Attributes:
        arch (str): The class name registered in BasicSR's ``ARCH_REGISTRY`` (``network_g.type``).
        marker (str): A parameter-name prefix only this method's family has (``'imnet.'``,
            ``'head.embedding'``): detection asks :attr:`detect` only of the methods whose marker
            a state dict shows.
        detect (Callable): ``detect(state, channels)`` -> this method's ``network_g`` options
            (without ``type``, ``encoder`` and ``encoder_opt``) read from the parameter names and
            shapes, or None when they do not fit (``channels``: the encoder's output channels).
        tiny (Mapping): Options of a tiny configuration (tests: a few thousand parameters).
        protocol (str): The name of its paper's evaluation protocol (``data/protocol.py``).
        default_model (str | None): What the arch built with no options is, for model cards
            (``"the paper's model"``); None: "<arch>'s default configuration".
        description (str): One line on that default configuration, for model cards.
        schedule (ReferenceSchedule | None): The schedule of its published figures (None: none stated).
        image_skip (bool): Whether it has the ``image_skip`` option (added by this package).
        onnx (bool): Whether ``gaussiansr-export-onnx`` exports it.
        variants (Mapping): Named option sets beyond the defaults, listed next to it by the
            benchmarks and the device tests (``{'mlp': {'decoder': 'mlp'}}``: ``<key>-mlp``).
        test_encoders (tuple): Encoders ``scripts/make_test_options.py`` writes test files for.
        official_weights (bool): The test files read converted official weights
            (``experiments/pretrained_models/<Arch>_<Encoder>_official.pth``), not a run of ours.
        benchmarked (bool): In the benchmarks' model lists.
        order (int): Position in every list (lower first; ties by name).
    """

    arch: str
    marker: str
    detect: Detector
    tiny: Mapping[str, Any]
    protocol: str
    default_model: str | None = None
    description: str = ''
    schedule: ReferenceSchedule | None = None
    image_skip: bool = False
    onnx: bool = True
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    test_encoders: tuple[str, ...] = ('edsr-baseline',)
    official_weights: bool = False
    benchmarked: bool = True
    order: int = 100

    @property
    def key(self) -> str:
        """The lower-case name lists use (``'gaussiansr'``, ``'liif'``)."""
        return self.arch.lower()

    def network(self, variant: str | None = None, tiny: bool = False) -> dict:
        """A ``network_g``: the defaults (or the tiny configuration), with a variant's options."""
        base = dict(self.tiny) if tiny else {}
        return {'type': self.arch, **base, **(dict(self.variants[variant]) if variant else {})}


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Register ``method`` (under ``method.arch``); registering the same descriptor again is a no-op.

    Raises:
        ValueError: another descriptor under the same arch name.
    """
    held = _METHODS.get(method.arch)
    if held is not None and held != method:
        raise ValueError(f'method {method.arch} is already registered with another descriptor')
    _METHODS[method.arch] = method
    return method


def unregister_method(arch: str) -> None:
    """Remove a method (tests that register a toy one)."""
    _METHODS.pop(arch, None)


def methods() -> tuple[Method, ...]:
    """Every registered method, in list order (``order``, then name)."""
    return tuple(sorted(_METHODS.values(), key=lambda m: (m.order, m.arch)))


def get_method(arch: str) -> Method | None:
    """The descriptor of a registered arch name, or None (an arch without one)."""
    return _METHODS.get(arch)


def method_networks(tiny: bool = False, benchmarked_only: bool = False) -> Mapping[str, dict]:
    """``{'<key>' | '<key>-<variant>': network_g}`` of every method and variant, in list order."""
    out: dict[str, dict] = {}
    for method in methods():
        if benchmarked_only and not method.benchmarked:
            continue
        out[method.key] = method.network(tiny=tiny)
        for variant in method.variants:
            out[f'{method.key}-{variant}'] = method.network(variant, tiny=tiny)
    return MappingProxyType(out)

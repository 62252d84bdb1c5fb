"""torch's determinism settings: cuDNN flags, deterministic algorithms, TF32, inductor's RNG.

Settings are read and written through torch's C entry points, the same ones
the public properties call, so they work while torch has frozen its flags
(``torch.backends.disable_global_flags()``) and cost well under a microsecond.

Strict mode also sets ``torch._inductor.config.fallback_random``, so that code
compiled by ``torch.compile`` draws random numbers as eager code does. Importing
inductor takes seconds, so it is never imported here: when it is not loaded
yet, the value waits, and is set as soon as ``torch._inductor.config`` is
imported (usually by the first ``torch.compile``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import _imports
from .._plain import expect_fields, read_bool
from .base import ProcessWide

__all__ = ["TorchFlags"]

# torch >= 2.9 stores TF32 choices as a tree of fp32_precision settings: the
# generic root, then one node per backend, then one per operation. Writing a
# node resets its children, so a restore writes parents before children.
_PRECISION_NODES = (
    ("generic", "all"),
    ("cuda", "all"),
    ("mkldnn", "all"),
    ("cuda", "matmul"),
    ("cuda", "conv"),
    ("cuda", "rnn"),
    ("mkldnn", "matmul"),
    ("mkldnn", "conv"),
    ("mkldnn", "rnn"),
)


class _Settings(NamedTuple):
    cudnn_deterministic: bool
    cudnn_benchmark: bool
    deterministic_algorithms: bool
    warn_only: bool
    fill_uninitialized_memory: bool
    precision: tuple[Any, ...]
    # inductor's fallback_random; None: its default (or inductor not loaded).
    fallback_random: bool | None


@functools.cache
def _precision_nodes() -> tuple[tuple[str, str], ...]:
    """The fp32_precision nodes this torch has; empty before torch 2.9."""
    c = sys.modules["torch"]._C
    if not hasattr(c, "_get_fp32_precision_getter"):
        return ()
    nodes = []
    for node in _PRECISION_NODES:
        try:
            c._get_fp32_precision_getter(*node)
        except (RuntimeError, ValueError):
            continue
        nodes.append(node)
    return tuple(nodes)


_LEGACY_PRECISION = (
    ("_get_cublas_allow_tf32", "_set_cublas_allow_tf32"),
    ("_get_cudnn_allow_tf32", "_set_cudnn_allow_tf32"),
    ("_get_float32_matmul_precision", "_set_float32_matmul_precision"),
)


@functools.cache
def _precision_getters() -> tuple[tuple[Callable[[], Any], ...], tuple[Callable[[], Any], ...]]:
    """Getters bound once: the legacy switches, then the fp32_precision nodes."""
    c = sys.modules["torch"]._C
    legacy = tuple(getattr(c, getter) for getter, _ in _LEGACY_PRECISION)
    nodes = tuple(
        functools.partial(c._get_fp32_precision_getter, *node) for node in _precision_nodes()
    )
    return legacy, nodes


def _read_or_none(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except RuntimeError:  # torch refuses to read after a mix of legacy and new settings
        return None


def _read_precision() -> tuple[Any, ...]:
    # torch keeps the legacy switches as hidden state beside the tree, and its
    # legacy getters raise when the two disagree, so both are saved.
    legacy, nodes = _precision_getters()
    try:
        values = [getter() for getter in legacy]
    except RuntimeError:
        values = [_read_or_none(getter) for getter in legacy]
    values += [getter() for getter in nodes]
    return tuple(values)


def _write_precision(c: Any, values: tuple[Any, ...]) -> None:
    # Legacy setters first (they also rewrite parts of the tree), then the
    # tree, parents before children.
    for (_, setter), value in zip(_LEGACY_PRECISION, values, strict=False):
        if value is not None:
            getattr(c, setter)(value)
    for node, value in zip(_precision_nodes(), values[len(_LEGACY_PRECISION) :], strict=True):
        c._set_fp32_precision_setter(*node, value)


_MATMUL_PRECISIONS = ("highest", "high", "medium")
_FP32_PRECISIONS = ("none", "ieee", "tf32", "bf16")
# torch: "backend 'cuda' does not support precision 'bf16'"
_CUDA_FP32_PRECISIONS = ("none", "ieee", "tf32")


def _allowed_precision(position: int) -> tuple[Any, ...]:
    """The values that can be written back at ``position`` of a saved precision tuple."""
    if position < 2:  # cuBLAS and cuDNN allow_tf32; None: unreadable when saved
        return (None, False, True)
    if position == 2:  # float32 matmul precision
        return (None, *_MATMUL_PRECISIONS)
    backend, _ = _precision_nodes()[position - len(_LEGACY_PRECISION)]
    return _CUDA_FP32_PRECISIONS if backend == "cuda" else _FP32_PRECISIONS


def _valid_precision(position: int, value: object) -> bool:
    # The type first: 0 == False and 1.0 == True.
    return (value is None or type(value) in (bool, str)) and value in _allowed_precision(position)


def _precision_name(position: int) -> str:
    if position < len(_LEGACY_PRECISION):
        return f" ({_LEGACY_PRECISION[position][0].removeprefix('_get_')})"
    backend, op = _precision_nodes()[position - len(_LEGACY_PRECISION)]
    return f" (fp32_precision of {backend} {op})"


def _read(c: Any) -> _Settings:
    return _Settings(
        c._get_cudnn_deterministic(),
        c._get_cudnn_benchmark(),
        c._get_deterministic_algorithms(),
        c._get_deterministic_algorithms_warn_only(),
        c._get_deterministic_fill_uninitialized_memory(),
        _read_precision(),
        _read_fallback_random(),
    )


# -- inductor's fallback_random ------------------------------------------------------

_INDUCTOR_CONFIG = "torch._inductor.config"
# The value fallback_random gets when inductor's config is imported, while
# ``_watch`` (made once) is on sys.meta_path waiting for that import; None:
# inductor's default. Like the settings above, captured and restored. The
# value counts only while the watch is there, so that an interruption between
# the two writes leaves a state that reads as what it is.
_on_import: bool | None = None
_watch: _imports.ImportWatch | None = None


def _waiting() -> bool:
    return _watch is not None and _watch in (getattr(sys, "meta_path", None) or ())


@functools.cache
def _fallback_random_default(config: Any) -> bool:
    entry = getattr(config, "_config", {}).get("fallback_random")
    default = getattr(entry, "default", False)  # torch >= 2.4 keeps one entry per setting
    return default is True


@functools.cache
def _plain_entry(config: Any) -> tuple[Any, object] | None:
    """inductor's record of fallback_random and its "unset" marker, if reading it is plain.

    Plain: no alias, no value from the environment, no remote switch, so the
    value is the user's override if set, else the default. Reading it so costs
    a tenth of ``config.fallback_random``, which every scope's capture and
    restore would pay once torch.compile has loaded inductor.
    """
    unset = getattr(sys.modules.get("torch.utils._config_module"), "_UNSET_SENTINEL", None)
    entry: Any = getattr(config, "_config", {}).get("fallback_random")
    try:
        plain = (
            unset is not None
            and entry.alias is None
            and entry.justknob is None
            and entry.env_value_force is unset
            and entry.env_value_default is unset
            and callable(entry.user_override.get)
        )
    except AttributeError:  # another torch: its own getter is right
        return None
    return (entry, unset) if plain else None


def _read_fallback_random() -> bool | None:
    config = sys.modules.get(_INDUCTOR_CONFIG)
    if config is None:
        return _on_import if _on_import is not None and _waiting() else None
    plain = _plain_entry(config)
    if plain is None:
        value = config.fallback_random is True
    else:
        entry, unset = plain
        override = entry.user_override.get()
        value = (entry.default if override is unset else override) is True
    return None if value == _fallback_random_default(config) else value


def _write_fallback_random(value: bool | None) -> None:
    global _on_import, _watch
    config: Any = sys.modules.get(_INDUCTOR_CONFIG)
    if config is not None:
        wanted = _fallback_random_default(config) if value is None else value
        # Recent torch keeps inductor's settings per thread and task (context
        # variables): this sets it where the scope is.
        if config.fallback_random is not wanted:
            config.fallback_random = wanted
        return
    if value is None:
        _unwatch()
        return
    _on_import = value
    if _watch is None:
        _watch = _imports.ImportWatch(_INDUCTOR_CONFIG.__eq__, _inductor_imported)
    if not _waiting():
        _imports.watch(_watch)


def _inductor_imported(module: str) -> None:
    value = _on_import
    _unwatch()
    if value is not None:
        _write_fallback_random(value)


def _unwatch() -> None:
    global _on_import
    if _watch is not None:
        _imports.unwatch(_watch)
    _on_import = None


class TorchFlags(ProcessWide):
    """cuDNN flags always; with ``strict``, deterministic algorithms and TF32 too.

    Every setting is captured and restored in both modes, so a scope also
    undoes settings the code inside it changed.
    """

    name = "flags"
    module = "torch"

    def __init__(self, *, strict: bool = False, warn_only: bool = False) -> None:
        self.strict = strict
        self.warn_only = warn_only

    def capture(self) -> _Settings:
        return _read(sys.modules["torch"]._C)

    def seed(self, seed: int) -> None:
        c = sys.modules["torch"]._C
        c._set_cudnn_deterministic(True)
        c._set_cudnn_benchmark(False)
        if not self.strict:
            return
        c._set_deterministic_algorithms(True, warn_only=self.warn_only)
        c._set_deterministic_fill_uninitialized_memory(True)
        # Else compiled code draws from inductor's own RNG, not torch's generators.
        _write_fallback_random(True)
        # Through the legacy setters on every torch: on torch >= 2.9 they also
        # update the fp32_precision tree, and leave it in a state that both the
        # legacy and the new getters can read (setting nodes to "ieee" directly
        # makes torch.backends.cudnn.allow_tf32 raise).
        c._set_cublas_allow_tf32(False)
        c._set_cudnn_allow_tf32(False)
        c._set_float32_matmul_precision("highest")
        # Operations switched to TF32 through the newer API keep it through the
        # legacy setters; switch those off one by one.
        for node in _precision_nodes():
            if node[1] != "all" and c._get_fp32_precision_getter(*node) == "tf32":
                c._set_fp32_precision_setter(*node, "ieee")

    def restore(self, state: _Settings) -> None:
        c = sys.modules["torch"]._C
        current = _read(c)
        if current == state:
            return
        if current.cudnn_deterministic != state.cudnn_deterministic:
            c._set_cudnn_deterministic(state.cudnn_deterministic)
        if current.cudnn_benchmark != state.cudnn_benchmark:
            c._set_cudnn_benchmark(state.cudnn_benchmark)
        if current[2:4] != state[2:4]:
            c._set_deterministic_algorithms(
                state.deterministic_algorithms, warn_only=state.warn_only
            )
        if current.fill_uninitialized_memory != state.fill_uninitialized_memory:
            c._set_deterministic_fill_uninitialized_memory(state.fill_uninitialized_memory)
        if current.precision != state.precision:
            _write_precision(c, state.precision)
        if current.fallback_random != state.fallback_random:
            _write_fallback_random(state.fallback_random)

    def dump_state(self, state: _Settings) -> Any:
        plain: dict[str, Any] = state._asdict()
        plain["precision"] = list(state.precision)
        return plain

    def load_state(self, data: Any) -> _Settings:
        if isinstance(data, dict) and "fallback_random" not in data:
            # Saved before seedscope managed it: inductor's default, as then.
            data = {**data, "fallback_random": None}
        fields = expect_fields(data, "state", _Settings._fields)
        flags: dict[str, Any] = {
            name: read_bool(fields[name], f"state {name!r}") for name in _Settings._fields[:5]
        }
        fallback_random = fields["fallback_random"]
        if fallback_random is not None and type(fallback_random) is not bool:
            raise ValueError(
                "state 'fallback_random' must be true, false or null (inductor's default), "
                f"not {fallback_random!r}"
            )
        flags["fallback_random"] = fallback_random
        precision = fields["precision"]
        expected = len(_LEGACY_PRECISION) + len(_precision_nodes())
        if not isinstance(precision, list) or len(precision) != expected:
            raise ValueError(
                f"state 'precision' must be a list of {expected} TF32 settings (this torch "
                f"has {expected}), got {precision!r}"
            )
        for position, value in enumerate(precision):
            if not _valid_precision(position, value):
                allowed = ", ".join(map(repr, _allowed_precision(position)))
                raise ValueError(
                    f"state 'precision'[{position}] is not a valid setting"
                    f"{_precision_name(position)}: {value!r} (this torch takes {allowed})"
                )
        return _Settings(**flags, precision=tuple(precision))

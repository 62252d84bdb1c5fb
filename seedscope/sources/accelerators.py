"""The per-device generators of CUDA and other torch accelerators.

Two rules shape this module. A scope must never initialize an accelerator
(that costs seconds and fixes device settings for the rest of the process),
so an uninitialized backend is seeded the way torch itself does it: by queuing
the seed on torch's lazy-seed tracker. And a queued seed belongs to the scope:
on exit it is taken back, or, if the backend started inside the scope, the
generators are reset to what they would have been had the scope never run.

A snapshot taken with other devices (fewer, more, none) restores onto the
devices both have: device ``i`` of each kind gets the state saved for device
``i``, and the rest keep theirs.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from .._plain import expect_fields, read_int
from .base import ProcessWide
from .torch import _PHILOX_STATE_SIZE, check_philox_state, dump_tensor, load_tensor

__all__ = ["Accelerators"]

_QUEUED_TRACEBACK = ["seed queued by a seedscope scope; it runs when the device starts\n"]
_RESTORED_TRACEBACK = ["states restored from a seedscope snapshot; set when the device starts\n"]
# CUDA and XPU generators are Philox (their state: _PHILOX_STATE_SIZE bytes).
_PHILOX_KINDS = ("cuda", "xpu")


class _Loaded:
    """Per-device states read from a snapshot's plain data, for ``restore``."""

    __slots__ = ("states",)

    def __init__(self, states: Any) -> None:
        self.states = states


class _LazyBackend:
    """cuda and xpu: per-device default generators, seeds queued until start-up."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.name: str = module.__name__.rpartition(".")[2]

    def _generators(self) -> tuple[Any, ...]:
        return tuple(self.module.default_generators)

    def device_count(self) -> int:
        count: int = self.module.device_count()  # does not start the backend
        return count

    def dump(self, state: tuple[bool, Any]) -> list[Any] | None:
        was_initialized, saved = state
        return [dump_tensor(s) for s in saved] if was_initialized else None

    def load(self, states: list[Any], what: str) -> _Loaded:
        """Every saved state checked; those of the devices here kept (the first ones)."""
        size = _PHILOX_STATE_SIZE
        if self.module.is_initialized():
            generators = self._generators()
            size = len(generators[0].get_state()) if generators else size
        loaded = [_load_philox(s, f"{what}[{i}]", size) for i, s in enumerate(states)]
        return _Loaded(loaded[: self.device_count()])

    def capture(self) -> tuple[bool, Any]:
        if self.module.is_initialized():
            return True, [g.get_state() for g in self._generators()]
        tracker = self.module._lazy_seed_tracker
        # queue_seed*/ replace these attributes rather than mutate them.
        return False, (tracker.manual_seed_all_cb, tracker.manual_seed_cb, tracker.call_order)

    def seed(self, seed: int) -> None:
        if self.module.is_initialized():
            for generator in self._generators():
                generator.manual_seed(seed)
            return
        module = self.module

        def seed_all() -> None:
            for generator in tuple(module.default_generators):
                generator.manual_seed(seed)

        # What module.manual_seed_all does, minus its ~50 us traceback capture.
        module._lazy_seed_tracker.queue_seed_all(seed_all, _QUEUED_TRACEBACK)

    def restore(self, state: tuple[bool, Any] | _Loaded) -> None:
        if isinstance(state, _Loaded):
            self._restore_loaded(state.states)
            return
        was_initialized, saved = state
        if was_initialized:
            for generator, generator_state in zip(self._generators(), saved, strict=True):
                generator.set_state(generator_state)
            return
        tracker = self.module._lazy_seed_tracker
        tracker.manual_seed_all_cb, tracker.manual_seed_cb, tracker.call_order = saved
        if self.module.is_initialized():
            # Started inside the scope, with the scope's seed. Without the scope
            # torch would have seeded each device's generator at start-up from
            # a nondeterministic source; do the same, then replay the seeds that
            # were queued before the scope.
            for generator in self._generators():
                generator.seed()
            for queued in saved[2]:
                if queued is not None:
                    queued[0]()

    def _restore_loaded(self, states: list[Any]) -> None:
        # A snapshot from fewer devices has states for the first ones only.
        if self.module.is_initialized():
            for generator, generator_state in zip(self._generators(), states, strict=False):
                generator.set_state(generator_state)
            return
        module = self.module

        def set_all() -> None:
            for generator, generator_state in zip(module.default_generators, states, strict=False):
                generator.set_state(generator_state)

        # Queued like a manual_seed_all, and as the latest call: it runs when
        # the backend starts, after any seed queued before it.
        module._lazy_seed_tracker.queue_seed_all(set_all, _RESTORED_TRACEBACK)


class _EagerBackend:
    """Backends whose generators exist as soon as torch is imported (mps, others)."""

    def __init__(
        self,
        name: str,
        get: Callable[[], Any],
        set_: Callable[[Any], None],
        seed: Callable[[int], None],
        *,
        per_device: bool,
    ) -> None:
        self.name = name
        self._get, self._set, self._seed = get, set_, seed
        # get returns one state for all devices (mps), or one per device
        self._per_device = per_device

    def _states(self, saved: Any) -> list[Any]:
        return list(saved) if self._per_device else [saved]

    def device_count(self) -> int:
        return len(self._states(self._get()))

    def capture(self) -> tuple[bool, Any]:
        return True, self._get()

    def seed(self, seed: int) -> None:
        self._seed(seed)

    def restore(self, state: tuple[bool, Any] | _Loaded) -> None:
        if isinstance(state, _Loaded):
            if self._per_device:
                # A snapshot from fewer devices has states for the first ones only.
                saved = state.states
                self._set([*saved, *self._states(self._get())[len(saved) :]])
            else:
                self._set(state.states[0])
        else:
            self._set(state[1])

    def dump(self, state: tuple[bool, Any]) -> list[Any] | None:
        return [dump_tensor(s) for s in self._states(state[1])]

    def load(self, states: list[Any], what: str) -> _Loaded:
        """Every saved state checked; those of the devices here kept (the first ones)."""
        sizes: list[int | None] = [len(s) for s in self._states(self._get())]
        sizes += [None] * (len(states) - len(sizes))  # devices not here: their layout is unknown
        loaded = [
            load_tensor(s, f"{what}[{i}]", size=size)
            for i, (s, size) in enumerate(zip(states, sizes, strict=False))
        ]
        return _Loaded(loaded[: self.device_count()])


_Backend = _LazyBackend | _EagerBackend


def _load_philox(value: object, what: str, size: int) -> Any:
    state = load_tensor(value, what, size=size)
    # Else set_state raises in restore or, queued, when the device starts.
    check_philox_state(state.numpy().tobytes(), what)
    return state


@functools.cache
def _backends() -> tuple[_Backend, ...]:
    """The accelerator backends of this process, found once (availability does not change)."""
    torch = sys.modules["torch"]
    found: list[_Backend] = []
    for name in ("cuda", "xpu"):
        module = getattr(torch, name, None)
        if (
            module is not None
            and hasattr(module, "_lazy_seed_tracker")
            and not module._is_in_bad_fork()
            and module.is_available()
        ):
            found.append(_LazyBackend(module))
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        found.append(
            _EagerBackend(
                "mps", mps.get_rng_state, mps.set_rng_state, mps.manual_seed, per_device=False
            )
        )
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and accelerator.is_available():
        kind = accelerator.current_accelerator().type
        if kind not in ("cuda", "xpu", "mps"):
            module = torch.get_device_module(kind)
            if all(hasattr(module, f) for f in ("get_rng_state_all", "set_rng_state_all")):
                found.append(
                    _EagerBackend(
                        kind,
                        module.get_rng_state_all,
                        module.set_rng_state_all,
                        module.manual_seed_all,
                        per_device=True,
                    )
                )
    return tuple(found)


class Accelerators(ProcessWide):
    """Every accelerator generator torch has here: each CUDA device, XPU, MPS, ..."""

    name = "accelerators"
    module = "torch"

    def capture(self) -> Any:
        return [(backend, backend.capture()) for backend in _backends()]

    def seed(self, seed: int) -> None:
        for backend in _backends():
            backend.seed(seed)

    def restore(self, state: Any) -> None:
        for backend, backend_state in state:
            backend.restore(backend_state)

    def dump_state(self, state: Any) -> Any:
        return {
            backend.name: {"devices": backend.device_count(), "states": backend.dump(saved)}
            for backend, saved in state
        }

    def load_state(self, data: Any) -> Any:
        """Per-device states, for exactly as many devices of each kind as this process has.

        A snapshot's accelerator states are tied to its devices: one taken with
        another number of devices of any kind is refused here. Snapshots load
        such states with :meth:`load_overlap` unless ``same_devices=True``.
        """
        return self._load(data, same_devices=True)[0]

    def load_overlap(self, data: Any) -> tuple[Any, list[str]]:
        """The states of the devices both the snapshot and this process have, and the differences.

        Device ``i`` of a kind gets the state saved for device ``i``; saved states
        of devices this process lacks are checked, then left out, and devices
        with no saved state keep theirs. The differences read "2 cuda device(s)
        saved, 1 here", one per kind, where some device's state is left out or
        missing.
        """
        return self._load(data, same_devices=False)

    def _load(self, data: Any, *, same_devices: bool) -> tuple[Any, list[str]]:
        if not isinstance(data, dict):
            raise ValueError(f"state must be a dict, not {type(data).__name__}")
        here = {backend.name: backend for backend in _backends()}
        saved: dict[str, tuple[int, Any]] = {}
        for name, entry in data.items():
            fields = expect_fields(entry, f"state {name!r}", ("devices", "states"))
            count = read_int(fields["devices"], f"state {name!r} 'devices'", low=0, high=2**16)
            states = fields["states"]
            if states is not None and (not isinstance(states, list) or len(states) != count):
                raise ValueError(
                    f"state {name!r} 'states' must be null or a list of {count} device states"
                )
            saved[name] = (count, states)
        differences = []
        for name in sorted(set(here) | set(saved)):
            count_here = here[name].device_count() if name in here else 0
            count_saved, states = saved.get(name, (0, []))
            if count_here == count_saved:
                continue
            if same_devices:
                raise ValueError(
                    f"the snapshot was taken with {count_saved} {name} device(s) and this "
                    f"process has {count_here}: with same_devices=True, accelerator states are "
                    "only restored onto the same devices they were saved from (without it, "
                    "the devices both have are restored)"
                )
            if states is not None:  # null: the device had not started, nothing was saved
                differences.append(f"{count_saved} {name} device(s) saved, {count_here} here")
        loaded = []
        for name, (_, states) in saved.items():
            if states is None:
                continue
            what = f"state {name!r} 'states'"
            if name in here:
                states_here = here[name].load(states, what)
                if states_here.states:
                    loaded.append((here[name], states_here))
            else:  # checked all the same: a snapshot is refused or restored whole
                for i, s in enumerate(states):
                    if name in _PHILOX_KINDS:
                        _load_philox(s, f"{what}[{i}]", _PHILOX_STATE_SIZE)
                    else:
                        load_tensor(s, f"{what}[{i}]")
        return loaded, differences

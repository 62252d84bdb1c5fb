"""The per-device generators of CUDA and other torch accelerators.

Two rules shape this module. A scope must never initialize an accelerator
(that costs seconds and fixes device settings for the rest of the process),
so an uninitialized backend is seeded the way torch itself does it: by queuing
the seed on torch's lazy-seed tracker. And a queued seed belongs to the scope:
on exit it is taken back, or, if the backend started inside the scope, the
generators are reset to what they would have been had the scope never run.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from .base import Source

__all__ = ["Accelerators"]

_QUEUED_TRACEBACK = ["seed queued by a seedscope scope; it runs when the device starts\n"]


class _LazyBackend:
    """cuda and xpu: per-device default generators, seeds queued until start-up."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.name: str = module.__name__.rpartition(".")[2]

    def _generators(self) -> tuple[Any, ...]:
        return tuple(self.module.default_generators)

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

    def restore(self, state: tuple[bool, Any]) -> None:
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


class _EagerBackend:
    """Backends whose generators exist as soon as torch is imported (mps, others)."""

    def __init__(
        self,
        name: str,
        get: Callable[[], Any],
        set_: Callable[[Any], None],
        seed: Callable[[int], None],
    ) -> None:
        self.name = name
        self._get, self._set, self._seed = get, set_, seed

    def capture(self) -> tuple[bool, Any]:
        return True, self._get()

    def seed(self, seed: int) -> None:
        self._seed(seed)

    def restore(self, state: tuple[bool, Any]) -> None:
        self._set(state[1])


_Backend = _LazyBackend | _EagerBackend


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
        found.append(_EagerBackend("mps", mps.get_rng_state, mps.set_rng_state, mps.manual_seed))
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
                    )
                )
    return tuple(found)


class Accelerators(Source):
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

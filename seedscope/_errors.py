"""Warnings and errors that seedscope raises."""

from __future__ import annotations

__all__ = ["ConcurrentScopesWarning", "DeviceMismatchWarning", "RestoreError", "SeedscopeWarning"]


class SeedscopeWarning(UserWarning):
    """Base class of every warning seedscope emits."""


class ConcurrentScopesWarning(SeedscopeWarning):
    """Scopes of two threads overlap: global RNG state is shared, so neither is reproducible."""


class DeviceMismatchWarning(SeedscopeWarning):
    """A snapshot's accelerator states were saved on other devices than this process has.

    Only the devices both have are restored; the others keep their state.
    """


class RestoreError(RuntimeError):
    """One or more sources could not be restored when a scope ended.

    Every other source was still restored. ``errors`` pairs each failing source's
    name with the exception it raised.
    """

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        self.errors = errors
        parts = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in errors)
        super().__init__(f"failed to restore {len(errors)} source(s) ({parts})")

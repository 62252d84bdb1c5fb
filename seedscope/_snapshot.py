"""Snapshots: all random state at one moment, to put back later or save in a checkpoint.

``capture()`` reads every source (and any generators passed to it) without
changing anything; ``Snapshot.restore()`` writes it all back. A snapshot
turns into plain data with ``state_dict()``: dicts, lists, strings, ints,
floats and ``None``, which JSON and ``torch.save`` / ``torch.load(weights_only=True)``
both carry unchanged. ``Snapshot.from_state_dict()`` reads it back and checks
all of it, raising ``ValueError`` for the first part that is wrong, before
anything is restored: whatever it accepts, ``restore()`` applies in full.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import DeviceMismatchWarning
from ._generators import GeneratorSource, generator_sources
from ._scope import restore_all
from .sources import Accelerators, Source, resolve_sources

__all__ = ["FORMAT", "VERSION", "Snapshot", "capture"]

FORMAT = "seedscope.snapshot"
#: The version of the plain-data layout that ``state_dict()`` writes.
VERSION = 1

_TOP_LEVEL = ("format", "version", "sources", "generators")

# A source whose library was not imported when the snapshot was taken: it had
# no state then, so there is nothing to put back.
_Part = tuple[Source, Any]
_ABSENT: Any = object()


def dump_part(source: Source, state: Any) -> Any:
    try:
        return source.dump_state(state)
    except Exception as exc:
        raise TypeError(f"snapshot part {source.name!r}: {exc}") from exc


def load_part(source: Source, data: Any, load: Callable[[Any], Any] | None = None) -> Any:
    """Read one part's plain data into a state for ``source.restore``, checking it fully.

    ``load`` reads it instead of ``source.load_state``.
    """
    try:
        if source.module is not None and not source.available():
            importlib.import_module(source.module)  # restoring its state needs the library
        return (source.load_state if load is None else load)(data)
    except Exception as exc:
        if data is None and not isinstance(source, GeneratorSource):
            raise ValueError(
                f"snapshot part {source.name!r} is null, but source {source.name!r} needs no "
                "library, so its state is always saved (null marks a library that was not "
                f"imported): {exc}"
            ) from exc
        raise ValueError(f"snapshot part {source.name!r}: {exc}") from exc


class Snapshot:
    """The random state of every source (and of generators passed to :func:`capture`).

    Made by :func:`capture` or :meth:`from_state_dict`; it never changes, so
    one snapshot can be restored any number of times.
    """

    __slots__ = ("_generators", "_parts")

    def __init__(self, parts: list[_Part], generators: list[tuple[GeneratorSource, Any]]) -> None:
        self._parts = parts
        self._generators = generators

    @property
    def sources(self) -> tuple[str, ...]:
        """The names of the sources this snapshot holds, in capture order."""
        return tuple(source.name for source, _ in self._parts)

    @property
    def generators(self) -> tuple[Any, ...]:
        """The generator objects this snapshot restores, in order."""
        return tuple(source.generator for source, _ in self._generators)

    def restore(self) -> None:
        """Put every saved state back, in the reverse order of capture.

        A source whose library was not imported when the snapshot was taken is
        left as it is. If some sources fail to restore, the others are still
        restored and :class:`RestoreError` is raised with the failures.
        """
        restore_all([part for part in [*self._parts, *self._generators] if part[1] is not _ABSENT])

    def state_dict(self) -> dict[str, Any]:
        """This snapshot as plain data, for JSON or a ``torch.save`` checkpoint.

        ``{"format": "seedscope.snapshot", "version": 1, "sources": {name:
        state or None}, "generators": [state, ...]}``, where each state is the
        source's :meth:`~Source.dump_state` (byte strings as base64 text) and
        ``None`` marks a library that was not imported.
        """
        return {
            "format": FORMAT,
            "version": VERSION,
            "sources": {
                source.name: None if state is _ABSENT else dump_part(source, state)
                for source, state in self._parts
            },
            "generators": [dump_part(source, state) for source, state in self._generators],
        }

    @classmethod
    def from_state_dict(
        cls,
        state: Mapping[str, Any],
        *,
        sources: Iterable[str | Source] | None = None,
        generators: Iterable[Any] | None = None,
        same_devices: bool = False,
    ) -> Snapshot:
        """Read a :meth:`state_dict` back, checking all of it; change nothing.

        Without ``sources``, ``state`` must hold exactly the parts a default
        :func:`capture` would (the built-in and registered sources). With
        ``sources``, it must hold at least those, and only those are read.
        ``generators`` are the objects to restore the saved generator states
        into, as many as were captured and of the same kinds.

        A snapshot saved with other accelerator devices than this process has
        (another number of GPUs, GPUs where there are none, none where there
        are some) or without an ``"accelerators"`` part restores what both
        have: device ``i`` of each kind gets the state saved for device ``i``,
        and the rest keep theirs. Loading then emits one
        :class:`DeviceMismatchWarning` with the counts. ``same_devices=True``
        refuses such a snapshot instead.

        Any problem (another format or version, a missing or unexpected part,
        a state of the wrong shape or type, a value the library would take but
        cannot use, such as a key that draws only 0 or an environment variable
        with a NUL character) raises ``ValueError`` naming the part, and nothing
        is restored; call :meth:`restore` on the result to apply it. ``None``
        marks a library that was not imported; a source that needs none gets it
        as its state, which ``python`` and ``environ`` refuse.
        """
        if not isinstance(same_devices, bool):
            raise TypeError(f"same_devices must be True or False, not {same_devices!r}")
        if not isinstance(state, Mapping):
            raise ValueError(f"a snapshot state must be a dict, not {type(state).__name__}")
        if state.get("format") != FORMAT:
            raise ValueError(
                f"not a seedscope snapshot: 'format' is {state.get('format')!r}, not {FORMAT!r}"
            )
        version = state.get("version")
        if type(version) is not int or version != VERSION:
            raise ValueError(
                f"snapshot format version {version!r} is not supported: this seedscope reads "
                f"version {VERSION}"
                + (" (the snapshot was written by a newer seedscope)" if _newer(version) else "")
            )
        missing = [key for key in _TOP_LEVEL if key not in state]
        extra = [key for key in state if key not in _TOP_LEVEL]
        if missing or extra:
            problems = [f"missing {key!r}" for key in missing]
            problems += [f"unexpected {key!r}" for key in extra]
            raise ValueError(f"snapshot is malformed: {', '.join(problems)}")

        saved = state["sources"]
        if not isinstance(saved, Mapping):
            raise ValueError(f"snapshot part 'sources' must be a dict, not {type(saved).__name__}")
        wanted = resolve_sources(sources, strict=False, warn_only=False)
        names = [source.name for source in wanted]
        absent = [
            source.name
            for source in wanted
            if source.name not in saved and (same_devices or not isinstance(source, Accelerators))
        ]
        if absent:
            raise ValueError(
                f"snapshot part {absent[0]!r} is missing (the snapshot has "
                f"{', '.join(map(repr, saved)) or 'no parts'})"
            )
        if sources is None:
            unexpected = [name for name in saved if name not in names]
            if unexpected:
                raise ValueError(
                    f"snapshot has an unexpected part {unexpected[0]!r}: the sources here are "
                    f"{', '.join(names)} (register its source, or pass sources= to read "
                    "only some parts)"
                )
        parts: list[_Part] = []
        devices: str | None = None  # how the accelerator states differ from the devices here
        for source in wanted:
            data = saved.get(source.name, _ABSENT)
            if data is None and source.module is not None:
                parts.append((source, _ABSENT))  # its library was not imported
            elif data is _ABSENT and not source.available():
                parts.append((source, _ABSENT))  # no part, no torch here: no devices either
            elif isinstance(source, Accelerators) and not same_devices:
                # No part at all: read as states saved where there were no devices.
                no_part = data is _ABSENT
                loaded, differences = load_part(
                    source, {} if no_part else data, source.load_overlap
                )
                parts.append((source, loaded))
                if differences:
                    how = "has no accelerators part" if no_part else "was saved on other devices"
                    devices = f"the snapshot {how} ({'; '.join(differences)})"
            else:
                # A source without a library is always captured, so None is its
                # state (or a mistake its load_state refuses), never "absent".
                parts.append((source, load_part(source, data)))

        saved_generators = state["generators"]
        if not isinstance(saved_generators, list):
            raise ValueError(
                f"snapshot part 'generators' must be a list, not {type(saved_generators).__name__}"
            )
        owned = generator_sources(generators)
        if len(saved_generators) != len(owned):
            raise ValueError(
                f"snapshot part 'generators' holds {len(saved_generators)} generator state(s) "
                f"but {len(owned)} generator(s) were given: pass generators=[...] with the "
                "objects to restore them into, in the order they were captured"
            )
        loaded = [
            (source, load_part(source, data))
            for source, data in zip(owned, saved_generators, strict=True)
        ]
        if devices is not None:
            warnings.warn(
                f"{devices}: restoring it restores the devices both have, and the others keep "
                "their state (same_devices=True refuses such a snapshot)",
                DeviceMismatchWarning,
                stacklevel=2,
            )
        return cls(parts, loaded)

    def __repr__(self) -> str:
        names = ", ".join(self.sources)
        owned = f" and {len(self._generators)} generator(s)" if self._generators else ""
        return f"<Snapshot of {names or 'nothing'}{owned}>"


def _newer(version: object) -> bool:
    return type(version) is int and version > VERSION


def capture(
    *, sources: Iterable[str | Source] | None = None, generators: Iterable[Any] | None = None
) -> Snapshot:
    """Save the state of every source, and of ``generators``, into a :class:`Snapshot`.

    ``sources`` takes what :func:`deterministic` takes (by default the built-in
    and registered sources); ``generators`` lists generator objects of your own
    to include. ``snapshot.restore()`` puts it all back;
    ``snapshot.state_dict()`` turns it into plain data for a checkpoint.

    Changes nothing. A library that is not imported is left out (its state
    does not exist yet); a library that is imported but has not yet imported
    the module that holds its state (numpy 2 imports ``numpy.random`` on first
    use) gets that module imported, so that the snapshot holds the state its
    first use will draw from.

    >>> import random
    >>> snapshot = capture()
    >>> first = random.random()
    >>> snapshot.restore()
    >>> random.random() == first
    True
    """
    parts: list[_Part] = []
    for source in resolve_sources(sources, strict=False, warn_only=False):
        module = source.module
        if (
            module is not None
            and not source.available()
            and module.partition(".")[0] in sys.modules
        ):
            # The library is imported but the module with its state is not yet
            # (numpy 2 imports numpy.random on first use): import it now, so the
            # snapshot holds the state its first use will draw from.
            importlib.import_module(module)
        parts.append((source, source.capture() if source.available() else _ABSENT))
    owned = [(source, source.capture()) for source in generator_sources(generators)]
    return Snapshot(parts, owned)

"""Comparing two traces: the first op where they part, and why.

Both traces are read side by side, one record at a time, so two traces of
millions of ops are compared in constant memory. Ops agree when they have the
same name and the same output digests; the first op that does not is the
divergence. Its inputs tell why: equal inputs with different outputs make a
nondeterministic op; otherwise the first differing input says where it came
from (data made in Python or numpy, a generator in another state, arguments
computed in Python, memory never written). The states of the global generators
seen along the way tell which of them had parted by then, and since when.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ._format import (
    ARGUMENTS,
    FROM_DATA,
    GENERATORS,
    OUTSIDE,
    RANDOM,
    TRACED,
    UNWRITTEN,
    GeneratorStates,
    Op,
    TraceReader,
)

__all__ = ["Divergence", "compare_traces"]

STRICT_HINT = (
    "strict mode makes torch use deterministic algorithms, or raise where there are none: "
    "deterministic(seed, strict=True), or `seedscope run --strict` (see the strict mode "
    "page of the docs)"
)


@dataclass(frozen=True)
class Divergence:
    """Where two traced runs first part: the first op whose outputs differ.

    ``index`` counts the ops of the run from 0; ``op`` is the aten name
    (``"aten::index_add_"``) and ``phase`` is ``"forward"`` or ``"backward"``.
    ``module`` is the ``nn.Module`` that ran it, as a path from the outermost
    module being called (``"encoder.layers.3.attn"``, ``"1.jitter"``; that
    module itself by its class name), and ``location`` the user's source line
    (``"train.py:57"``); for a backward op, those of the forward op that made
    its autograd node. ``None`` where unknown.

    ``reason`` says what differs: ``"outputs differ"``, ``"operations
    differ"`` (the runs took different paths; ``first`` and ``second`` name
    each run's op) or ``"one run ended"``. ``inputs_equal`` says whether
    everything the op read was equal (its tensors, its other arguments and,
    for a random op, its generator's state): ``True`` means the op itself is
    nondeterministic. ``origin`` explains where differing inputs came from,
    or what to do about a nondeterministic op.

    ``generators`` tells, for ``"random"``, ``"numpy"`` (when imported) and
    ``"torch"``, whether that global generator's state was still equal in both
    runs just before the op; ``generator_origins`` says, for each that was
    not, where the states were first seen to differ. ``runs`` are the two
    runs compared (for ``seedscope verify``: run 1 and the first that differs).
    """

    index: int
    op: str
    phase: str
    module: str | None
    location: str | None
    reason: str
    inputs_equal: bool | None
    origin: str | None
    generators: Mapping[str, bool]
    generator_origins: Mapping[str, str] = field(default_factory=dict)
    first: str = ""
    second: str = ""
    runs: tuple[int, int] = (1, 2)

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        """The report, line by line, as ``seedscope verify --locate`` prints it."""
        first, second = self.runs
        lines = [f"op {self.index}: {self.op} ({self.phase}), {self.reason}"]
        if self.reason == "operations differ" or self.reason == "one run ended":
            lines += [f"  run {first}: {self.first}", f"  run {second}: {self.second}"]
        module = self.module if self.module is not None else "(none: outside any nn.Module)"
        lines.append(f"module: {module}")
        where = self.location or "(unknown)"
        if self.phase == "backward":
            where += " (the forward line that made this backward op)"
        lines.append(f"line: {where}")
        if self.origin is not None:
            lines.append(f"why: {self.origin}")
        lines.append(f"generators: {self._generators_text()}")
        return lines

    def _generators_text(self) -> str:
        if not self.generators:
            return "(none recorded)"
        if all(self.generators.values()):
            return "all equal (" + ", ".join(self.generators) + ")"
        # Generators that parted at the same point are named together.
        groups: dict[str, list[str]] = {}
        for name, same in self.generators.items():
            if not same:
                groups.setdefault(self.generator_origins.get(name, ""), []).append(name)
        parts = []
        for since, names in groups.items():
            which = _join(names)
            if since.startswith("from the start"):
                parts.append(
                    f"{which} differed {since}: never seeded, or seeded differently (Python, "
                    "numpy and torch seed their global generators from the OS at start-up)"
                )
            else:
                parts.append(
                    f"{which} differed {since}: something drew from "
                    f"{'it' if len(names) == 1 else 'each'} a different number of times "
                    "before, or seeded it differently"
                )
        equal = [name for name, same in self.generators.items() if same]
        if equal:
            parts.append(f"{_join(equal)} still equal")
        return "; ".join(parts)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class _Side:
    """One trace, read op by op, with the generator states seen so far."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.reader = TraceReader(path)
        self.states: dict[str, bytes] = {}
        self.changed: dict[str, tuple[int, str | None]] = {}
        self.initial: dict[str, bytes] = {}  # the states of the first record
        self.fresh = False  # generator states came since the last comparison

    def next_op(self) -> Op | None:
        for record in self.reader:
            if isinstance(record, GeneratorStates):
                if not self.initial:
                    self.initial = dict(record.states)
                for name, state in record.states.items():
                    if self.states.get(name) != state:
                        self.states[name] = state
                        self.changed[name] = (record.before, record.location)
                self.fresh = True
                continue
            return record
        return None


def _describe(op: Op | None, ended_after: int) -> str:
    if op is None:
        return f"ended after {ended_after} ops"
    where = f" at {op.location}" if op.location else ""
    return f"{op.name} ({op.phase}){where}"


def _why(a: Op, b: Op) -> tuple[bool | None, str | None]:
    """(inputs equal, origin) for an op whose outputs differ."""
    if a.flags & RANDOM and a.generator != b.generator:
        return False, (
            "it is a random op, and the generator it draws from was in another state before "
            "it: something drew from that generator a different number of times, or seeded it "
            "differently"
        )
    if len(a.inputs) != len(b.inputs):
        return False, "its inputs differ in number"
    for number, (x, y) in enumerate(zip(a.inputs, b.inputs, strict=True)):
        if x.digest == y.digest:
            continue
        which = f"input {number}"
        if x.kind == ARGUMENTS:
            return False, (
                "its arguments other than tensors differed (numbers or sizes computed in Python)"
            )
        if x.kind == OUTSIDE and a.flags & FROM_DATA:
            return False, (
                "it makes a tensor from Python or numpy data (torch.tensor, torch.from_numpy, "
                f"torch.as_tensor), at {a.location or '(unknown)'}, and that data differed"
            )
        if x.kind == OUTSIDE:
            return False, (
                f"{which} differed, a tensor made outside torch operations and first used "
                "here: from memory shared without a copy (torch.frombuffer, say), in a thread "
                "the trace does not see, or before tracing started"
            )
        if x.kind == UNWRITTEN:
            return False, (
                f"{which} differed: it holds memory that was never written (made by "
                f"torch.empty or the like at {x.producer_location or '(unknown)'})"
            )
        if x.kind == TRACED:
            return False, (
                f"{which} differed, though op {x.producer} made it equal in both runs (at "
                f"{x.producer_location or '(unknown)'}): it was changed outside torch operations "
                "since (through numpy, say, or in another thread)"
            )
        return False, f"{which} differed"
    return True, (
        "its inputs were equal in both runs and its outputs were not: the op itself is "
        f"nondeterministic; {STRICT_HINT}"
    )


def compare_traces(
    first: str | os.PathLike[str], second: str | os.PathLike[str], *, runs: tuple[int, int] = (1, 2)
) -> Divergence | None:
    """The first point where two traces part, or None when every op agrees.

    Raises ``ValueError`` naming the file for one that is not a trace, is of an
    unknown format version, or ends early (a run that was killed).

    >>> import torch, seedscope, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"run{n}.trace") for n in (1, 2)]
    >>> for path, noise in zip(paths, (0.0, 1e-3)):
    ...     with seedscope.trace(path):
    ...         x = torch.ones(3) + noise
    ...         y = (x * 2).sum()
    >>> found = seedscope.compare_traces(*paths)
    >>> found.op, found.index, found.inputs_equal
    ('aten::add', 1, False)
    """
    sides = _Side(first), _Side(second)
    try:
        return _walk(*sides, runs)
    finally:
        for side in sides:
            side.reader.close()


def _walk(a: _Side, b: _Side, runs: tuple[int, int]) -> Divergence | None:
    parted: dict[str, str] = {}  # generator -> where its states were first seen to differ
    index = 0
    while True:
        x, y = a.next_op(), b.next_op()
        if a.fresh or b.fresh:
            a.fresh = b.fresh = False
            for name in GENERATORS:
                if name in parted or name not in a.states or name not in b.states:
                    continue
                if a.states[name] != b.states[name]:
                    (at_a, where_a), (at_b, where_b) = a.changed[name], b.changed[name]
                    before, where = (at_a, where_a) if at_a >= at_b else (at_b, where_b)
                    at = f" at {where}" if where else ""
                    parted[name] = (
                        f"from the start (first seen{at})"
                        if a.initial.get(name, b"") != b.initial.get(name, b"")
                        else f"from before op {before} on (first seen{at})"
                    )
        # The first op where the runs part: one ended, they took other paths, or the
        # outputs differ.
        if (
            x is None
            or y is None
            or x.name != y.name
            or x.backward != y.backward
            or x.outputs != y.outputs
        ):
            break
        index += 1
    if x is None and y is None:
        return None
    equal: bool | None = None
    origin: str | None
    if x is None or y is None:
        reason = "one run ended"
        origin = (
            f"run {runs[0] if x is None else runs[1]} ended after {index} ops, the other went on"
        )
    elif x.name != y.name or x.backward != y.backward:
        reason = "operations differ"
        origin = (
            "the runs took different paths through the program here (a branch or loop "
            "that depends on a value that differed, outside torch operations)"
        )
    else:
        reason = "outputs differ"
        equal, origin = _why(x, y)
    op = x or y
    assert op is not None
    generators = {
        name: a.states[name] == b.states[name]
        for name in GENERATORS
        if name in a.states and name in b.states
    }
    origins = {name: parted[name] for name, same in generators.items() if not same}
    return Divergence(
        index,
        op.name,
        op.phase,
        op.module,
        op.location,
        reason,
        equal,
        origin,
        generators,
        origins,
        _describe(x, index),
        _describe(y, index),
        runs,
    )

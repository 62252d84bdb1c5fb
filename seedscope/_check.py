"""``check_reproducible``: call a function several times, each in a fresh scope, and compare."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._compare import Mismatch, find_mismatch
from ._scope import deterministic
from ._seed import validate_seed

__all__ = ["ReproducibilityResult", "check_reproducible"]


class ReproducibilityResult:
    """What :func:`check_reproducible` found: truthy when every run agreed.

    ``runs`` is how many runs were made (fewer than asked when one differed:
    the check stops at the first run that differs from run 1), ``seed`` the
    seed every run used, and ``mismatch`` the first difference, or ``None``.
    """

    __slots__ = ("mismatch", "reproducible", "runs", "seed")

    def __init__(
        self, reproducible: bool, runs: int, seed: int, mismatch: Mismatch | None = None
    ) -> None:
        self.reproducible = reproducible
        self.runs = runs
        self.seed = seed
        self.mismatch = mismatch

    def __bool__(self) -> bool:
        return self.reproducible

    def __str__(self) -> str:
        if self.mismatch is None:
            return f"reproducible: {self.runs} runs with seed {self.seed} agree"
        return f"not reproducible with seed {self.seed}: {self.mismatch}"

    def __repr__(self) -> str:
        return (
            f"ReproducibilityResult(reproducible={self.reproducible}, runs={self.runs}, "
            f"seed={self.seed}, mismatch={self.mismatch!r})"
        )


def _snapshot(value: Any) -> Any:
    """A copy that later runs cannot change (a function may return the same object twice)."""
    import copy

    try:
        return copy.deepcopy(value)
    except Exception:  # tensors in an autograd graph refuse deepcopy, and so may others
        return _copy_tree(value)


def _copy_tree(value: Any) -> Any:
    import copy

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().clone()
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return value.copy()
    if isinstance(value, dict):
        copied = copy.copy(value)
        for key, item in value.items():
            copied[key] = _copy_tree(item)
        return copied
    if isinstance(value, list):
        return [_copy_tree(item) for item in value]
    if isinstance(value, tuple):
        items = [_copy_tree(item) for item in value]
        return type(value)(*items) if hasattr(type(value), "_fields") else type(value)(items)
    dataclasses = sys.modules.get("dataclasses")
    if dataclasses is not None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _copy_tree(getattr(value, f.name)) for f in dataclasses.fields(value)}
        try:
            return dataclasses.replace(value, **changes)
        except Exception:
            return value
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


def check_reproducible(
    fn: Callable[..., Any],
    /,
    *args: Any,
    runs: int = 2,
    seed: int | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    **kwargs: Any,
) -> ReproducibilityResult:
    """Call ``fn(*args, **kwargs)`` ``runs`` times, each in a fresh ``deterministic(seed)``,
    and compare the results.

    Results are compared through dicts, lists, tuples (named tuples by field),
    dataclasses, sets, torch tensors and modules (by ``state_dict()``), numpy
    arrays and scalars, numbers, strings and bytes, and by attribute for plain
    objects; anything else with ``==``. Types, dtypes, shapes and devices must
    match. By default values must be equal bit for bit (so ``-0.0`` differs
    from ``0.0``); with ``rtol`` or ``atol``, floats may differ by up to
    ``atol + rtol * |second|``.

    The result is truthy when every run agreed. Otherwise its ``mismatch``
    names the first difference by its path in the result, with both values.
    Each result is copied as soon as its run ends, so a function that returns
    the same object every time cannot agree with itself by accident.

    ``seed=None`` reads ``SEEDSCOPE_SEED`` (0 when unset), as ``deterministic``
    does. All runs share this interpreter's hash seed, so a result that depends
    on the order of a set of strings agrees with itself here; ``seedscope
    verify`` starts a fresh interpreter per run and catches that.

    To pass ``fn`` an argument named ``runs``, ``seed``, ``rtol`` or ``atol``,
    wrap it in ``functools.partial``.

    >>> import random
    >>> def sample(n):
    ...     return {"draws": [random.random() for _ in range(n)]}
    >>> bool(check_reproducible(sample, 3))
    True
    >>> counter = iter(range(100))
    >>> result = check_reproducible(lambda: {"step": [0, next(counter)]})
    >>> print(result.mismatch)
    out["step"][1]: values differ: 0 in run 1, 1 in run 2
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__} {fn!r}")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 2:
        raise ValueError(f"runs must be an int of at least 2, got {runs!r}")
    for name, tolerance in (("rtol", rtol), ("atol", atol)):
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
            raise TypeError(f"{name} must be a number, not {type(tolerance).__name__}")
        if not tolerance >= 0:
            raise ValueError(f"{name} must be at least 0, got {tolerance!r}")
    scope = deterministic(None if seed is None else validate_seed(seed))
    with scope as active:
        first = _snapshot(fn(*args, **kwargs))
    used_seed = active.seed
    assert used_seed is not None
    for run in range(2, runs + 1):
        with scope:
            result = _snapshot(fn(*args, **kwargs))
        mismatch = find_mismatch(first, result, rtol=float(rtol), atol=float(atol))
        if mismatch is not None:
            mismatch.runs = (1, run)
            return ReproducibilityResult(False, run, used_seed, mismatch)
    return ReproducibilityResult(True, runs, used_seed)

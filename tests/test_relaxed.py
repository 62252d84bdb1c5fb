"""``relaxed()``: deterministic algorithms off, or warn-only, for a region of a strict scope.

The operation used throughout is ``Tensor.put`` (``put_`` with
``accumulate=False``), which torch reports as nondeterministic on CPU too,
in the forward pass and in the backward pass of its input.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import warnings
from collections.abc import Generator, Iterator

import numpy as np
import pytest
import torch
from _subprocess import in_child, run_json

import seedscope
from seedscope import (
    ActiveRelaxedScope,
    NondeterministicOp,
    current_scope,
    derive_seed,
    deterministic,
    isolated,
    relaxed,
)

INDEX = torch.tensor([0, 0])
SOURCE = torch.ones(2)
NONDETERMINISTIC = "put_ does not have a deterministic implementation"


def put() -> torch.Tensor:
    """The operation, forward only: a tensor that needs no gradient."""
    return torch.zeros(3).put(INDEX, SOURCE)


# The line in put() that calls the operation: the first line outside torch.
PUT_LINE = inspect.getsourcelines(put)[1] + 2


def put_forward() -> torch.Tensor:
    """The operation on a tensor that needs a gradient: its backward pass uses it too."""
    return torch.zeros(3, requires_grad=True).put(INDEX, SOURCE)


def modes() -> tuple[bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )


def here() -> int:
    """The line this is called from."""
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    assert caller is not None
    return caller.f_lineno


@pytest.fixture(autouse=True)
def _warnings_hook_removed() -> Iterator[None]:
    """Every test leaves the warning filters and ``showwarning`` as it found them."""
    filters, show = list(warnings.filters), warnings.showwarning
    yield
    assert (list(warnings.filters), warnings.showwarning) == (filters, show)


# -- the setting ------------------------------------------------------------------------


@pytest.mark.parametrize("outer_warn_only", [False, True])
def test_relaxed_turns_deterministic_algorithms_off_and_restores_them(
    outer_warn_only: bool,
) -> None:
    with deterministic(0, strict=True, warn_only=outer_warn_only):
        with relaxed():
            assert modes() == (False, False)
            put()  # strict mode would refuse it
        assert modes() == (True, outer_warn_only)


def test_relaxed_warn_only_turns_deterministic_algorithms_to_warn_only() -> None:
    with deterministic(0, strict=True):
        with pytest.raises(RuntimeError, match=NONDETERMINISTIC):
            put()
        with relaxed(warn_only=True), warnings.catch_warnings(record=True):
            assert modes() == (True, True)
            put()
        assert modes() == (True, False)


@pytest.mark.parametrize("warn_only", [False, True])
def test_relaxed_restores_the_setting_when_the_block_raises(warn_only: bool) -> None:
    with deterministic(0, strict=True):
        with pytest.raises(KeyError), relaxed(warn_only=warn_only):
            raise KeyError("inside")
        assert modes() == (True, False)
        with pytest.raises(RuntimeError, match=NONDETERMINISTIC):
            put()


def test_relaxed_changes_only_deterministic_algorithms() -> None:
    with deterministic(0, strict=True):
        before = seedscope.capture().state_dict()
        first = torch.rand(3)
    with deterministic(0, strict=True), relaxed():
        inside = seedscope.capture().state_dict()
        assert torch.equal(torch.rand(3), first)  # the scope's stream goes on inside
    flags, flags_inside = before["sources"].pop("flags"), inside["sources"].pop("flags")
    assert inside == before
    changed = {name for name in flags if flags[name] != flags_inside[name]}
    assert changed == {"deterministic_algorithms"}


@pytest.mark.parametrize("warn_only", [False, True])
def test_relaxed_outside_strict_mode_changes_nothing(warn_only: bool) -> None:
    with deterministic(0):
        with relaxed(warn_only=warn_only) as entry:
            assert modes() == (False, False)  # never stricter than around it
            put()
        assert entry.nondeterministic_ops == ()
    with relaxed(warn_only=warn_only):
        assert modes() == (False, False)


def test_strict_scope_inside_relaxed_is_strict_again() -> None:
    with deterministic(0, strict=True), relaxed():
        with deterministic(1, strict=True), pytest.raises(RuntimeError, match=NONDETERMINISTIC):
            put()
        assert modes() == (False, False)


def test_relaxed_is_transparent_to_current_scope_and_binds_its_own_entry() -> None:
    with deterministic(3, strict=True) as outer, relaxed(warn_only=True) as entry:
        assert current_scope() is outer
        assert isinstance(entry, ActiveRelaxedScope)
        assert entry.seed is None
        with isolated() as inner:
            assert current_scope() is inner


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_inside_relaxed_is_reseeded_by_the_scope_around_it() -> None:
    with deterministic(5, strict=True), relaxed():
        child = in_child(lambda: (random.random(), float(np.random.rand())))
    seed = derive_seed(5, "fork", 1)
    assert child == (random.Random(seed).random(), float(np.random.RandomState(seed).rand()))


def test_repr_and_options() -> None:
    assert repr(relaxed()) == "relaxed()"
    assert repr(relaxed(warn_only=True)) == "relaxed(warn_only=True)"
    assert relaxed(warn_only=True).warn_only is True
    with pytest.raises(TypeError, match=r"warn_only must be True or False, not 1"):
        relaxed(warn_only=1)  # type: ignore[arg-type]


def test_torch_first_imported_inside_relaxed_is_relaxed() -> None:
    out = run_json(
        """
        import json
        from seedscope import deterministic, relaxed
        with deterministic(0, strict=True):
            with relaxed():
                import torch
                inside = torch.are_deterministic_algorithms_enabled()
            after = torch.are_deterministic_algorithms_enabled()
        print(json.dumps([inside, after, torch.are_deterministic_algorithms_enabled()]))
        """
    )
    assert out == [False, True, False]


# -- the backward pass --------------------------------------------------------------------


def test_the_backward_pass_outside_the_region_is_strict_again() -> None:
    with deterministic(0, strict=True):
        with relaxed():
            loss = put_forward().sum()  # the forward pass passes...
        with pytest.raises(RuntimeError, match=NONDETERMINISTIC):
            loss.backward()  # ...and its backward pass runs strict


def test_a_decorated_training_step_relaxes_forward_and_backward() -> None:
    weight = torch.zeros(3, requires_grad=True)

    @relaxed
    def step() -> None:
        weight.put(INDEX, SOURCE).sum().backward()

    with deterministic(0, strict=True):
        step()
        assert modes() == (True, False)
    assert weight.grad is not None


# -- warn-only: the operations torch warned about ---------------------------------------------


def test_warn_only_records_each_operation_once_with_the_line_that_first_hit_it() -> None:
    with deterministic(0, strict=True), warnings.catch_warnings(record=True):
        with relaxed(warn_only=True) as entry:
            first = here() + 1
            torch.zeros(3).put(INDEX, SOURCE)
            put()
        with relaxed(warn_only=True) as again:  # a new entry hears of it again
            put()
            torch.zeros(3).put(INDEX, SOURCE)
    assert entry.nondeterministic_ops == (NondeterministicOp("put_", __file__, first),)
    assert again.nondeterministic_ops == (NondeterministicOp("put_", __file__, PUT_LINE),)


def test_an_operation_of_the_backward_pass_is_recorded_at_the_backward_call() -> None:
    # torch warns from its autograd engine: its Python frames are passed over.
    with deterministic(0, strict=True), warnings.catch_warnings(record=True):
        with relaxed():
            loss = put_forward().sum()
        with relaxed(warn_only=True) as entry:
            line = here() + 1
            loss.backward()
    assert entry.nondeterministic_ops == (NondeterministicOp("put_", __file__, line),)


def test_warnings_are_shown_as_the_filters_in_place_decide() -> None:
    with deterministic(0, strict=True):
        with warnings.catch_warnings(record=True) as shown, relaxed(warn_only=True) as entry:
            warnings.simplefilter("default")
            for _ in range(3):
                put()  # once per line
        assert [str(w.message)[: len(NONDETERMINISTIC)] for w in shown] == [NONDETERMINISTIC]
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("ignore")
            with relaxed(warn_only=True) as hidden:
                put()
        assert shown == []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with relaxed(warn_only=True) as raised, pytest.raises(UserWarning):
                put()
    for record in (entry, hidden, raised):
        assert [op.name for op in record.nondeterministic_ops] == ["put_"]


def test_other_warnings_pass_through_unchanged() -> None:
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with deterministic(0, strict=True), relaxed(warn_only=True) as entry:
            warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["something else"]
    assert entry.nondeterministic_ops == ()


def test_nested_entries_each_collect_their_own_operations() -> None:
    with (
        deterministic(0, strict=True),
        warnings.catch_warnings(record=True),
        relaxed(warn_only=True) as outer,
    ):
        with relaxed(warn_only=True) as inner:
            put()
        with relaxed():
            put()  # off: nothing to warn about
        line = here() + 1
        torch.zeros(3).put(INDEX, SOURCE)
    assert [op.lineno for op in inner.nondeterministic_ops] == [PUT_LINE]
    assert [op.lineno for op in outer.nondeterministic_ops] == [line]


def test_nothing_is_collected_after_exit() -> None:
    with deterministic(0, strict=True, warn_only=True), warnings.catch_warnings(record=True):
        with relaxed(warn_only=True) as entry:
            pass
        put()
    assert entry.nondeterministic_ops == ()


# -- decorators, generators, coroutines -------------------------------------------------------


def test_bare_and_called_decorators() -> None:
    @relaxed
    def off() -> tuple[bool, bool]:
        return modes()

    @relaxed(warn_only=True)
    def warn_only() -> tuple[bool, bool]:
        return modes()

    with deterministic(0, strict=True):
        assert (off(), warn_only(), modes()) == ((False, False), (True, True), (True, False))


def test_a_decorated_generator_is_relaxed_during_its_own_steps_only() -> None:
    @relaxed
    def steps() -> Generator[tuple[bool, bool], None, None]:
        for _ in range(2):
            yield modes()

    with deterministic(0, strict=True):
        seen = []
        for inside in steps():
            seen.append((inside, modes()))
    assert seen == [((False, False), (True, False))] * 2


def test_a_decorated_coroutine_is_relaxed_across_its_awaits_only() -> None:
    @relaxed
    async def work() -> list[tuple[bool, bool]]:
        seen = [modes()]
        await asyncio.sleep(0)
        seen.append(modes())
        return seen

    async def main() -> tuple[list[tuple[bool, bool]], tuple[bool, bool]]:
        task = asyncio.ensure_future(work())
        await asyncio.sleep(0)
        between = modes()  # the coroutine is suspended at its await
        return await task, between

    with deterministic(0, strict=True):
        inside, between = asyncio.run(main())
    assert inside == [(False, False), (False, False)]
    assert between == (True, False)

"""Decorated functions pickle as functions do, so process pools can run them.

A module-level function pickles by reference (module and qualified name) and a
method as the attribute lookup that returned it; the process that loads one
imports it, decorator included, and runs it in its scope. What is shipped to
other processes lives in ``_pickled_work``, which spawned children can import.
Only ``random`` is used: these tests run without numpy and torch too.
"""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import random
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.pool import Pool
from typing import Any

import _pickled_work as work
import pytest
from _pickled_work import SEED, Sampler

from seedscope import deterministic, isolated, private_stream

EXPECTED = work.expected()  # one draw in deterministic(SEED)
PROTOCOLS = range(2, pickle.HIGHEST_PROTOCOL + 1)

FUNCTIONS: list[Any] = [
    pytest.param(work.draw, id="function"),
    pytest.param(work.draw_nested, id="two decorators"),
    pytest.param(work.draw_from_stream, id="private stream"),
    pytest.param(Sampler.draw_static_inside, id="staticmethod over the decorator"),
]
# Each way to look up a decorated method, the arguments it takes and what it returns.
METHODS: list[Any] = [
    pytest.param(lambda: Sampler.draw, (Sampler(2.0),), 2.0 + EXPECTED, id="method on the class"),
    pytest.param(lambda: Sampler(1.0).draw, (), 1.0 + EXPECTED, id="method on an instance"),
    pytest.param(lambda: Sampler.draw_from_class, (), EXPECTED, id="classmethod"),
    pytest.param(lambda: Sampler().draw_from_class, (), EXPECTED, id="classmethod on an instance"),
    pytest.param(lambda: Sampler.draw_from_class_inside, (), EXPECTED, id="classmethod over it"),
    pytest.param(lambda: Sampler.draw_static, (), EXPECTED, id="staticmethod"),
    pytest.param(lambda: Sampler().draw_static, (), EXPECTED, id="staticmethod on an instance"),
]


def round_trip(value: Any, protocol: int = pickle.DEFAULT_PROTOCOL) -> Any:
    return pickle.loads(pickle.dumps(value, protocol))


def unseeded(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` with ``random`` seeded otherwise: the result is the scope's doing."""
    with isolated():
        random.seed(SEED + 1)
        return function(*args)


# -- in this process ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_decorated_function_pickles_as_a_reference_to_itself(
    function: Callable[[], float], protocol: int
) -> None:
    assert round_trip(function, protocol) is function


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_decorated_generator_and_coroutine_functions_pickle_as_references(protocol: int) -> None:
    assert round_trip(work.batches, protocol) is work.batches
    assert round_trip(work.draw_later, protocol) is work.draw_later


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("lookup", "args", "result"), METHODS)
def test_a_decorated_method_pickles_as_the_lookup_that_returned_it(
    lookup: Callable[[], Callable[..., float]], args: tuple[Any, ...], result: float, protocol: int
) -> None:
    method = lookup()
    loaded = round_trip(method, protocol)
    owner = getattr(method, "__self__", None)
    if isinstance(owner, Sampler):  # bound to a copy of the instance, as bound methods are
        assert type(loaded.__self__) is Sampler
        assert loaded.__self__.offset == owner.offset
    else:
        assert loaded == method
    assert unseeded(loaded, *args) == result


def test_a_function_decorated_where_it_is_used_pickles_with_its_scope() -> None:
    in_scope = deterministic(SEED, strict=True)(work.scope_in_use)
    loaded = round_trip(in_scope)
    assert loaded.__wrapped__ is work.scope_in_use
    assert loaded() == f"deterministic({SEED}, strict=True)"
    assert unseeded(round_trip(deterministic(SEED)(work.undecorated))) == EXPECTED
    assert unseeded(round_trip(deterministic(SEED)(Sampler(1.0).draw))) == 1.0 + EXPECTED


def _local(decorated: bool) -> Callable[[], float]:
    def draw() -> float:
        return random.random()

    return deterministic(SEED)(draw) if decorated else draw


def _lambda(decorated: bool) -> Callable[[], float]:
    function = lambda: random.random()  # noqa: E731  (a lambda, as such)
    return deterministic(SEED)(function) if decorated else function


def _pickling_error(function: Callable[[], float]) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as raised:  # noqa: PT011  (whatever pickle raises)
        pickle.dumps(function)
    return type(raised.value), re.sub(r" at 0x[0-9a-fA-F]+", "", str(raised.value))


@pytest.mark.parametrize("make", [_local, _lambda], ids=["local function", "lambda"])
def test_a_decorated_local_function_fails_to_pickle_as_it_does_undecorated(
    make: Callable[[bool], Callable[[], float]],
) -> None:
    kind, message = _pickling_error(make(True))
    assert (kind, message) == _pickling_error(make(False))
    assert issubclass(kind, (pickle.PicklingError, AttributeError))


def test_copies_of_a_decorated_function_are_the_function_itself() -> None:
    local = _local(True)
    for function in (work.draw, work.batches, Sampler.draw_static_inside, local):
        assert copy.copy(function) is function
        assert copy.deepcopy(function) is function
    assert copy.deepcopy({"draw": work.draw})["draw"] is work.draw


def test_copies_of_a_decorated_bound_method_copy_as_bound_methods_do() -> None:
    sampler = Sampler(1.0)
    assert copy.copy(sampler.draw) == sampler.draw
    assert copy.copy(Sampler.draw_from_class) == Sampler.draw_from_class
    deep: Any = copy.deepcopy(sampler.draw)  # the instance is copied, the method is not
    assert deep.__self__ is not sampler
    assert unseeded(deep) == 1.0 + EXPECTED
    assert copy.deepcopy(Sampler.draw_from_class) == Sampler.draw_from_class


# -- scopes and streams ----------------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        deterministic(SEED),
        deterministic(SEED, strict=True, warn_only=True),
        deterministic(None),
        isolated(),
        deterministic(SEED, per_rank=True),
        deterministic(SEED, generators=[random.Random(1)]),
    ],
    ids=repr,
)
def test_scopes_pickle_with_their_options_alone_and_with_what_they_decorate(scope: Any) -> None:
    # Scopes pickled before decorated functions did; here one goes with a function it decorates.
    loaded, in_scope = round_trip((scope, scope(work.scope_in_use)))
    assert repr(loaded) == repr(scope)
    assert (loaded.seed, loaded.strict, loaded.warn_only, loaded.per_rank) == (
        scope.seed,
        scope.strict,
        scope.warn_only,
        scope.per_rank,
    )
    assert in_scope() == repr(scope)
    assert in_scope.__wrapped__ is work.scope_in_use


def _next(stream: Any) -> float:
    with stream:
        return random.random()


@pytest.mark.parametrize(
    "duplicate", [round_trip, copy.copy, copy.deepcopy], ids=["pickle", "copy", "deepcopy"]
)
def test_a_private_stream_pickles_its_state_and_continues_on_its_own(
    duplicate: Callable[[Any], Any],
) -> None:
    stream = private_stream(SEED)
    _next(stream)
    twin = duplicate(stream)
    with deterministic(SEED):
        block = [random.random() for _ in range(3)]
    # Had they one state between them, the twin would go on from the stream's last draw.
    assert [_next(stream), _next(stream)] == [_next(twin), _next(twin)] == block[1:]


def test_an_active_private_stream_refuses_to_be_pickled_or_copied() -> None:
    stream = private_stream(SEED)
    with stream:
        for duplicate in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(RuntimeError, match=r"cannot copy or pickle .* while it is active"):
                duplicate(stream)


# -- in other processes -------------------------------------------------------------


@pytest.fixture(scope="module")
def spawn_pool() -> Iterator[Pool]:
    # One pool for the spawn tests below: starting spawned children is slow.
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        yield pool
        pool.close()
        pool.join()


def test_a_spawn_pool_runs_decorated_functions_in_their_scope(spawn_pool: Pool) -> None:
    assert spawn_pool.map(work.draw, range(4), chunksize=1) == [EXPECTED] * 4
    assert spawn_pool.map(work.draw_nested, range(2), chunksize=1) == [EXPECTED] * 2
    decorated_here = deterministic(SEED)(work.undecorated)
    assert spawn_pool.map(decorated_here, range(2), chunksize=1) == [EXPECTED] * 2
    # The child imports the function, and with it a private stream of its own.
    assert spawn_pool.apply(work.draw_from_stream) == EXPECTED


def test_a_spawn_pool_runs_decorated_methods_in_their_scope(spawn_pool: Pool) -> None:
    sampler = Sampler(1.0)
    assert spawn_pool.map(sampler.draw, range(2), chunksize=1) == [1.0 + EXPECTED] * 2
    for method in (
        Sampler.draw_from_class,
        sampler.draw_from_class,
        Sampler.draw_from_class_inside,
        Sampler.draw_static,
        Sampler.draw_static_inside,
    ):
        assert spawn_pool.apply(method) == EXPECTED
    assert spawn_pool.apply(Sampler.draw, (Sampler(2.0),)) == 2.0 + EXPECTED


def test_a_spawn_process_pool_executor_runs_a_decorated_function_in_its_scope() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        assert list(executor.map(work.draw, range(4))) == [EXPECTED] * 4
        assert executor.submit(Sampler(1.0).draw).result() == 1.0 + EXPECTED


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="no forkserver here"
)
def test_a_forkserver_pool_runs_a_decorated_function_in_its_scope() -> None:
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        assert pool.map(work.draw, range(4), chunksize=1) == [EXPECTED] * 4
        pool.close()
        pool.join()


@pytest.mark.filterwarnings("ignore::seedscope.ConcurrentScopesWarning")
def test_a_pickled_scopes_generator_is_not_taken_for_the_original_when_scopes_overlap() -> None:
    original = random.Random(1)
    scope = deterministic(5, generators=[original])
    copied = pickle.loads(pickle.dumps(scope))
    own = copied.generators[0]
    own.random()  # the copy's generator now differs from the original's
    expected = (original.getstate(), own.getstate())
    entered, leave = threading.Event(), threading.Event()

    def hold_the_copy() -> None:
        with copied:
            entered.set()
            leave.wait(timeout=10)

    thread = threading.Thread(target=hold_the_copy)
    scope.__enter__()
    thread.start()
    assert entered.wait(timeout=10)
    scope.__exit__(None, None, None)  # first in, first out, while the copy is active
    leave.set()
    thread.join(timeout=10)
    assert (original.getstate(), own.getstate()) == expected

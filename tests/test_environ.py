"""``PYTHONHASHSEED`` and ``SEEDSCOPE_SEED``: what child processes see, and the memory it takes.

A seeding scope sets both to its seed, in ``os.environ`` and in the C
environment, which children started without ``env=`` inherit; on glibc it does
so without ``setenv``, which keeps every distinct value it was given for ever.
A child that enters ``deterministic()`` without a seed reads ``SEEDSCOPE_SEED``,
so it gets its parent's seed.

This module needs neither numpy nor torch (the one test that imports them
skips without them), so it runs in both environments; it puts the variable
back itself through ``monkeypatch``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import random
import subprocess
import sys

import pytest
from _subprocess import in_child, run_json

from seedscope import derive_seed, deterministic, isolated
from seedscope.sources.environ import _RING as RING

HASH_SEED = "PYTHONHASHSEED"
SEED = "SEEDSCOPE_SEED"

needs_libc = pytest.mark.skipif(os.name != "posix", reason="reads the C environment with getenv")


def is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


needs_glibc = pytest.mark.skipif(
    not is_glibc(), reason="other C libraries may free a value that setenv replaced"
)
needs_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the resident set size from /proc"
)
needs_numpy_and_torch = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("numpy", "torch")),
    reason="needs numpy and torch",
)


@pytest.fixture(params=[HASH_SEED, SEED])
def variable(request: pytest.FixtureRequest) -> str:
    """Each of the two variables a scope sets to its seed."""
    name: str = request.param
    return name


@pytest.fixture(params=[None, "0", "random"], ids=["unset", "0", "random"])
def outer(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, variable: str
) -> str | None:
    """``variable`` outside the scope: unset, a seed, or ``random`` (not a seed)."""
    value: str | None = request.param
    if value is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, value)
    return value


def child_sees(name: str) -> str | None:
    """``name`` as a child started with ``subprocess.run`` and no ``env=`` sees it."""
    code = f"import json, os; print(json.dumps(os.environ.get({name!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    value: str | None = json.loads(done.stdout)
    return value


def c_getenv(name: str) -> str | None:
    """``getenv(name)`` from the C library, not from ``os.environ``."""
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    raw: bytes | None = getenv(name.encode())
    return None if raw is None else os.fsdecode(raw)


# -- what child processes see ------------------------------------------------------


def test_a_child_process_sees_the_seed_inside_a_scope_and_the_old_value_after(
    variable: str, outer: str | None
) -> None:
    with deterministic(1234):
        inside = child_sees(variable)
        with deterministic(99):
            nested = child_sees(variable)
        back_outside_nested = child_sees(variable)
    assert (inside, nested, back_outside_nested) == ("1234", "99", "1234")
    assert child_sees(variable) == outer
    assert os.environ.get(variable) == outer


def test_a_child_entering_a_scope_without_a_seed_gets_its_parents_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SEED, raising=False)
    code = """
        import json, random
        from seedscope import deterministic

        with deterministic() as scope:
            print(json.dumps([scope.seed, random.random()]))
        """
    with deterministic(123):
        inside = run_json(code)
    assert inside == [123, random.Random(123).random()]
    assert run_json(code)[0] == 0  # outside any scope: $SEEDSCOPE_SEED unset, so 0
    assert SEED not in os.environ


def test_a_scope_without_a_seed_inside_another_takes_the_enclosing_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SEED, "3")
    with deterministic(123), deterministic() as inner:
        assert inner.seed == 123
    with deterministic() as alone:
        assert alone.seed == 3


def test_isolated_sets_nothing_and_keeps_what_the_scope_around_it_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SEED, raising=False)
    with isolated():
        assert child_sees(SEED) is None
        os.environ[SEED] = "8"  # changed inside: put back on exit
    assert SEED not in os.environ
    with deterministic(5), isolated():
        assert child_sees(SEED) == "5"
    assert SEED not in os.environ


def test_a_per_rank_scope_passes_on_its_own_ranks_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SEED, raising=False)
    monkeypatch.setenv("RANK", "3")
    with deterministic(5, per_rank=True) as scope:
        assert scope.seed == derive_seed(5, "rank", 3)
        assert child_sees(SEED) == child_sees(HASH_SEED) == str(scope.seed)
    assert SEED not in os.environ


def test_a_scope_without_a_seed_passes_on_the_seed_it_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SEED, "0042")
    with deterministic() as scope:
        assert scope.seed == 42
        assert child_sees(SEED) == "42"
    assert os.environ[SEED] == "0042"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_inside_a_scope_passes_on_its_own_seed() -> None:
    # The fork handler reseeds the child with a seed of its own: its children get that.
    with deterministic(7):
        child = in_child(lambda: os.environ[SEED])
        parent = os.environ[SEED]
    assert (parent, child) == ("7", str(derive_seed(7, "fork", 1)))


def test_a_spawned_multiprocessing_child_sees_the_seed_inside_a_scope_and_nothing_after() -> None:
    # spawn starts the child with the C environment, not with os.environ.
    result = run_json(
        """
        import json, multiprocessing, os
        from seedscope import deterministic

        os.environ.pop("PYTHONHASHSEED", None)
        os.environ.pop("SEEDSCOPE_SEED", None)
        names = ("PYTHONHASHSEED", "SEEDSCOPE_SEED")
        spawn = multiprocessing.get_context("spawn")
        with deterministic(4321):
            with spawn.Pool(1) as pool:
                inside = [pool.apply(os.getenv, (name,)) for name in names]
        with spawn.Pool(1) as pool:
            after = [pool.apply(os.getenv, (name,)) for name in names]
        print(json.dumps([inside, after]))
        """,
        timeout=120,
    )
    assert result == [["4321", "4321"], [None, None]]


@needs_libc
def test_the_c_environment_follows_os_environ_through_many_distinct_seeds(
    variable: str, outer: str | None
) -> None:
    # More seeds than the ring has buffers, so every buffer is written again.
    for seed in range(3 * RING + 7):
        with deterministic(seed):
            assert (os.environ[variable], c_getenv(variable)) == (str(seed), str(seed))
        assert (os.environ.get(variable), c_getenv(variable)) == (outer, outer)


@needs_libc
def test_a_value_set_inside_a_scope_is_replaced_in_the_c_environment_too(
    variable: str, outer: str | None
) -> None:
    with deterministic(5):
        os.environ[variable] = "77"
        assert c_getenv(variable) == "77"
        with deterministic(6):
            assert c_getenv(variable) == "6"
        assert (os.environ[variable], c_getenv(variable)) == ("77", "77")
        del os.environ[variable]
        with deterministic(8):
            assert c_getenv(variable) == "8"
        assert c_getenv(variable) is None
    assert (os.environ.get(variable), c_getenv(variable)) == (outer, outer)


@needs_libc
def test_a_value_too_long_for_a_buffer_is_put_back_all_the_same(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = "9" * 100
    monkeypatch.setenv(variable, long)
    with deterministic(3):
        assert c_getenv(variable) == "3"
    assert (os.environ[variable], c_getenv(variable)) == (long, long)


@needs_libc
def test_without_the_buffers_os_environ_sets_the_c_environment() -> None:
    # What other C libraries than glibc get: os.environ, and so setenv.
    result = run_json(
        """
        import ctypes, json, os
        from seedscope import deterministic
        from seedscope.sources import environ

        environ._is_glibc = lambda: False
        getenv = ctypes.CDLL(None).getenv
        getenv.restype = ctypes.c_char_p
        os.environ["PYTHONHASHSEED"] = "0"
        os.environ.pop("SEEDSCOPE_SEED", None)
        with deterministic(12):
            inside = [
                os.environ["PYTHONHASHSEED"],
                getenv(b"PYTHONHASHSEED").decode(),
                getenv(b"SEEDSCOPE_SEED").decode(),
            ]
        after = [os.environ["PYTHONHASHSEED"], getenv(b"PYTHONHASHSEED").decode()]
        print(json.dumps([inside, after, getenv(b"SEEDSCOPE_SEED"), environ._rings is None]))
        """
    )
    assert result == [["12", "12", "12"], ["0", "0"], None, True]


@needs_glibc
def test_a_pointer_getenv_returned_keeps_its_value_through_later_scopes(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(variable, raising=False)
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_void_p
    with deterministic(31337):
        pointer = getenv(variable.encode())
    for seed in range(RING - 1):
        with deterministic(seed):
            pass
    assert ctypes.string_at(pointer) == b"31337"


# -- memory ----------------------------------------------------------------------

# Warm up (imports, caches, the first buffers), then read VmRSS around the loop.
MEMORY_CODE = """
import json
{imports}
from seedscope import deterministic

def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

for seed in range(1000):
    with deterministic(seed{sources}):
        pass
before = rss()
for seed in range(1000, 1000 + {count}):
    with deterministic(seed{sources}):
        pass
print(json.dumps(rss() - before))
"""
MiB = 1 << 20


@needs_proc
@needs_numpy_and_torch
def test_100000_distinct_seeds_grow_the_process_by_less_than_16_mib() -> None:
    # glibc's setenv kept every "PYTHONHASHSEED=<seed>" (64 bytes), and among
    # torch's freed per-entry buffers that grew the heap by about 240 MiB.
    code = MEMORY_CODE.format(imports="import numpy, torch", sources="", count=100_000)
    growth = run_json(code, timeout=240)
    assert growth < 16 * MiB, f"{growth / MiB:.1f} MiB for 100,000 distinct seeds"


@needs_proc
def test_100000_distinct_seeds_keep_no_copy_of_each_seed_variable() -> None:
    # The environment variables alone: 6.1 MiB (64 bytes a seed) each with setenv.
    code = MEMORY_CODE.format(imports="", sources=', sources=["environ"]', count=100_000)
    growth = run_json(code, timeout=120)
    assert growth < 2 * MiB, f"{growth / MiB:.1f} MiB for 100,000 distinct seeds"

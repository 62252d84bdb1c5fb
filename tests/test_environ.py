"""``PYTHONHASHSEED`` in the C environment: what child processes see, and the memory it takes.

A scope sets ``PYTHONHASHSEED`` both in ``os.environ`` and in the C
environment, which children started without ``env=`` inherit; on glibc it does
so without ``setenv``, which keeps every distinct value it was given for ever.

This module needs neither numpy nor torch (the one test that imports them
skips without them), so it runs in both environments; it puts the variable
back itself through ``monkeypatch``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from _subprocess import run_json

from seedscope import deterministic
from seedscope.sources.environ import _RING as RING

HASH_SEED = "PYTHONHASHSEED"

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


@pytest.fixture(params=[None, "0", "random"], ids=["unset", "0", "random"])
def outer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """``PYTHONHASHSEED`` outside the scope: unset, a seed, or ``random``."""
    value: str | None = request.param
    if value is None:
        monkeypatch.delenv(HASH_SEED, raising=False)
    else:
        monkeypatch.setenv(HASH_SEED, value)
    return value


def child_hash_seed() -> str | None:
    """``PYTHONHASHSEED`` as a child started with ``subprocess.run`` and no ``env=`` sees it."""
    code = f"import json, os; print(json.dumps(os.environ.get({HASH_SEED!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    value: str | None = json.loads(done.stdout)
    return value


def c_hash_seed() -> str | None:
    """``getenv("PYTHONHASHSEED")`` from the C library, not from ``os.environ``."""
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    raw: bytes | None = getenv(HASH_SEED.encode())
    return None if raw is None else os.fsdecode(raw)


# -- what child processes see ------------------------------------------------------


def test_a_child_process_sees_the_seed_inside_a_scope_and_the_old_value_after(
    outer: str | None,
) -> None:
    with deterministic(1234):
        inside = child_hash_seed()
        with deterministic(99):
            nested = child_hash_seed()
        back_outside_nested = child_hash_seed()
    assert (inside, nested, back_outside_nested) == ("1234", "99", "1234")
    assert child_hash_seed() == outer
    assert os.environ.get(HASH_SEED) == outer


def test_a_spawned_multiprocessing_child_sees_the_seed_inside_a_scope_and_nothing_after() -> None:
    # spawn starts the child with the C environment, not with os.environ.
    result = run_json(
        """
        import json, multiprocessing, os
        from seedscope import deterministic

        os.environ.pop("PYTHONHASHSEED", None)
        spawn = multiprocessing.get_context("spawn")
        with deterministic(4321):
            with spawn.Pool(1) as pool:
                inside = pool.apply(os.getenv, ("PYTHONHASHSEED",))
        with spawn.Pool(1) as pool:
            after = pool.apply(os.getenv, ("PYTHONHASHSEED",))
        print(json.dumps([inside, after]))
        """,
        timeout=120,
    )
    assert result == ["4321", None]


@needs_libc
def test_the_c_environment_follows_os_environ_through_many_distinct_seeds(
    outer: str | None,
) -> None:
    # More seeds than the ring has buffers, so every buffer is written again.
    for seed in range(3 * RING + 7):
        with deterministic(seed):
            assert (os.environ[HASH_SEED], c_hash_seed()) == (str(seed), str(seed))
        assert (os.environ.get(HASH_SEED), c_hash_seed()) == (outer, outer)


@needs_libc
def test_a_value_set_inside_a_scope_is_replaced_in_the_c_environment_too(
    outer: str | None,
) -> None:
    with deterministic(5):
        os.environ[HASH_SEED] = "77"
        assert c_hash_seed() == "77"
        with deterministic(6):
            assert c_hash_seed() == "6"
        assert (os.environ[HASH_SEED], c_hash_seed()) == ("77", "77")
        del os.environ[HASH_SEED]
        with deterministic(8):
            assert c_hash_seed() == "8"
        assert c_hash_seed() is None
    assert (os.environ.get(HASH_SEED), c_hash_seed()) == (outer, outer)


@needs_libc
def test_a_value_too_long_for_a_buffer_is_put_back_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long = "9" * 100
    monkeypatch.setenv(HASH_SEED, long)
    with deterministic(3):
        assert c_hash_seed() == "3"
    assert (os.environ[HASH_SEED], c_hash_seed()) == (long, long)


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
        with deterministic(12):
            inside = [os.environ["PYTHONHASHSEED"], getenv(b"PYTHONHASHSEED").decode()]
        after = [os.environ["PYTHONHASHSEED"], getenv(b"PYTHONHASHSEED").decode()]
        print(json.dumps([inside, after, environ._ring is None]))
        """
    )
    assert result == [["12", "12"], ["0", "0"], True]


@needs_glibc
def test_a_pointer_getenv_returned_keeps_its_value_through_later_scopes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(HASH_SEED, raising=False)
    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_void_p
    with deterministic(31337):
        pointer = getenv(HASH_SEED.encode())
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
def test_100000_distinct_seeds_keep_no_copy_of_each_hash_seed() -> None:
    # The environment variable alone: 6.1 MiB (64 bytes a seed) with setenv.
    code = MEMORY_CODE.format(imports="", sources=', sources=["environ"]', count=100_000)
    growth = run_json(code, timeout=120)
    assert growth < 2 * MiB, f"{growth / MiB:.1f} MiB for 100,000 distinct seeds"

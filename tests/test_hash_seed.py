"""Finding out whether this interpreter's hash seed was fixed at start-up.

The check computes what ``hash()`` would give under each candidate seed and
compares, so it cannot be fooled by ``os.environ`` changed at run time or by
``-E``. Each case starts a real interpreter. Needs neither numpy nor torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _cli import PACKAGE_DIR, environment, python

from seedscope._hashseed import can_verify

PROBE = """
import json, os, sys
{before}
from seedscope._hashseed import startup_hash_seed
found = startup_hash_seed()
print(json.dumps([found.fixed, found.seed]))
"""

needs_siphash = pytest.mark.skipif(
    not can_verify(), reason=f"hash algorithm {sys.hash_info.algorithm} cannot be checked"
)


def probe(
    tmp_path: Path, value: str | None, *options: str, before: str = ""
) -> tuple[bool | None, int | None]:
    env = environment() if value is None else environment(PYTHONHASHSEED=value)
    result = python(*options, "-c", PROBE.format(before=before), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    fixed, seed = json.loads(result.stdout)
    return fixed, seed


@needs_siphash
@pytest.mark.parametrize("value", ["0", "1", "42", "4294967295"])
def test_a_seed_set_at_start_up_is_found(tmp_path: Path, value: str) -> None:
    assert probe(tmp_path, value) == (True, int(value))


@needs_siphash
@pytest.mark.parametrize("value", [None, "random", ""])
def test_a_random_hash_seed_is_not_fixed(tmp_path: Path, value: str | None) -> None:
    assert probe(tmp_path, value) == (False, None)


@needs_siphash
def test_setting_the_variable_at_run_time_is_not_a_fixed_seed(tmp_path: Path) -> None:
    before = "os.environ['PYTHONHASHSEED'] = '0'"
    assert probe(tmp_path, None, before=before) == (False, None)
    # ... and unsetting it at run time does not hide a seed fixed at start-up.
    before = "del os.environ['PYTHONHASHSEED']"
    assert probe(tmp_path, "3", before=before) == (True, 3)


@needs_siphash
def test_a_variable_that_python_ignored_is_not_a_fixed_seed(tmp_path: Path) -> None:
    # -E: PYTHONHASHSEED is ignored (so is PYTHONPATH, hence the explicit path).
    package_parent = str(Path(PACKAGE_DIR).parent)
    before = f"sys.path.insert(0, {package_parent!r})"
    assert probe(tmp_path, "5", "-E", before=before) == (False, None)

"""Generated pytest projects for the plugin's tests: a conftest that logs, and its log."""

from __future__ import annotations

import json

import pytest

# ``record(*values)`` appends the test's node id and the values to log.jsonl,
# so a run's draws can be read back.
CONFTEST = """
import json
import pathlib

import pytest

LOG = pathlib.Path(__file__).with_name("log.jsonl")


@pytest.fixture
def record(request):
    def write(*values):
        with LOG.open("a") as f:
            f.write(json.dumps([request.node.nodeid, *values]) + "\\n")

    return write
"""

# Outside plugins that would change what is measured stay off: pytest-randomly
# reseeds and reorders; the cache would carry 'last' between tests;
# Hypothesis's plugin would re-import hypothesis in every in-process run.
QUIET = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:hypothesispytest")

Log = dict[str, list[object]]


def new_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """``pytester`` with the logging conftest, and no seed from this process's environment."""
    monkeypatch.delenv("SEEDSCOPE_SEED", raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    return pytester


def read_log(pytester: pytest.Pytester, *, clear: bool = True) -> Log:
    """Each logged test's values by node id; the log is emptied unless ``clear=False``."""
    path = pytester.path / "log.jsonl"
    if not path.exists():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    if clear:
        path.unlink()
    return {entry[0]: entry[1:] for entry in entries}

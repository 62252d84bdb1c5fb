"""Third-party sources: ``register_source`` and the ``seedscope.sources`` entry-point group."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedscope import Source, capture, deterministic, register_source, unregister_source
from seedscope import sources as sources_module
from seedscope.sources import BUILTIN_NAMES, default_sources


class Library:
    """A library with process-global random state of its own."""

    state = 0


class LibrarySource(Source):
    name = "library"

    def capture(self) -> Any:
        return Library.state

    def seed(self, seed: int) -> None:
        Library.state = seed

    def restore(self, state: Any) -> None:
        Library.state = state


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    saved = sources_module._registered
    yield
    sources_module._registered = saved
    sources_module._defaults.cache_clear()


def test_a_registered_source_joins_scopes_made_afterwards() -> None:
    before = deterministic(3)
    source = register_source(LibrarySource())
    after = deterministic(3)
    assert source in after.sources
    assert source not in before.sources
    assert [s.name for s in default_sources()] == [*BUILTIN_NAMES, "library"]
    Library.state = 1
    with after:
        assert Library.state == 3
    assert Library.state == 1


def test_a_registered_source_can_be_named_and_captured() -> None:
    register_source(LibrarySource())
    scope = deterministic(3, sources=["python", "library"])
    assert [s.name for s in scope.sources] == ["python", "library"]
    Library.state = 5
    snapshot = capture()
    assert snapshot.state_dict()["sources"]["library"] == 5
    Library.state = 6
    snapshot.restore()
    assert Library.state == 5


def test_unregister_removes_it_from_later_scopes() -> None:
    source = register_source(LibrarySource())
    assert unregister_source("library") is source
    assert source not in deterministic(3).sources
    with pytest.raises(ValueError, match="no registered source is named 'library'"):
        unregister_source("library")


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        (object(), TypeError, "takes a Source instance"),
        (LibrarySource, TypeError, "takes a Source instance"),  # the class, not an instance
    ],
)
def test_only_sources_can_be_registered(source: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        register_source(source)


def test_names_must_be_unique_and_not_empty() -> None:
    register_source(LibrarySource())
    with pytest.raises(ValueError, match="'library' is already registered"):
        register_source(LibrarySource())

    class Python(LibrarySource):
        name = "python"

    with pytest.raises(ValueError, match="'python' is already registered"):
        register_source(Python())

    class Nameless(LibrarySource):
        name = ""

    with pytest.raises(ValueError, match="must be a non-empty string"):
        register_source(Nameless())


# -- the entry-point group, in fresh interpreters -------------------------------------------


PLUGIN = """
from seedscope import Source

LOADS = []
LOADS.append(1)


class Counter:
    value = 0


class CounterSource(Source):
    name = "counter"

    def capture(self):
        return Counter.value

    def seed(self, seed):
        Counter.value = seed

    def restore(self, state):
        Counter.value = state


NOT_A_SOURCE = 42
"""


def _install_plugin(site: Path, entry_points: str) -> None:
    (site / "fake_plugin.py").write_text(PLUGIN)
    (site / "broken_plugin.py").write_text("raise ImportError('needs a library that is missing')\n")
    info = site / "fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def _run(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(site), "PATH": ""},
    )


def test_entry_point_sources_are_loaded_lazily_once(tmp_path: Path) -> None:
    _install_plugin(
        tmp_path,
        """
        [seedscope.sources]
        counter = fake_plugin:CounterSource
        """,
    )
    result = _run(
        tmp_path,
        """
        import json, sys
        import seedscope
        loaded_on_import = "fake_plugin" in sys.modules
        with seedscope.deterministic(9):
            import fake_plugin
            inside = fake_plugin.Counter.value
        with seedscope.deterministic(10):
            pass
        print(json.dumps({
            "loaded_on_import": loaded_on_import,
            "inside": inside,
            "after": fake_plugin.Counter.value,
            "loads": len(fake_plugin.LOADS),
            "names": [s.name for s in seedscope.deterministic(1).sources],
        }))
        """,
    )
    report = json.loads(result.stdout)
    assert report == {
        "loaded_on_import": False,
        "inside": 9,
        "after": 0,
        "loads": 1,
        "names": [*BUILTIN_NAMES, "counter"],
    }
    assert result.stderr == ""


def test_a_plugin_that_fails_to_load_is_skipped_with_a_warning(tmp_path: Path) -> None:
    _install_plugin(
        tmp_path,
        """
        [seedscope.sources]
        broken = broken_plugin:Source
        missing = fake_plugin:NoSuchName
        not-a-source = fake_plugin:NOT_A_SOURCE
        counter = fake_plugin:CounterSource
        again = fake_plugin:CounterSource
        """,
    )
    result = _run(
        tmp_path,
        """
        import seedscope
        with seedscope.deterministic(9):
            pass
        names = [s.name for s in seedscope.deterministic(1).sources]
        print(names[len(seedscope.sources.BUILTIN_NAMES):])
        """,
    )
    assert result.stdout.strip() == "['counter']"
    warnings = [line for line in result.stderr.splitlines() if "SeedscopeWarning" in line]
    assert len(warnings) == 4, result.stderr
    for name, reason in [
        ("broken", "ImportError: needs a library that is missing"),
        ("missing", "AttributeError"),
        ("not-a-source", "TypeError: it is 42, not a Source"),
        ("again", "name 'counter' is empty or already taken"),
    ]:
        assert any(f"skipped the seedscope source {name!r}" in w and reason in w for w in warnings)

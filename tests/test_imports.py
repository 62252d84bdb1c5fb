"""Import hygiene, and libraries first imported while a scope is active.

Whether numpy or torch has been imported is process-wide and cannot be undone,
so those cases run in fresh interpreters. Each interpreter prints one JSON
object; several tests read the parts of it they check.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _subprocess import run_json

from seedscope import Source, deterministic, isolated


def run_python(code: str) -> Any:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last."""
    return run_json(code, timeout=60)


# A source of the project's own protocol that writes down the state a library
# had when the scope picked it up, i.e. right after its import, before seeding.
RECORDER = """
from seedscope import Source

class Recorder(Source):
    name = "recorder"

    def __init__(self, module, read):
        self.module = module
        self.read = read
        self.seen = []

    def capture(self):
        self.seen.append(self.read())

    def seed(self, seed):
        pass

    def restore(self, state):
        pass
"""


# -- import hygiene --------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_interpreter() -> Any:
    return run_python(
        """
        import json, sys
        heavy = ("numpy", "torch")
        import seedscope
        on_import = [m for m in heavy if m in sys.modules]
        with seedscope.deterministic(1, strict=True):
            with seedscope.isolated():
                pass
        in_scopes = [m for m in heavy if m in sys.modules]
        print(json.dumps({"on_import": on_import, "in_scopes": in_scopes}))
        """
    )


def test_importing_seedscope_imports_neither_numpy_nor_torch(bare_interpreter: Any) -> None:
    assert bare_interpreter["on_import"] == []


def test_scopes_do_not_import_numpy_or_torch(bare_interpreter: Any) -> None:
    assert bare_interpreter["in_scopes"] == []


class NeverImported(Source):
    """A source whose library is never imported, so a scope has one pending."""

    name = "never-imported"
    module = "seedscope_tests_no_such_module"

    def capture(self) -> None:
        return None

    def seed(self, seed: int) -> None:
        pass

    def restore(self, state: None) -> None:
        pass


def test_the_import_hook_is_there_only_while_a_scope_waits_for_an_import() -> None:
    before = list(sys.meta_path)
    pending = NeverImported()
    with deterministic(1, sources=["python", pending]):
        with isolated():
            assert len(sys.meta_path) == len(before) + 1
        assert len(sys.meta_path) == len(before) + 1
    assert sys.meta_path == before


def test_no_import_hook_when_every_library_is_already_imported() -> None:
    before = list(sys.meta_path)
    with deterministic(1, sources=["python"]):
        assert sys.meta_path == before


def test_two_watches_of_one_module_both_hear_of_its_import(tmp_path: Path) -> None:
    from seedscope import _imports

    (tmp_path / "watched_twice.py").write_text("VALUE = 1\n")
    heard: list[str] = []
    watches = [
        _imports.ImportWatch("watched_twice".__eq__, lambda name, n=n: heard.append(f"{n}:{name}"))
        for n in (1, 2)
    ]
    sys.path.insert(0, str(tmp_path))
    try:
        for watch in watches:
            _imports.watch(watch)
        import watched_twice  # noqa: F401  (asked of each watch in turn, not of each other for ever)
    finally:
        for watch in watches:
            _imports.unwatch(watch)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("watched_twice", None)
    assert sorted(heard) == ["1:watched_twice", "2:watched_twice"]


# -- numpy imported inside a scope ---------------------------------------------------


@pytest.fixture(scope="module")
def late_numpy() -> Any:
    return run_python(
        RECORDER
        + """
import json, sys
from seedscope import deterministic
from seedscope.sources import BUILTIN_NAMES

def numpy_state():
    state = sys.modules["numpy.random"].get_state(legacy=False)
    return [state["state"]["key"].tolist(), state["state"]["pos"], state["has_gauss"]]

recorder = Recorder("numpy.random", numpy_state)
with deterministic(5, sources=[recorder, *BUILTIN_NAMES]):
    import numpy as np
    inside = [np.random.rand(), np.random.rand()]
after_state = numpy_state()
after = np.random.rand()
np.random.seed(5)
recipe = [np.random.rand() for _ in range(3)]
print(json.dumps({
    "inside": inside,
    "after": after,
    "recipe": recipe,
    "after_state": after_state,
    "import_states": recorder.seen,
}))
"""
    )


@pytest.fixture(scope="module")
def late_numpy_nested() -> Any:
    return run_python(
        """
        import json
        from seedscope import deterministic
        with deterministic(5):
            with deterministic(6):
                import numpy as np
                inner = np.random.rand()
            outer = [np.random.rand(), np.random.rand()]
        np.random.seed(5)
        recipe5 = [np.random.rand() for _ in range(2)]
        np.random.seed(6)
        recipe6 = np.random.rand()
        print(json.dumps([inner, outer, recipe5, recipe6]))
        """
    )


def test_numpy_imported_inside_a_scope_draws_the_recipe_stream(late_numpy: Any) -> None:
    assert late_numpy["inside"] == late_numpy["recipe"][:2]


def test_numpy_imported_inside_a_scope_is_left_as_its_import_made_it(late_numpy: Any) -> None:
    (import_state,) = late_numpy["import_states"]
    assert late_numpy["after_state"] == import_state
    assert late_numpy["after"] not in late_numpy["recipe"]


def test_inner_exit_resumes_the_outer_stream_of_a_late_numpy(late_numpy_nested: Any) -> None:
    inner, outer, recipe5, recipe6 = late_numpy_nested
    assert inner == recipe6
    assert outer == recipe5


# -- torch imported inside a scope ---------------------------------------------------


@pytest.fixture(scope="module")
def late_torch() -> Any:
    return run_python(
        RECORDER
        + """
import json, os, sys
from seedscope import deterministic
from seedscope.sources import BUILTIN_NAMES

def torch_state():
    return sys.modules["torch"].default_generator.get_state().tolist()

os.environ.pop("PYTHONHASHSEED", None)
recorder = Recorder("torch", torch_state)
with deterministic(5, sources=[recorder, *BUILTIN_NAMES]):
    with deterministic(6):
        import torch
        inner = torch.rand(3).tolist()
        inner_flags = [torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark]
    outer = torch.rand(3).tolist()
    outer_flags = [torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark]
after_state = torch_state()
after_flags = [torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark]
after = torch.rand(3).tolist()
torch.manual_seed(5)
recipe5 = torch.rand(3).tolist()
torch.manual_seed(6)
recipe6 = torch.rand(3).tolist()
print(json.dumps({
    "inner": inner,
    "outer": outer,
    "after": after,
    "recipe5": recipe5,
    "recipe6": recipe6,
    "after_state": after_state,
    "import_states": recorder.seen,
    "flags": [inner_flags, outer_flags, after_flags],
    "hash_seed": os.environ.get("PYTHONHASHSEED"),
}))
"""
    )


def test_torch_imported_inside_nested_scopes_draws_the_inner_recipe_stream(
    late_torch: Any,
) -> None:
    assert late_torch["inner"] == late_torch["recipe6"]


def test_inner_exit_resumes_the_outer_stream_of_a_late_torch(late_torch: Any) -> None:
    assert late_torch["outer"] == late_torch["recipe5"]


def test_torch_imported_inside_a_scope_is_left_as_its_import_made_it(late_torch: Any) -> None:
    (import_state,) = late_torch["import_states"]
    assert late_torch["after_state"] == import_state
    assert late_torch["after"] not in (late_torch["recipe5"], late_torch["recipe6"])


def test_torch_flags_of_a_late_torch_are_set_inside_and_restored_after(late_torch: Any) -> None:
    inner, outer, after = late_torch["flags"]
    assert inner == outer == [True, False]
    assert after == [False, False]
    assert late_torch["hash_seed"] is None


# -- any module a source names -----------------------------------------------------


class ModuleGlobal(Source):
    """The ``VALUE`` global of a module, which exists once the module is imported."""

    name = "module-global"

    def __init__(self, module: str) -> None:
        self.module = module
        self.target = module

    def capture(self) -> Any:
        return vars(sys.modules[self.target])["VALUE"]

    def seed(self, seed: int) -> None:
        vars(sys.modules[self.target])["VALUE"] = seed

    def restore(self, state: Any) -> None:
        vars(sys.modules[self.target])["VALUE"] = state


@pytest.fixture
def late_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a module, not yet imported, whose ``VALUE`` is "import-time"."""
    name = f"seedscope_late_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text('VALUE = "import-time"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_module_imported_inside_a_scope_is_seeded_and_then_left_as_imported(
    late_module: str,
) -> None:
    source = ModuleGlobal(late_module)
    with deterministic(8, sources=[source]):
        module: Any = __import__(late_module)
        assert module.VALUE == 8
    assert module.VALUE == "import-time"
    assert module.__loader__ is module.__spec__.loader
    assert type(module.__loader__).__name__ == "SourceFileLoader"


def test_a_module_imported_inside_isolated_is_not_seeded(late_module: str) -> None:
    with isolated(sources=[ModuleGlobal(late_module)]):
        module: Any = __import__(late_module)
        assert module.VALUE == "import-time"
        module.VALUE = "changed inside"
    assert module.VALUE == "import-time"


def test_a_module_that_does_not_exist_still_fails_to_import_inside_a_scope() -> None:
    with deterministic(1, sources=[ModuleGlobal("seedscope_no_such_module")]):
        with pytest.raises(ModuleNotFoundError):
            __import__("seedscope_no_such_module")
        assert "seedscope_no_such_module" not in sys.modules

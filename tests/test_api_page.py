"""The API reference names only public things in its signatures, and lists every public name.

Two checks: the signatures themselves, read with ``inspect`` (overloads
included), which runs everywhere; and the page as Sphinx builds it from
docs/api.md, where Sphinx is installed.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import seedscope
from seedscope.pytest_plugin import LeakWarning

DOCS = Path(__file__).resolve().parents[1] / "docs"
# A name that starts with one underscore: `_Target`, `seedscope._scope`; not `__call__`.
PRIVATE = re.compile(r"(?<![\w])_[A-Za-z]\w*")
PUBLIC = {name: getattr(seedscope, name) for name in seedscope.__all__}
PUBLIC["pytest_plugin.LeakWarning"] = LeakWarning
# Classes the page shows without a constructor signature (`.. autoclass:: Scope()`).
NOT_CONSTRUCTED = set(
    re.findall(r"\.\. auto(?:class|exception):: (\w+)\(\)", (DOCS / "api.md").read_text("utf-8"))
)


def signatures(function: Callable[..., Any]) -> Iterator[str]:
    """The signature of ``function`` and of each of its ``@overload`` variants."""
    yield str(inspect.signature(function))
    get_overloads = getattr(typing, "get_overloads", None)  # Python 3.11+
    if get_overloads is not None:
        for overload in get_overloads(function):
            yield str(inspect.signature(overload))


def documented_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Each public function, and the constructor, public methods and properties of each class."""
    for name, value in PUBLIC.items():
        if not isinstance(value, type):
            yield name, value
            continue
        shown = {"__call__"} if name in NOT_CONSTRUCTED else {"__init__", "__call__"}
        for member_name, member in vars(value).items():
            if member_name.startswith("_") and member_name not in shown:
                continue
            if isinstance(member, property) and member.fget is not None:
                yield f"{name}.{member_name}", member.fget
            elif isinstance(member, (classmethod, staticmethod)):
                yield f"{name}.{member_name}", member.__func__
            elif inspect.isfunction(member):
                yield f"{name}.{member_name}", member


def test_public_signatures_name_no_private_type_or_parameter() -> None:
    found = {
        name: signature
        for name, callable_ in documented_callables()
        for signature in signatures(callable_)
        if PRIVATE.search(signature)
    }
    assert found == {}
    # The decorator forms are among the signatures checked.
    assert "(target: 'Target', /) -> 'Target'" in set(signatures(seedscope.deterministic))


def test_the_check_finds_a_private_type_in_an_overload() -> None:
    _Hidden = typing.TypeVar("_Hidden")

    @typing.overload
    def decorate(target: _Hidden, /) -> _Hidden: ...
    @typing.overload
    def decorate(target: int) -> int: ...
    def decorate(target: Any) -> Any:
        return target

    found = [s for s in signatures(decorate) if PRIVATE.search(s)]
    if hasattr(typing, "get_overloads"):
        assert found == ["(target: '_Hidden', /) -> '_Hidden'"]
    else:
        assert found == []


SPHINX_PACKAGES = ("sphinx", "myst_parser", "furo")


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in SPHINX_PACKAGES),
    reason="builds the page with Sphinx, MyST and furo (requirements/docs.txt)",
)
def test_built_api_page_shows_only_public_names(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("conf.py", "api.md"):
        shutil.copy(DOCS / name, source / name)
    # Links to other pages cannot resolve in a build of this page alone.
    page = (source / "api.md").read_text(encoding="utf-8")
    (source / "api.md").write_text(
        re.sub(r"\[([^]]*)\]\([\w-]+\.md\)", r"\1", page), encoding="utf-8"
    )
    build = tmp_path / "html"
    options = ("-W", "--keep-going", "-E", "-q", "-b", "html", "-D", "root_doc=api")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", *options, str(source), str(build)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    built = (build / "api.html").read_text(encoding="utf-8")
    shown = []
    for match in re.finditer(r'<dt class="sig sig-object py"[^>]*>(.*?)</dt>', built, re.S):
        text = html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))
        shown.append(" ".join(text.replace("\N{PILCROW SIGN}", "").split()))
    assert len(shown) > len(PUBLIC)
    assert [line for line in shown if PRIVATE.search(line)] == []
    assert "seedscope.deterministic(target: Target, /) → Target" in shown
    assert "exception seedscope.pytest_plugin.LeakWarning" in shown
    for name in PUBLIC:
        assert f'id="seedscope.{name}"' in built, name

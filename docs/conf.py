"""Sphinx configuration: furo theme, MyST markdown pages, autodoc for the API reference."""

from __future__ import annotations

from typing import Any

from sphinx.util import logging

import seedscope

project = "seedscope"
author = "seedscope contributors"
copyright = "seedscope contributors"
release = seedscope.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"seedscope {release}"
pygments_style = "sphinx"
pygments_dark_style = "monokai"


def _check_public_names_documented(app: Any, env: Any) -> None:
    """Warn (an error under -W) when a name in seedscope.__all__ is missing from api.md."""
    documented = env.get_domain("py").objects
    for name in seedscope.__all__:
        if f"seedscope.{name}" not in documented:
            logging.getLogger(__name__).warning(
                "seedscope.%s is public but not in the API reference (docs/api.md)", name
            )


def setup(app: Any) -> None:
    app.connect("env-check-consistency", _check_public_names_documented)

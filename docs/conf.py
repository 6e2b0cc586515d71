"""Sphinx configuration of numpyvae's documentation site.

Build it from the repository root with

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs _site

The pages are the Markdown files of docs/ (read by MyST), the API
reference comes from the numpydoc docstrings, and the math is typeset
by a copy of MathJax that ships with the site, so it works offline.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document the source tree being built
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import numpyvae  # noqa: E402

project = "numpyvae"
author = "the numpyvae authors"
copyright = "numpyvae authors, MIT license"
version = release = numpyvae.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "plain_docstrings",  # before numpydoc: the docstrings are plain text
    "numpydoc",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static: no CDN needed
]

root_doc = "index"
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["tools", "examples", "_ext", "_static", "_build"]
templates_path: list[str] = []

# Markdown: $...$ and $$...$$ math, "file.md#section" links to headings.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# The indented code quoted in derivations.md is Python.
highlight_language = "default"
pygments_style = "sphinx"

# API reference: docstrings stay plain numpydoc text for the terminal.
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
autodoc_preserve_defaults = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
default_role = "literal"  # `name` in a docstring is code, as in the terminal

# Every cross-reference must resolve; type names in signatures are not
# documented objects, so they alone are exempt.
nitpicky = True
nitpick_ignore_regex = [("py:class", r".*")]

html_theme = "furo"
html_title = f"numpyvae {release}"
html_static_path = ["_static"]
html_css_files = ["numpyvae.css"]
html_show_sourcelink = False
html_copy_source = False

# --- links from the Markdown pages into the code ---------------------------
#
# docs/math-to-code.md links each function to the line of its def, as
# [name](../numpyvae/module.py#L<line>) or [name](../numpyvae/folder/module.py#L<line>),
# so the links work when the file is read in the repository
# (tests/test_docs.py keeps the lines right). On the site the same link goes
# to the function's entry in the API reference, which has its docstring and
# a link to its highlighted source.

CODE_LINK = re.compile(r"\[`?([\w.]+)`?\]\(\.\./numpyvae/((?:\w+/)*\w+)\.py#L\d+\)")
CODE_QUOTE = re.compile(r"^Code \(numpyvae/((?:\w+/)*\w+)\.py\):$", re.M)


def _api_link(match: re.Match) -> str:
    name, module = match.group(1), match.group(2).replace("/", ".")
    if any(part.startswith("_") for part in name.split(".")):
        # private helpers are not in the reference: link their module
        return f"{{py:mod}}`{name} <numpyvae.{module}>`"
    return f"{{py:obj}}`{name} <numpyvae.{module}.{name}>`"


def _code_quote(match: re.Match) -> str:
    path = match.group(1)
    return f"Code ({{py:mod}}`numpyvae/{path}.py <numpyvae.{path.replace('/', '.')}>`):"


def link_code(app, docname: str, source: list[str]) -> None:
    """Turn repository links to code into links to the API reference."""
    source[0] = CODE_LINK.sub(_api_link, source[0])
    source[0] = CODE_QUOTE.sub(_code_quote, source[0])


def setup(app):
    app.connect("source-read", link_code)
    return {"parallel_read_safe": True}

"""Tests for the docs: they must match the code.

* docs/gradient-checking.md: its ```python blocks run verbatim, in order,
  in one fresh namespace, and every test_* function they define passes.
* docs/derivations.md: every quoted line of code ("Code (numpyvae/x.py):"
  or "Code (numpyvae/folder/x.py):" followed by an indented block) appears
  verbatim in that module.
* docs/math-to-code.md: every link [name](../numpyvae/folder/x.py#L<n>)
  points at the line that defines `name`, and every named test
  (tests/folder/test_x.py::test_name) exists.
* README.md and every page of docs/: each repository path, relative
  link and bare file name (`kl.py`) it mentions exists.

Run ``python tests/test_docs.py docs/gradient-checking.md`` to execute a
page's python blocks with their output shown (the outputs quoted in the
page come from this command).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def python_blocks(path: Path) -> list[str]:
    """The ```python fenced blocks of a markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def run_blocks(path: Path) -> dict:
    """Execute a page's python blocks in order in one fresh namespace."""
    namespace = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for i, block in enumerate(python_blocks(path)):
        exec(compile(block, f"{path.name} (python block {i + 1})", "exec"), namespace)
    return namespace


def defined_names(module: Path) -> dict[str, int]:
    """Qualified name ('f', 'Class', 'Class.method') -> line of its def/class."""
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[prefix + child.name] = child.lineno
                if isinstance(child, ast.ClassDef):
                    visit(child, prefix + child.name + ".")

    visit(ast.parse(module.read_text()), "")
    return found


def quoted_code(path: Path) -> list[tuple[str, list[str]]]:
    """Blocks "Code (numpyvae/[folder/]x.py):" + indented lines, as (module, lines)."""
    lines = path.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = re.fullmatch(r"Code \((numpyvae/(?:\w+/)*\w+\.py)\):", line)
        if match:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            code = []
            while j < len(lines) and lines[j].startswith("    "):
                code.append(lines[j][4:])
                j += 1
            blocks.append((match.group(1), code))
    return blocks


def missing_code_lines(path: Path) -> list[str]:
    """Quoted lines of `path` that are not, verbatim, a line of their module."""
    missing = []
    for module, code in quoted_code(path):
        source = {line.strip() for line in (ROOT / module).read_text().splitlines()}
        missing += [f"{module}: {line}" for line in code if line.strip() not in source]
    return missing


def test_gradient_checking_examples_run_and_their_tests_pass():
    path = DOCS / "gradient-checking.md"
    assert len(python_blocks(path)) >= 8
    with contextlib.redirect_stdout(io.StringIO()) as out:
        namespace = run_blocks(path)
        tests = {k: v for k, v in namespace.items() if k.startswith("test_") and callable(v)}
        for test in tests.values():
            test()
    assert set(tests) == {"test_dense_then_gained_tanh", "test_whole_vae_gradient"}
    assert "NO" in out.getvalue()  # the planted bug was reported


def test_a_failing_example_makes_the_doc_test_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n")
    with pytest.raises(AssertionError):
        run_blocks(page)


def test_derivations_quote_the_code_verbatim():
    blocks = quoted_code(DOCS / "derivations.md")
    assert all(code for _, code in blocks), "a 'Code (...):' line without code under it"
    assert missing_code_lines(DOCS / "derivations.md") == []
    quoted = {module for module, _ in blocks}
    assert {f"numpyvae/reference/{m}.py" for m in ("layers", "activations", "likelihoods",
                                                   "kl", "sampling", "vae", "bounds",
                                                   "hierarchical_vae", "optim")} <= quoted


def test_a_stale_quote_is_caught(tmp_path):
    kl_py = ROOT / "numpyvae/reference/kl.py"
    real = kl_py.read_text().splitlines()[defined_names(kl_py)["kl_forward"] - 1].strip()
    page = tmp_path / "page.md"
    page.write_text(f"Code (numpyvae/reference/kl.py):\n\n    kl = 0.5 * mu.sum()\n    {real}\n\ntext\n")
    assert quoted_code(page) == [("numpyvae/reference/kl.py", ["kl = 0.5 * mu.sum()", real])]
    assert missing_code_lines(page) == ["numpyvae/reference/kl.py: kl = 0.5 * mu.sum()"]


PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))
# the names of the repository's own files (not of a build, a site or git)
REPO_FILES = {p.name for folder in ("numpyvae", "tests", "benchmarks", "docs", ".ci")
              for p in (ROOT / folder).rglob("*") if p.is_file()}
REPO_FILES |= {p.name for p in ROOT.iterdir() if p.is_file()}


def missing_paths(path: Path) -> list[str]:
    """Repository paths, relative links and bare file names such as
    `kl.py` (the name of no file of the repository) of a page that
    lead nowhere."""
    text = path.read_text()
    paths = set(re.findall(r"\b((?:numpyvae|tests|docs|benchmarks)/[\w/.-]*\w\.(?:py|md))", text))
    links = {link.split("#")[0] for link in re.findall(r"\]\(([^)#:]+\.(?:md|py))", text)}
    names = set(re.findall(r"(?<![\w/.-])(\w+\.py)\b", text))
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    missing += sorted(link for link in links if not (path.parent / link).resolve().exists())
    missing += sorted(name for name in names if name not in REPO_FILES)
    return missing


@pytest.mark.parametrize("page", PAGES)
def test_every_path_and_link_in_the_docs_exists(page):
    assert missing_paths(ROOT / page) == []


def test_a_moved_module_is_caught(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("")
    page.write_text("`numpyvae/reference/kl.py` and `numpyvae/kl.py`, `kl.py` and `model.py`, "
                    "tests/reference/test_kl.py, tests/test_kl.py, [a](there.md) [b](gone.md)\n")
    assert missing_paths(page) == ["numpyvae/kl.py", "tests/test_kl.py", "gone.md", "model.py"]


CODE_LINK = re.compile(r"\[`?([\w.]+)`?\]\(\.\./(numpyvae/(?:\w+/)*\w+\.py)#L(\d+)\)")
TEST_REF = re.compile(r"\b(tests/(?:\w+/)*test_\w+\.py)::(test_\w+)")


def stale_code_links(path: Path) -> list[str]:
    """Links [name](../numpyvae/[folder/]m.py#L<n>) whose line n does not define name."""
    stale = []
    for name, module, line in CODE_LINK.findall(path.read_text()):
        source = ROOT / module
        if not source.exists():
            stale.append(f"{module} does not exist")
            continue
        found = defined_names(source).get(name)
        if found != int(line):
            stale.append(f"{module}#L{line}: {name} is defined on line {found}")
    return stale


def missing_tests(path: Path) -> list[str]:
    """References tests/[folder/]test_x.py::test_name whose test function does not exist."""
    missing = []
    for module, name in TEST_REF.findall(path.read_text()):
        source = ROOT / module
        if not source.exists() or name not in defined_names(source):
            missing.append(f"{module}::{name}")
    return missing


def test_math_to_code_links_point_at_def_lines():
    path = DOCS / "math-to-code.md"
    links = CODE_LINK.findall(path.read_text())
    assert len(links) >= 60
    assert stale_code_links(path) == []
    linked = {(module, name) for name, module, _ in links}
    for module in ("layers", "activations", "likelihoods", "kl", "sampling"):
        path = f"numpyvae/reference/{module}.py"
        kernels = {name for name in defined_names(ROOT / path)
                   if name.endswith(("_forward", "_backward"))}
        assert kernels <= {name for m, name in linked if m == path}


def test_math_to_code_names_tests_that_exist():
    path = DOCS / "math-to-code.md"
    assert len(TEST_REF.findall(path.read_text())) >= 40
    assert missing_tests(path) == []


def test_stale_line_numbers_and_missing_tests_are_caught(tmp_path):
    line = defined_names(ROOT / "numpyvae/reference/kl.py")["kl_forward"]
    page = tmp_path / "page.md"
    page.write_text(f"[kl_forward](../numpyvae/reference/kl.py#L{line}) "
                    f"[kl_forward](../numpyvae/reference/kl.py#L{line + 1}) "
                    f"[Adam.step](../numpyvae/reference/optim.py#L1) [f](../numpyvae/nope.py#L1) "
                    "tests/reference/test_kl.py::test_kl_known_values tests/reference/test_kl.py::test_nothing")
    assert stale_code_links(page) == [
        f"numpyvae/reference/kl.py#L{line + 1}: kl_forward is defined on line {line}",
        f"numpyvae/reference/optim.py#L1: Adam.step is defined on line "
        f"{defined_names(ROOT / 'numpyvae/reference/optim.py')['Adam.step']}",
        "numpyvae/nope.py does not exist"]
    assert missing_tests(page) == ["tests/reference/test_kl.py::test_nothing"]


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["docs/gradient-checking.md"]:
        run_blocks(ROOT / arg)

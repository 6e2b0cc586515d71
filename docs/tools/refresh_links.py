"""Rewrite the line numbers of code links in docs/math-to-code.md.

Links look like ``[name](../numpyvae/module.py#L<line>)`` or, for a module
in a folder, ``[name](../numpyvae/reference/kl.py#L<line>)``; each points at
the ``def``/``class`` line of `name` (``Class.method`` for a method).
Run after moving code: ``python docs/tools/refresh_links.py``; the test
``tests/test_docs.py::test_math_to_code_links_point_at_def_lines``
fails until it is run.
"""

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(\[`?([\w.]+)`?\]\(\.\./(numpyvae/(?:\w+/)*\w+\.py)#L)(\d+)(\))")


def defined_names(module: Path) -> dict[str, int]:
    """Qualified name -> line of every function and class in `module`."""
    names = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)):
                names[prefix + child.name] = child.lineno
                visit(child, prefix + child.name + ".")

    visit(ast.parse(module.read_text()), "")
    return names


def refresh(page: Path) -> int:
    text = page.read_text()
    cache: dict[str, dict[str, int]] = {}
    unknown = []

    def fix(match):
        name, module = match.group(2), match.group(3)
        if not (ROOT / module).exists():
            unknown.append(f"{module}: no such file")
            return match.group(0)
        names = cache.setdefault(module, defined_names(ROOT / module))
        if name not in names:
            unknown.append(f"{module}: {name}")
            return match.group(0)
        return f"{match.group(1)}{names[name]}{match.group(5)}"

    page.write_text(LINK.sub(fix, text))
    for item in unknown:
        print(f"not found: {item}", file=sys.stderr)
    return 1 if unknown else 0


if __name__ == "__main__":
    sys.exit(refresh(ROOT / "docs" / "math-to-code.md"))

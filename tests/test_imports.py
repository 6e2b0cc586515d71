"""No private name crosses a module line, in numpyvae/ and benchmarks/.

The rule (README.md, "Public and private names"):

* A name starting with "_" (a dunder such as ``__version__`` aside) is
  private to the module that defines it: no other module imports it
  (``from .plots import _save``) or reaches it as an attribute of an
  imported module (``fused_step._packed``).
* A module whose file name starts with "_" (``_validation.py``,
  ``_progress.py``, ``_memory.py``, ``_experiment_figures.py``) is
  private to the package: numpyvae's own modules may import it and use
  its public names (``from ._validation import check_int``,
  ``_progress.duration(...)``); nothing outside numpyvae/ (the
  benchmarks) imports it at all. What a benchmark needs is public
  (``numpyvae.fast.threads``, ``fused_eval.worker_threads``).

Only the project's own modules are judged (numpyvae and the benchmark
scripts, which import each other by file name); the standard library's
documented ``os._exit`` is not ours to rename.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "numpyvae"
BENCHMARK_MODULES = frozenset(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


def is_private(name: str) -> bool:
    """A leading underscore, not a dunder."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def project_module(node: ast.ImportFrom | ast.Import, name: str, local: frozenset) -> bool:
    """Whether the module `name` (as written in the import) is ours."""
    if isinstance(node, ast.ImportFrom) and node.level > 0:
        return True
    top = name.split(".")[0]
    return top == PACKAGE or top in local


def private_crossings(source: str, filename: str, in_package: bool,
                      local: frozenset = BENCHMARK_MODULES) -> list[str]:
    """Every cross-module use of a private name in `source`, as
    ``"file:line: what"``.

    `in_package` says whether the file is one of numpyvae's modules (it
    may then import the package's private modules); `local` names the
    sibling modules a script imports by file name.
    """
    found: list[str] = []
    imported: set[str] = set()  # local names bound to our modules or their objects

    def report(node, what):
        found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not project_module(node, alias.name, local):
                    continue
                parts = alias.name.split(".")
                if not in_package and any(is_private(p) for p in parts):
                    report(node, f"imports the private module {alias.name}")
                imported.add(alias.asname or parts[0])
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if not project_module(node, module, local):
                continue
            parts = [p for p in (node.module or "").split(".") if p]
            if not in_package and any(is_private(p) for p in parts):
                report(node, f"imports from the private module {module}")
            for alias in node.names:
                if is_private(alias.name):
                    # `from . import _progress` names a private module: the
                    # package's own modules may; a private name never
                    # crosses (`from .plots import _save`).
                    is_module = not parts and (ROOT / PACKAGE / f"{alias.name}.py").exists()
                    if not (is_module and in_package):
                        report(node, f"imports the private name {alias.name} from {module}")
                imported.add(alias.asname or alias.name)
    for node in ast.walk(ast.parse(source, filename)):
        if (isinstance(node, ast.Attribute) and is_private(node.attr)
                and isinstance(node.value, ast.Name) and node.value.id in imported):
            report(node, f"uses the private name {node.value.id}.{node.attr}")
    return sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1])))


def checked_files() -> list[Path]:
    return sorted((ROOT / PACKAGE).rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_crosses_a_module_line(path):
    in_package = path.is_relative_to(ROOT / PACKAGE)
    assert private_crossings(path.read_text(), str(path.relative_to(ROOT)), in_package) == []


def test_the_checker_finds_every_kind_of_crossing():
    code = (
        "import os\n"
        "from . import _progress, fused_step\n"
        "from ._validation import check_int\n"
        "from .plots import _pyplot, save_figure\n"
        "def f():\n"
        "    os._exit(0)\n"                         # the standard library's: not judged
        "    _progress.duration(1.0)\n"            # a private module's public name: fine
        "    fused_step._packed(1)\n"               # a private name of another module
        "    return _pyplot\n"
    )
    assert private_crossings(code, "numpyvae/m.py", in_package=True) == [
        "numpyvae/m.py:4: imports the private name _pyplot from .plots",
        "numpyvae/m.py:8: uses the private name fused_step._packed",
    ]


def test_outside_the_package_a_private_module_is_off_limits():
    code = (
        "import numpyvae._progress\n"
        "from numpyvae import _progress, estimators\n"
        "from numpyvae._validation import check_int\n"
        "from numpyvae.train import _first_nonfinite as first_nonfinite\n"
        "from defaults import _SIZES\n"
        "estimators.log_mean_weight(1)\n"
        "estimators._log_mean_weight(1)\n"
    )
    assert private_crossings(code, "benchmarks/b.py", in_package=False,
                             local=frozenset({"defaults"})) == [
        "benchmarks/b.py:1: imports the private module numpyvae._progress",
        "benchmarks/b.py:2: imports the private name _progress from numpyvae",
        "benchmarks/b.py:3: imports from the private module numpyvae._validation",
        "benchmarks/b.py:4: imports the private name _first_nonfinite from numpyvae.train",
        "benchmarks/b.py:5: imports the private name _SIZES from defaults",
        "benchmarks/b.py:7: uses the private name estimators._log_mean_weight",
    ]

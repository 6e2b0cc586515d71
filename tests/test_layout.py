"""The folders are the architecture: the import rules written in the
``__init__`` docstrings hold, imports run downhill, and the names read
well.

Each subpackage's ``__init__`` docstring ends with a line ``May import:``
(the top-level packages and numpyvae folders its modules may import;
``numpyvae`` alone means the modules at the top of the package) and, where it
matters, ``Imported only by:``. The top-level modules' rule stands in
numpyvae/__init__.py. Function-level imports count: a lazy import is
still an import.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "numpyvae"
SUBPACKAGES = ("reference", "fast", "checks", "app")
MAX_LINES = 500


def module_name(path: Path) -> str:
    """numpyvae/reference/kl.py -> 'numpyvae.reference.kl' (an __init__ is its package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
# The public faces: the package's __init__, the entry point, and the two
# modules users import by their old paths. They define nothing and may
# import from any folder (test_faces_define_nothing holds them to it).
FACES = ("numpyvae", "numpyvae.__main__", "numpyvae.gradcheck", "numpyvae.testing")


def resolve(node: ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    """The absolute modules an ``from ... import ...`` statement reads.

    ``from . import x`` names the submodule x when there is one, the
    package itself otherwise (``from numpyvae import __version__`` reads
    the package's __init__).
    """
    if node.level:
        base = here.split(".") if is_package else here.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    found = []
    for alias in node.names:
        sub = f"{prefix}.{alias.name}"
        found.append(sub if sub in MODULES else prefix)
    return found


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every (line, absolute module) imported anywhere in `path`."""
    here = module_name(path)
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [(node.lineno, m) for m in dict.fromkeys(resolve(node, here, is_package))]
    return out


def rule(docstring: str, label: str) -> list[str] | None:
    match = re.search(rf"^{label}:\s*(.+?)\.?\s*$", docstring, re.M)
    return [w.strip() for w in match.group(1).split(",")] if match else None


def package_of(module: str) -> str:
    """The folder whose rule binds `module`: a subpackage or 'numpyvae' (the top)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return f"numpyvae.{parts[1]}"
    return "numpyvae"


def rules() -> dict[str, dict[str, list[str] | None]]:
    out = {}
    for pkg in ("numpyvae", *(f"numpyvae.{s}" for s in SUBPACKAGES)):
        doc = ast.get_docstring(ast.parse(MODULES[pkg].read_text())) or ""
        out[pkg] = {"may": rule(doc, "May import"), "by": rule(doc, "Imported only by")}
    return out


RULES = rules()


def allowed(target: str, may: list[str]) -> bool:
    """Whether importing `target` is covered by a ``May import`` list.

    A third-party or standard-library module by its top-level name; a
    numpyvae module by its folder (``numpyvae`` = the modules at the top
    of the package) or by its own name; never the package's __init__.
    """
    top = target.split(".")[0]
    if top != "numpyvae":
        return top in may or top in sys.stdlib_module_names or top == "__future__"
    if target == "numpyvae":
        return False  # the package's __init__: only the public face reads it
    return package_of(target) in may or target in may


def test_every_folder_states_its_rule():
    for pkg, r in RULES.items():
        assert r["may"], f"{MODULES[pkg]}: its docstring has no 'May import:' line"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_folder_rules(name):
    """The reference imports only numpy, scipy and itself; the fast path
    is imported only by training and evaluation; the application by
    nothing below it; no module imports the package's __init__."""
    path = MODULES[name]
    if name in FACES:
        pytest.skip("a public face hands names on")
    may = RULES[package_of(name)]["may"]
    bad = []
    for line, target in imports_of(path):
        if not allowed(target, may):
            bad.append(f"{path.relative_to(ROOT)}:{line}: imports {target}")
            continue
        if target.startswith("numpyvae"):
            owner = RULES[package_of(target)]["by"]
            if owner and package_of(target) != package_of(name) and not any(
                    name == o.removesuffix(".__init__") or name.startswith(o + ".")
                    for o in owner):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {target}, "
                           f"which only {', '.join(owner)} may import")
    assert not bad, "\n".join(bad)


def test_the_reference_imports_only_numpy_scipy_and_itself():
    assert set(RULES["numpyvae.reference"]["may"]) == {"numpy", "scipy", "numpyvae.reference"}


def test_no_import_cycle():
    find_cycle({name: {t for _, t in imports_of(path) if t in MODULES and t != name}
                for name, path in MODULES.items() if name != "numpyvae"})


def find_cycle(graph: dict[str, set[str]]) -> None:
    """Raise AssertionError naming the first import cycle of `graph`."""
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_the_cli_is_the_top_of_the_application():
    """No verb's module (runs, sweeps, settings) imports the CLI."""
    users = sorted(name for name, path in MODULES.items() if name not in FACES
                   and any(t == "numpyvae.app.cli" for _, t in imports_of(path)))
    assert users == [], users


def test_a_cycle_is_found():
    """The cycle check can fail: two modules that import each other."""
    graph = {"a": {"b"}, "b": {"a"}}
    with pytest.raises(AssertionError, match="import cycle"):
        find_cycle(graph)


def test_the_rule_checker_catches_a_forbidden_import(tmp_path):
    """The checker itself can fail: a reference module importing the
    trainer, or anything importing the package's __init__, is refused."""
    assert not allowed("numpyvae.trainer", RULES["numpyvae.reference"]["may"])
    assert not allowed("numpyvae", RULES["numpyvae.app"]["may"])
    assert not allowed("matplotlib", RULES["numpyvae.reference"]["may"])
    assert allowed("numpyvae.reference.kl", RULES["numpyvae.fast"]["may"])
    node = ast.parse("from .. import __version__").body[0]
    assert resolve(node, "numpyvae.app.cli", False) == ["numpyvae"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_500_lines(name):
    n = len(MODULES[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {n} lines"


def test_no_two_module_names_differ_by_a_plural():
    stems = {p.stem for p in PACKAGE.rglob("*.py") if not p.stem.startswith("__")}
    pairs = sorted((s, s + "s") for s in stems if s + "s" in stems)
    assert not pairs, f"module names that differ by a plural: {pairs}"


def test_the_wheel_ships_py_typed():
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert (PACKAGE / "py.typed").exists()
    assert "py.typed" in cfg["options.package_data"]["numpyvae"]


@pytest.mark.parametrize("name", FACES)
def test_faces_define_nothing(name):
    """A face only imports and lists names (and __main__ calls main)."""
    tree = ast.parse(MODULES[name].read_text())
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Import", "Assign", "If"}, kinds
    for node in tree.body:
        if isinstance(node, ast.Assign):
            assert [t.id for t in node.targets if isinstance(t, ast.Name)] == ["__all__"]


def test_the_testing_face_hands_on_every_public_name():
    import numpyvae.checks.testing as inside
    import numpyvae.testing as face
    assert sorted(face.__all__) == sorted(inside.__all__)

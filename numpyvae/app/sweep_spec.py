"""The spec of a sweep: `load_spec` reads and checks the TOML spec
(its [base] and [grid] settings against `numpyvae.app.settings.SETTINGS`,
its [sweep] `OPTIONS`), and `grid_points` lists the runs it crosses,
each named by `run_name` after its grid values. The spec's format is in
the docstring of sweep.py, which runs the grid. Imports only the
standard library and settings.py.
"""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

from .settings import DEFAULTS, check_setting, check_together

OPTIONS = {"iwae_k": None, "run_pictures": False, "threads_per_run": 1}


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError("spec: reading TOML on Python 3.10 needs tomli "
                             "(pip install tomli)") from None
    if not path.is_file():
        raise FileNotFoundError(f"spec: expected a TOML file, got {str(path)!r} (no such file)")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"spec: {path} is not valid TOML: {e}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(table: dict, allowed, where: str) -> None:
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _table(doc: dict, name: str, path: Path) -> dict:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise ValueError(f"spec: {path}: expected [{name}] to be a table, got {table!r}")
    return table


def load_spec(path) -> dict:
    """Read and check a sweep spec; returns {"base", "grid", "options"}.

    base: every setting (defaults filled in) except the grid's; grid:
    setting -> list of values, in the file's order; options: `OPTIONS`.
    Raises FileNotFoundError, ValueError or TypeError naming the table
    and key at fault.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "spec.toml"
    >>> _ = path.write_text("[base]\\nepochs = 2\\n[grid]\\nbeta = [0.5, 1]\\n")
    >>> spec = load_spec(path)
    >>> spec["grid"], spec["base"]["epochs"], spec["options"]["iwae_k"]
    ({'beta': [0.5, 1.0]}, 2, None)
    """
    path = Path(path)
    doc = _read_toml(path)
    _check_keys(doc, ("base", "grid", "sweep"), f"spec: {path}: top level")
    base, grid, options = (_table(doc, name, path) for name in ("base", "grid", "sweep"))
    _check_keys(base, tuple(DEFAULTS), f"spec: {path}: [base]")
    _check_keys(grid, tuple(DEFAULTS), f"spec: {path}: [grid]")
    _check_keys(options, tuple(OPTIONS), f"spec: {path}: [sweep]")
    if not grid:
        raise ValueError(f"spec: {path}: [grid]: expected at least one setting with a list "
                         "of values, such as beta = [0.5, 1, 2]")
    settings = dict(DEFAULTS)
    for key, value in base.items():
        if key in grid:
            raise ValueError(f"spec: {path}: {key} is in both [base] and [grid]; give it once")
        settings[key] = check_setting(key, value, f"spec: {path}: [base]")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"spec: {path}: [grid] {key}: expected a non-empty list of values "
                             f"to cross, such as [0.5, 1, 2], got {values!r}")
        grid[key] = [check_setting(key, v, f"spec: {path}: [grid] {key} item")
                     for v in values]
        if len(set(map(repr, grid[key]))) < len(values):
            raise ValueError(f"spec: {path}: [grid] {key}: a value is repeated in {values!r}")
    return {"base": {k: v for k, v in settings.items() if k not in grid}, "grid": grid,
            "options": _options(options, path)}


def _options(options: dict, path: Path) -> dict:
    checked = dict(OPTIONS, **options)
    for key in ("iwae_k", "threads_per_run"):
        value = checked[key]
        if value is not None and not (_is_int(value) and value >= 1):
            raise ValueError(f"spec: {path}: [sweep] {key}: expected an integer >= 1, "
                             f"got {value!r}")
    if not isinstance(checked["run_pictures"], bool):
        raise TypeError(f"spec: {path}: [sweep] run_pictures: expected true or false, "
                        f"got {checked['run_pictures']!r}")
    return checked


def value_text(value) -> str:
    """The text of one grid value in a run's name and in the pictures'
    labels: a list (hidden) joined by ``-``, ``linear`` if empty; a float
    by repr.

    Examples
    --------
    >>> value_text([256, 128]), value_text([]), value_text(0.5), value_text("digits")
    ('256-128', 'linear', '0.5', 'digits')
    """
    if isinstance(value, list):
        return "-".join(map(str, value)) or "linear"
    return repr(value) if isinstance(value, float) else str(value)


def run_name(values: dict) -> str:
    """Folder name of a grid point: ``key=value`` joined by commas, with
    every character but letters, digits and ``. _ + -`` turned into ``_``.

    Examples
    --------
    >>> run_name({"beta": 0.5, "hidden": [256, 128], "data": "a/b.npz"})
    'beta=0.5,hidden=256-128,data=a_b.npz'
    """
    return ",".join(f"{key}={re.sub(r'[^A-Za-z0-9._+-]', '_', value_text(value))}"
                    for key, value in values.items())


def grid_points(spec: dict) -> list[tuple[str, dict, dict]]:
    """(name, grid values, settings) of every run, in grid order.

    Examples
    --------
    >>> spec = {"base": {"epochs": 1}, "grid": {"beta": [0.5, 1.0], "seed": [0, 1]}}
    >>> [name for name, values, settings in grid_points(spec)]
    ['beta=0.5,seed=0', 'beta=0.5,seed=1', 'beta=1.0,seed=0', 'beta=1.0,seed=1']
    >>> grid_points(spec)[1][2]
    {'epochs': 1, 'beta': 0.5, 'seed': 1}
    """
    keys = list(spec["grid"])
    points = []
    for combination in itertools.product(*spec["grid"].values()):
        values = dict(zip(keys, combination, strict=True))
        settings = dict(spec["base"], **values)
        check_together(dict(DEFAULTS, **settings), settings, f"spec: run {run_name(values)}: ")
        points.append((run_name(values), values, settings))
    names = [name for name, _, _ in points]
    if len(set(names)) < len(names) or max(map(len, names)) > 200:
        raise ValueError("spec: [grid]: its values do not give distinct folder names of at "
                         "most 200 characters; use shorter, distinct values")
    return points

"""What every experiment of `numpyvae.app.experiments` records, and how.

An experiment begins with `start_experiment` (its common arguments
checked, its folder made, its result dict started) and ends with
`finish_experiment` (numbers and checks written to ``result.json``);
`mean_se` and `floats` turn samples into the numbers of that JSON.
Shared by the estimator experiments (experiments.py) and the extremes
(extremes.py); imports only numpy, the package version and
_validation, never an experiment.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .._atomic import write_text_atomic
from .._validation import check_int
from ..version import __version__

Array = NDArray[np.floating]


def start_experiment(name: str, out_dir, seed: int, claim: str,
                     config: dict) -> tuple[dict, Path]:
    """Validate the common arguments; the result dict to fill; the folder.

    Parameters
    ----------
    name : str
        The experiment's name, one of `numpyvae.app.experiments.EXPERIMENTS`.
    out_dir : str or path
        Its folder, created if needed.
    seed : int
        Seed of its one generator, >= 0.
    claim : str
        The claim of the notes it checks, in words.
    config : dict
        All its settings, JSON-ready.

    Returns
    -------
    result : dict
        ``experiment, claim, seed, config, numpyvae_version``, to be
        completed by `finish_experiment`.
    out : Path
        The folder.

    Raises
    ------
    TypeError
        If `out_dir` is not a str or path.
    ValueError
        If `seed` is negative (TypeError if it is not an int).
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a str or path, got {type(out_dir).__name__}")
    seed = check_int(seed, "seed", 0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"experiment": name, "claim": claim, "seed": seed, "config": config,
              "numpyvae_version": __version__}
    return result, out


def finish_experiment(result: dict, out: Path, results: dict, checks: dict) -> dict:
    """Record numbers and checks, write result.json, return the dict.

    `checks` become booleans and ``result["passed"]`` says whether all
    hold; ``result["figure"]`` is None unless a figure was saved.
    """
    result["results"] = results
    result["checks"] = {k: bool(v) for k, v in checks.items()}
    result["passed"] = all(result["checks"].values())
    result.setdefault("figure", None)
    write_text_atomic(out / "result.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def mean_se(a: Array) -> tuple[float, float]:
    """Mean and standard error of the mean of a 1-d sample."""
    a = np.asarray(a, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))


def floats(a) -> list[float]:
    """The entries of an array, flattened, as Python floats (for JSON)."""
    return [float(v) for v in np.asarray(a).ravel()]


"""The numbers of docs/sklearn.md: run its example, keep them as a record.

Runs the page's python block exactly as written (with
`tests/test_docs.py`'s `run_blocks`, the runner the docs tests use:
one fresh namespace), reads the variables the page quotes in its
comments (`best`, `elbo_cv`, `elbo_test`, `accuracy`), and writes a JSON
record: the numbers at the precision the page prints them and in full,
the command, the date, the seconds taken and the machine (platform,
CPU, cores, Python, NumPy, scikit-learn). docs/sklearn.md quotes the
record; `tests/app/test_sklearn_estimator.py` checks that the page and
the record agree and that a rerun reproduces the record.

Usage (about 3 s; needs scikit-learn)::

    python benchmarks/sklearn_example.py --json benchmarks/results/sklearn-example.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "sklearn.md"
RECORD = ROOT / "benchmarks" / "results" / "sklearn-example.json"
# The decimals docs/sklearn.md prints each number with.
DECIMALS = {"elbo_cv": 1, "elbo_test": 1, "accuracy": 3}


def run_example() -> dict:
    """The namespace of docs/sklearn.md's python block after it ran."""
    sys.path.insert(0, str(ROOT))  # run from a checkout
    sys.path.insert(0, str(ROOT / "tests"))
    from test_docs import run_blocks
    return run_blocks(PAGE)


def printed(namespace: dict) -> dict:
    """The quoted variables as the page prints them: `best` as a dict with
    sorted keys, each number rounded to its `DECIMALS`.

    Examples
    --------
    >>> printed({"best": {"b": 1, "a": 2}, "elbo_cv": -27.74, "elbo_test": -26.14,
    ...          "accuracy": 0.80833})
    {'best': {'a': 2, 'b': 1}, 'elbo_cv': -27.7, 'elbo_test': -26.1, 'accuracy': 0.808}
    """
    numbers = {name: round(float(namespace[name]), d) for name, d in DECIMALS.items()}
    return {"best": dict(sorted(namespace["best"].items())), **numbers}


def machine() -> dict:
    """Where the numbers were computed."""
    import numpy
    import sklearn
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from machine_info import cpu_name
    return {"platform": platform.platform(), "cpu": cpu_name(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__}


def record(argv: list[str]) -> dict:
    """Run the example once; the JSON record of its numbers."""
    start = time.perf_counter()
    namespace = run_example()
    seconds = time.perf_counter() - start
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(["python", "benchmarks/sklearn_example.py", *argv]),
            "example": "docs/sklearn.md, its python block, run as written",
            "printed": printed(namespace),
            "values": {name: float(namespace[name]) for name in DECIMALS},
            "seconds": round(seconds, 2), "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None,
                        help=f"write the record here (e.g. {RECORD.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    result = record(argv)
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared test configuration: hypothesis profiles and data location.

Profiles: "thorough" for local runs (many examples), "ci" when the CI
environment variable is set (fewer examples, derandomized, no deadline),
so the suite stays within its time budget on 2 cores.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "thorough", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("NUMPYVAE_HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "thorough"))


def mnist_path() -> Path | None:
    """$NUMPYVAE_DATA/mnist.npz if it exists, else None."""
    root = os.environ.get("NUMPYVAE_DATA")
    if root and (Path(root) / "mnist.npz").is_file():
        return Path(root) / "mnist.npz"
    return None


@pytest.fixture
def mnist_file():
    """Path to mnist.npz, or skip with the reason."""
    path = mnist_path()
    if path is None:
        pytest.skip(MNIST_SKIP)
    return path


MNIST_SKIP = "MNIST not found: set NUMPYVAE_DATA to a folder holding mnist.npz"


def pytest_report_header(config):
    """Say at the top whether the MNIST tests will run."""
    path = mnist_path()
    if path is not None:
        return f"MNIST: {path} (the MNIST tests run)"
    return ("MNIST: not found, the MNIST tests skip; run them with "
            "NUMPYVAE_DATA=<folder holding mnist.npz> python -m pytest")


def pytest_terminal_summary(terminalreporter):
    """Say at the end how many tests skipped for want of MNIST."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if MNIST_SKIP in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} MNIST tests skipped: {MNIST_SKIP}",
                                    yellow=True)

"""The doctests of the pictures need matplotlib (the ``viz`` extra); without
it they are skipped, as the tests of tests/ skip with importorskip."""

import importlib.util

import pytest
from _pytest.doctest import DoctestItem

PICTURE_DOCTESTS = ("numpyvae.app.plots.", "numpyvae.app.run_pictures.write_pictures",
                    "numpyvae.app.sweep_pictures.plot_")


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("matplotlib") is not None:
        return
    skip = pytest.mark.skip(reason='needs matplotlib: pip install "numpyvae[viz]"')
    for item in items:
        if isinstance(item, DoctestItem) and item.name.startswith(PICTURE_DOCTESTS):
            item.add_marker(skip)

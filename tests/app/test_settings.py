"""Tests of numpyvae/app/settings.py: the run settings are defined once, and
the command line, the sweep spec, config.json and the docs all read them;
and the package's imports run downhill, with no cycle."""

import math
import re
from pathlib import Path

import pytest

import numpyvae
from numpyvae.app import settings
from numpyvae.app.cli import build_parser
from numpyvae.datasets import BINARIZE_MODES
from numpyvae.reference.activations import ACTIVATIONS
from numpyvae.reference.config import INIT_SCHEMES
from numpyvae.vae import LIKELIHOODS

PACKAGE = Path(numpyvae.__file__).parent
DOCS = PACKAGE.parent / "docs"


def train_parser():
    return build_parser()._subparsers._group_actions[0].choices["train"]


def test_every_setting_is_a_train_flag_with_its_choices_and_help():
    actions = {a.dest: a for a in train_parser()._actions}
    for setting in settings.SETTINGS:
        action = actions[setting.name]
        assert setting.flag in action.option_strings
        assert action.default is None  # unset flags fall back to the settings' defaults
        assert setting.help in action.help
        if setting.kind == "text" and setting.choices:
            assert tuple(action.choices) == setting.choices


def test_the_choices_are_those_of_the_modules_that_use_them():
    by_name = settings.BY_NAME
    assert by_name["activation"].choices == ACTIVATIONS
    assert by_name["likelihood"].choices == LIKELIHOODS
    assert by_name["binarize"].choices == BINARIZE_MODES
    assert by_name["init"].choices == INIT_SCHEMES


def test_defaults_are_valid_settings():
    assert settings.check_settings(dict(settings.DEFAULTS), "defaults") == settings.DEFAULTS


@pytest.mark.parametrize("name, value, error, text", [
    ("lr", math.nan, ValueError, "expected a finite number, got nan"),
    ("beta", math.inf, ValueError, "expected a finite number, got inf"),
    ("latent_dim", 0, ValueError, "expected an integer >= 1, got 0"),
    ("latent_dim", 2.0, TypeError, "expected an integer"),
    ("hidden", [16, 0], ValueError, "layer widths >= 1"),
    ("hidden", 16, TypeError, "layer widths"),
    ("init_output_bias", 1, TypeError, "true or false"),
    ("dtype", "float16", ValueError, "expected one of ('float32', 'float64')"),
])
def test_a_bad_value_is_refused_naming_the_setting(name, value, error, text):
    with pytest.raises(error, match=f"^where {name}: .*{re.escape(text)}"):
        settings.check_setting(name, value, "where")


def test_sweeps_doc_lists_every_setting_with_its_kind():
    text = (DOCS / "sweeps.md").read_text()
    block = text.split("<!-- settings -->")[1]
    listed = re.findall(r"^\| `(\w+)` \| (\w+) \|", block, re.M)
    assert listed == [(s.name, s.kind) for s in settings.SETTINGS]


def test_main_job_doc_lists_every_flag():
    text = (DOCS / "main-job.md").read_text()
    for setting in settings.SETTINGS:
        assert f"`{setting.flag}`" in text or f"`{setting.flag} /" in text, setting.flag

"""The settings of a training run, defined once.

A run of ``numpyvae train`` (and each run of ``numpyvae sweep``) is
described by the settings in `SETTINGS`: each `Setting` gives its name,
kind, default, choices and help text. The command-line flags
(`numpyvae.app.cli`), the keys a sweep spec accepts (`numpyvae.app.sweep`), the
keys of a run folder's config.json (`numpyvae.app.runs`) and the key list of
docs/sweeps.md are all read from here (the last is checked by a test).

Kinds: "int" (an integer >= `minimum`), "float" (a finite number, or
None where the default is None), "text" (one of `choices` when there
are choices), "bool", and "widths" (a list of layer widths >= 1, [] for
a linear encoder and decoder, or None where the default is None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..datasets import BINARIZE_MODES
from ..reference.activations import ACTIVATIONS
from ..reference.config import INIT_SCHEMES
from ..vae import LIKELIHOODS

DTYPES = ("float32", "float64")
OBJECTIVES = ("elbo", "iwae")
LR_SCHEDULES = ("constant", "iwae")


@dataclass(frozen=True)
class Setting:
    """One run setting: its flag is ``--`` + name with ``-`` for ``_``.

    Examples
    --------
    >>> setting = Setting("batch_size", "int", 32, "examples per Adam step", minimum=1)
    >>> setting.flag
    '--batch-size'
    """

    name: str
    kind: str
    default: object
    help: str
    choices: tuple | None = None
    minimum: int | None = None
    before: object = "default"  # what numpyvae did before it had this setting

    @property
    def missing(self) -> object:
        """The value of this setting in a record written before it existed."""
        return self.default if self.before == "default" else self.before

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# Defaults measured with ``numpyvae train`` on 2 cores: see docs/main-job.md.
SETTINGS = (
    Setting("data", "text", "digits", "'digits' (embedded 8x8), 'mnist' (from "
            "$NUMPYVAE_DATA or the cache) or the path of an .npz file"),
    Setting("epochs", "int", 200, "total epochs, also when resuming", minimum=1),
    Setting("latent_dim", "int", 2, "size of z", minimum=1),
    Setting("latent_dims", "widths", None, "two stochastic layers: the sizes of z1 and z2, "
            "e.g. 100,50 (the IWAE paper's second architecture; replaces latent_dim)"),
    Setting("hidden2", "widths", None, "with latent_dims: the hidden widths between z1 and "
            "z2 (None: two layers of the size of z2, as in the paper)"),
    Setting("hidden", "widths", [128], "hidden widths, e.g. 128 or 256,128; '' for "
            "a linear encoder and decoder"),
    Setting("activation", "text", "relu", "hidden-layer activation", ACTIVATIONS),
    Setting("likelihood", "text", "bernoulli", "the decoder", LIKELIHOODS),
    Setting("sigma", "float", None, "the gaussian decoder's fixed std (None: 1)"),
    Setting("beta", "float", 1.0, "KL weight (1 is the ELBO)"),
    Setting("batch_size", "int", 32, "examples per Adam step", minimum=1),
    Setting("lr", "float", 3e-3, "Adam learning rate"),
    Setting("seed", "int", 0, "the one seed of weights, training and pictures", minimum=0),
    Setting("dtype", "text", "float32", "float type of the model", DTYPES),
    Setting("binarize", "text", "none", "grey levels (none), a fresh Bernoulli draw of "
            "every batch (dynamic) or one fixed draw (static)", BINARIZE_MODES,
            before="none"),
    Setting("objective", "text", "elbo", "the negative ELBO or the IWAE bound with k "
            "samples", OBJECTIVES),
    Setting("k", "int", 1, "IWAE samples per example", minimum=1),
    Setting("lr_schedule", "text", "constant", "constant, or the IWAE paper's "
            "3^i-epoch stages compressed into the epochs", LR_SCHEDULES),
    Setting("adam_epsilon", "float", 1e-8, "Adam's epsilon"),
    Setting("init_output_bias", "bool", True, "start the decoder's output bias at the "
            "training mean pixel (measured in docs/results.md)", before=False),
    Setting("init", "text", "auto", "weight initialisation: auto (PyTorch's nn.Linear "
            "scale U(+-1/sqrt(fan_in)) for relu networks, Glorot for the others; chosen by "
            "measurement, docs/results.md), he (He before relu, Glorot elsewhere) or lecun "
            "(U(+-1/sqrt(fan_in)) everywhere)",
            INIT_SCHEMES, before="he"),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}

EXPECTED = {"int": "an integer", "float": "a finite number", "text": "a string",
            "bool": "true or false",
            "widths": "a list of layer widths >= 1 such as [128] ([] for linear)"}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_setting(name: str, value, where: str):
    """`value` checked for setting `name`; ints as ints, numbers as floats.

    Raises TypeError for a value of the wrong kind and ValueError for one
    out of range (below `minimum`, NaN or inf, not among the choices),
    each message starting with `where` and the setting's name.

    Examples
    --------
    >>> check_setting("beta", 2, "[base]")
    2.0
    >>> check_setting("lr", float("nan"), "[grid] lr item")
    Traceback (most recent call last):
        ...
    ValueError: [grid] lr item lr: expected a finite number, got nan
    >>> check_setting("binarize", "sometimes", "config.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: config.json binarize: expected one of ('none', 'dynamic', 'static'), ...
    """
    setting = BY_NAME[name]
    kind, prefix = setting.kind, f"{where} {name}"
    if kind in ("float", "widths") and value is None and setting.default is None:
        return None
    ok = {"int": _is_int(value), "float": _is_int(value) or isinstance(value, float),
          "text": isinstance(value, str), "bool": isinstance(value, bool),
          "widths": isinstance(value, list) and all(map(_is_int, value))}[kind]
    if not ok:
        raise TypeError(f"{prefix}: expected {EXPECTED[kind]}, got {value!r}")
    if kind == "float" and not math.isfinite(value):
        raise ValueError(f"{prefix}: expected a finite number, got {value!r}")
    if kind == "int" and value < setting.minimum:
        raise ValueError(f"{prefix}: expected an integer >= {setting.minimum}, got {value}")
    if kind == "widths" and value and min(value) < 1:
        raise ValueError(f"{prefix}: expected {EXPECTED[kind]}, got {value!r}")
    if setting.choices is not None and value not in setting.choices:
        raise ValueError(f"{prefix}: expected one of {setting.choices}, got {value!r}")
    return float(value) if kind == "float" else list(value) if kind == "widths" else value


def check_settings(settings: dict, where: str, record: bool = False) -> dict:
    """Every setting, each checked (`check_setting`); no other key.

    A setting missing from `settings` takes its default; with `record`
    (a config.json or checkpoint of an older numpyvae, written before the
    setting existed) it takes what that numpyvae did instead
    (`Setting.missing`: ``init`` "he", ``init_output_bias`` false, as
    before those settings were added), never today's default.

    Examples
    --------
    >>> check_settings({"seed": 3}, "config.json") == dict(DEFAULTS, seed=3)
    True
    >>> old = check_settings({"seed": 3}, "config.json", record=True)
    >>> old["init"], old["init_output_bias"], old["binarize"]
    ('he', False, 'none')
    >>> check_settings({"sede": 3}, "config.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: config.json: unknown setting 'sede'; allowed: data, epochs, ...
    """
    if not isinstance(settings, dict):
        raise ValueError(f"{where}: expected a JSON object of settings, got {settings!r}")
    unknown = [key for key in settings if key not in DEFAULTS]
    if unknown:
        raise ValueError(f"{where}: unknown setting {unknown[0]!r}; allowed: "
                         f"{', '.join(DEFAULTS)}")
    fill = {s.name: s.missing for s in SETTINGS} if record else DEFAULTS
    return {name: check_setting(name, settings.get(name, fill[name]), where)
            for name in DEFAULTS}


def check_together(settings: dict, given, where: str = "") -> None:
    """Refuse settings that mean nothing together: `given` holds the names
    set explicitly (flags, a spec's keys), `settings` all of them.

    Examples
    --------
    >>> check_together(dict(DEFAULTS, latent_dims=[4, 2]), {"latent_dims"})
    >>> check_together(dict(DEFAULTS, latent_dims=[4, 2], latent_dim=7),
    ...                {"latent_dims", "latent_dim"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: --latent-dim: not used with --latent-dims [4, 2] (which sets ...
    """
    def refuse(name: str, why: str):
        raise ValueError(f"{where}{BY_NAME[name].flag}: {why}; leave it out")

    two_layers = settings.get("latent_dims") is not None
    if two_layers and "latent_dim" in given:
        refuse("latent_dim", f"not used with --latent-dims {settings['latent_dims']} (which "
               "sets the sizes of z1 and z2)")
    if not two_layers and settings.get("hidden2") is not None:
        refuse("hidden2", "only used with --latent-dims (two stochastic layers)")
    if two_layers and settings.get("sigma") is not None:
        refuse("sigma", "the two-layer model (--latent-dims) has a Bernoulli decoder, "
               "which has no sigma")
    if settings.get("sigma") is not None and settings.get("likelihood") != "gaussian":
        refuse("sigma", "the fixed std of a gaussian decoder, but --likelihood is "
               f"{settings.get('likelihood')!r}")

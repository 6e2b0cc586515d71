"""From a run's settings to its model and trainer, new or resumed.

`new_trainer` builds the model (`new_model`: one stochastic layer or
two, `two_layer_sizes`) and Adam that a settings dict describes, seeded
by its seed (`generators`), after `check_memory` has refused a run too
large for the machine (`estimate_memory`). A run continued from its
checkpoint gets its trainer back (`resume_trainer`) and its settings
checked against what the checkpoint holds (`resume_settings`,
`stored_settings`, `read_settings`). Imports the models, optim.py,
train.py, settings.py, checkpoint.py and run_folder.py (the file names).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .._memory import available_memory, size_text
from ..checkpoint import model_kind
from ..hierarchical_vae import HierarchicalVAE
from ..protocol import Model
from ..reference.config import VAEConfig
from ..reference.hierarchical_vae import HierarchyConfig
from ..reference.optim import Adam
from ..trainer import Trainer, trainer_from_checkpoint
from ..vae import VAE
from .run_folder import CHECKPOINT_FILE, CONFIG_FILE, new_names, read_json
from .settings import DEFAULTS, check_settings

Array = NDArray[np.floating]


def generators(seed: int) -> tuple[np.random.Generator, ...]:
    """Independent generators for the weights, the training and the pictures.

    Examples
    --------
    >>> init_rng, train_rng, picture_rng = generators(0)
    >>> bool(init_rng.random() == generators(0)[0].random())
    True
    >>> bool(init_rng.random() == train_rng.random())
    False
    """
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def new_trainer(settings: dict, x_train: Array) -> Trainer:
    """A fresh model and Adam from `settings`, seeded by settings["seed"].

    Examples
    --------
    >>> settings = dict(DEFAULTS, hidden=[8], latent_dim=3)
    >>> x_train = np.random.default_rng(0).random((20, 64)).astype("float32")
    >>> trainer = new_trainer(settings, x_train)
    >>> trainer.model.config.latent_dim, trainer.model.config.hidden
    (3, (8,))
    """
    check_memory(settings, x_train.shape[1])
    init_rng, train_rng, _ = generators(settings["seed"])
    model = new_model(settings, x_train.shape[1], init_rng)
    if settings["init_output_bias"]:
        model.init_output_bias(x_train)
    optimizer = Adam(lr=settings["lr"], epsilon=settings["adam_epsilon"])
    return Trainer(model, optimizer, beta=settings["beta"], batch_size=settings["batch_size"],
                   rng=train_rng, objective=settings["objective"], k=settings["k"],
                   binarize="dynamic" if settings["binarize"] == "dynamic" else "none",
                   lr_schedule=settings["lr_schedule"])


def two_layer_sizes(settings: dict) -> tuple[list[int], list[int]] | None:
    """``(latent_dims, hidden2)`` of a run with two stochastic layers, its
    hidden2 resolved (None: two layers of the size of z2, as in the IWAE
    paper); None for a one-layer run. Refuses what only one kind takes.

    Examples
    --------
    >>> two_layer_sizes(dict(DEFAULTS, latent_dims=[100, 50]))
    ([100, 50], [50, 50])
    >>> two_layer_sizes(DEFAULTS) is None
    True
    """
    latent_dims, hidden2 = settings.get("latent_dims"), settings.get("hidden2")
    if latent_dims is None:
        if hidden2 is not None:
            raise ValueError(f"--hidden2: only used with --latent-dims (two stochastic "
                             f"layers); leave it out, got {hidden2}")
        return None
    if len(latent_dims) != 2:
        raise ValueError(f"--latent-dims: expected the two sizes of z1 and z2, such as "
                         f"100,50; got {latent_dims}")
    if settings.get("sigma") is not None:
        raise ValueError("--sigma: the two-layer model (--latent-dims) has a Bernoulli "
                         "decoder, which has no sigma; leave it out")
    return list(latent_dims), list(hidden2) if hidden2 is not None else [latent_dims[1]] * 2


def new_model(settings: dict, input_dim: int, rng: np.random.Generator) -> Model:
    """The model `settings` describe, its weights drawn from `rng`: two
    stochastic layers (`HierarchicalVAE`) when latent_dims is set, else a
    `VAE` with latent_dim units.

    Examples
    --------
    >>> settings = dict(DEFAULTS, latent_dims=[4, 2])
    >>> model = new_model(settings, 64, np.random.default_rng(0))
    >>> model.config.latent_dims, model.config.hidden2
    ((4, 2), (2, 2))
    """
    two_layers = two_layer_sizes(settings)
    if two_layers is not None:
        latent_dims, hidden2 = two_layers
        return HierarchicalVAE(input_dim, latent_dims, hidden=settings["hidden"],
                               hidden2=hidden2, activation=settings["activation"],
                               likelihood=settings["likelihood"], dtype=settings["dtype"],
                               rng=rng, init=settings["init"])
    return VAE(input_dim, settings["latent_dim"], hidden=settings["hidden"],
               activation=settings["activation"], likelihood=settings["likelihood"],
               sigma=settings["sigma"], dtype=settings["dtype"], rng=rng,
               init=settings["init"])


def model_settings(config: dict) -> dict:
    """The run settings of a model's architecture, from its
    ``config.to_dict()`` (whose "model" key names the kind of model,
    `checkpoint.model_kind`).

    Examples
    --------
    >>> model_settings(VAE(64, 3, hidden=(8,)).config.to_dict())
    {'latent_dim': 3, 'hidden': [8]}
    >>> two = HierarchicalVAE(64, (4, 2), hidden=(8,), hidden2=(2,))
    >>> model_settings(two.config.to_dict())
    {'latent_dims': [4, 2], 'hidden2': [2], 'hidden': [8]}
    """
    if model_kind(config) == "hierarchical":
        sizes = {"latent_dims": list(config["latent_dims"]), "hidden2": list(config["hidden2"])}
    else:
        sizes = {"latent_dim": config["latent_dim"]}
    return {**sizes, "hidden": list(config["hidden"])}


def resume_trainer(ckpt) -> Trainer:
    """The trainer of checkpoint `ckpt`, its history under today's names."""
    trainer = trainer_from_checkpoint(ckpt)
    trainer.history = [new_names(row) for row in trainer.history]
    return trainer


def stored_settings(ckpt) -> dict | None:
    """The run settings stored in checkpoint `ckpt` by `train_run`, or None
    for a checkpoint written before they were stored."""
    extra = ckpt.meta.get("extra")
    settings = extra.get("settings") if isinstance(extra, dict) else None
    return None if settings is None else check_settings(settings, "checkpoint settings", record=True)


def _trainer_view(trainer: Trainer) -> dict:
    """The settings a trainer itself holds, by setting name."""
    config = trainer.model.config
    return {**model_settings(config.to_dict()),
            "activation": config.activation, "likelihood": config.likelihood,
            "dtype": config.dtype, "beta": float(trainer.beta),
            "batch_size": trainer.batch_size, "objective": trainer.objective,
            "k": trainer.k, "lr_schedule": trainer.lr_schedule}


def _differences(a: dict, b: dict, keys) -> list[str]:
    return [f"{key} ({a[key]!r} against {b[key]!r})" for key in keys if a[key] != b[key]]


def resume_settings(folder, ckpt, trainer: Trainer, flags: dict) -> dict:
    """The settings of the run in `folder`, continued to flags["epochs"].

    The checkpoint's stored settings are the run's (for an older
    checkpoint, config.json checked against the model and trainer it
    holds). config.json must say the same, apart from epochs; a flag other
    than epochs must agree; epochs may not be fewer than those done.

    Raises ValueError naming the file and the differing settings.
    """
    folder = Path(folder)
    config = read_settings(folder / CONFIG_FILE)
    truth = stored_settings(ckpt) or config
    keys = [key for key in DEFAULTS if key != "epochs"]
    two_layers = two_layer_sizes(truth)
    resolved = truth if two_layers is None else dict(truth, hidden2=two_layers[1])
    differ = (_differences(config, truth, keys)
              or _differences(_trainer_view(trainer), resolved, _trainer_view(trainer)))
    if differ:
        raise ValueError(f"--resume: {folder / CONFIG_FILE} does not describe the model in "
                         f"{folder / CHECKPOINT_FILE}: {', '.join(differ)}, config.json "
                         "against checkpoint; restore config.json, or start a new run")
    for key, value in flags.items():
        if key != "epochs" and value != truth[key]:
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag}: the run in {folder} has {truth[key]!r}, got "
                             f"{value!r}; a resumed run keeps its settings, leave {flag} out")
    epochs = flags.get("epochs", config["epochs"])
    if trainer.steps_done > 0 and epochs <= trainer.epochs_done:
        raise ValueError(f"--epochs: the checkpoint in {folder} is inside epoch "
                         f"{trainer.epochs_done + 1} (step {trainer.steps_done}), got {epochs}; "
                         f"expected at least {trainer.epochs_done + 1}, so that the epoch "
                         "begun is finished and the records describe the checkpoint")
    if epochs < trainer.epochs_done:
        raise ValueError(f"--epochs: the run in {folder} has done {trainer.epochs_done} epochs, "
                         f"got {epochs}; --epochs counts all epochs, so expected at least "
                         f"{trainer.epochs_done}")
    return dict(truth, epochs=epochs)


def read_settings(path) -> dict:
    """A config.json's settings, checked (`numpyvae.app.settings.check_settings`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected the config.json of a run "
                                "folder written by numpyvae train")
    return check_settings(read_json(path), str(path), record=True)


def estimate_memory(settings: dict, input_dim: int, n_val: int = 1000) -> dict:
    """Bytes a run of `settings` needs beyond its data, by part.

    parameters: the model's arrays; optimizer: their gradient and Adam's
    two moments (3x); activations: the forward caches and their gradients
    of one step, for batch_size x k rows (the IWAE decodes k samples of
    each example) or the validation batch, whichever is larger.

    Examples
    --------
    >>> parts = estimate_memory(dict(DEFAULTS, hidden=[10], latent_dim=2), 4)
    >>> parts["parameters"] == 4 * (4 * 10 + 10 + 2 * (10 * 2 + 2) + 2 * 10 + 10 + 10 * 4 + 4)
    True
    >>> parts["optimizer"] == 3 * parts["parameters"]
    True
    """
    two_layers = two_layer_sizes(settings)
    config: VAEConfig | HierarchyConfig
    if two_layers is None:
        config = VAEConfig(input_dim, settings["latent_dim"], tuple(settings["hidden"]))
        widths = sum(settings["hidden"])
    else:
        latent_dims, hidden2 = two_layers
        config = HierarchyConfig(input_dim, tuple(latent_dims), tuple(settings["hidden"]),
                                 tuple(hidden2))
        widths = sum(settings["hidden"]) + sum(hidden2)
    itemsize = 8 if settings["dtype"] == "float64" else 4
    n_params = sum(math.prod(shape) for shape in config.param_shapes().values())
    rows = max(settings["batch_size"] * settings["k"], min(n_val, 1000))
    per_row = 4 * widths + 6 * config.noise_dim + 4 * input_dim
    return {"parameters": itemsize * n_params, "optimizer": 3 * itemsize * n_params,
            "activations": 2 * itemsize * rows * per_row}


def check_memory(settings: dict, input_dim: int, available: int | None = None) -> int:
    """Refuse (ValueError, with the numbers) a run that needs more memory
    than is available (`available_memory` by default); returns its bytes.

    Examples
    --------
    >>> check_memory(dict(DEFAULTS, hidden=[3_000_000_000]), 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: --hidden, --latent-dim, --batch-size, --k: this run needs about ... GiB ...
    """
    parts = estimate_memory(settings, input_dim)
    need = sum(parts.values())
    if available is None:
        available = available_memory()
    if available is not None and need > available:
        detail = ", ".join(f"{name} {size_text(n)}" for name, n in parts.items())
        sizes = ("--hidden, --latent-dim" if two_layer_sizes(settings) is None
                 else "--hidden, --latent-dims, --hidden2")
        raise ValueError(f"{sizes}, --batch-size, --k: this run needs about "
                         f"{size_text(need)} ({detail}) but {size_text(available)} is "
                         "available; choose smaller sizes")
    return need

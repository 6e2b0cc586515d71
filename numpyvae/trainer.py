"""The Trainer: one training step and everything a run needs to go on.

A `Trainer` holds the model, the optimizer, the generator, the position
inside the current epoch and the history; `Trainer.train_step` is one
step, `run_epoch` / `end_epoch` an epoch, `state_dict` what a checkpoint
stores, `trainer_from_checkpoint` the way back. The loop over epochs
(checkpoints, Ctrl-C, progress, `fit`) is in train.py.

One argument chooses the code that runs the step. ``fast=False`` runs
the reference, for any model: draw eps, the model's loss and its
backward (`model.loss_forward` / `loss_backward`, or a bound head over
its log-weights), then `optim.Adam.step` -- the equations as the notes
and the papers write them (`Trainer.train_step`, the lines after
"reference"). ``fast=True`` (the default) swaps in, where it exists, the
fused form of the same step (`fused_step.py`: the one-layer model's
loss, its gradient and Adam in preallocated buffers), held equal to the
reference by tests/fast/test_fused_step.py and tests/test_train_reference.py.

All randomness -- the order of the data and every eps -- comes from one
`numpy.random.Generator`, whose state is part of the trainer's state: a
run saved after any step and resumed gives the same parameters, bit for
bit, as a run that never stopped.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ._validation import check_int
from .estimators import standard_error
from .fast import fused_step, threads
from .protocol import Model
from .reference.arrays import describe
from .reference.optim import Adam, iwae_learning_rate
from .vae import VAE, as_generator  # noqa: F401  (VAE: the doctests' model)

HISTORY_KEYS = ("epoch", "train_loss", "train_elbo", "train_log_lik", "train_kl",
                "val_elbo", "val_elbo_se", "val_log_lik", "val_kl", "seconds")


def _check_objective(objective: str, k: int, beta: float) -> tuple[str, int]:
    k = check_int(k, "k", 1)
    if objective == "elbo":
        if k != 1:
            raise ValueError(f"k: the 'elbo' objective uses one sample; got k={k} "
                             "(use objective='iwae' for k > 1)")
    elif objective == "iwae":
        if beta != 1:
            raise ValueError(f"beta: the 'iwae' objective has no KL weight; expected 1, "
                             f"got {beta}")
    else:
        raise ValueError(f"objective: expected 'elbo' or 'iwae', got {objective!r}")
    return objective, k


class TrainingDiverged(ValueError):
    """The loss or a gradient became NaN or inf; training stopped.

    Examples
    --------
    >>> issubclass(TrainingDiverged, ValueError)
    True
    """


def first_nonfinite(loss: float, grads: dict) -> str | None:
    """Name of the first non-finite quantity of a step, or None.

    Each gradient array is checked through its sum of squares, sum g^2:
    it is finite exactly when every entry is finite and the sum does not
    overflow the dtype. A gradient that large counts as divergence too:
    once one g^2 overflows, Adam's v is infinite and freezes that weight
    for good. One BLAS dot product per array (np.vdot flattens a
    contiguous array without a copy) is cheaper than a sum per array.
    """
    if not math.isfinite(loss):
        return f"loss ({loss})"
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is the answer here
        for name, g in grads.items():
            if math.isfinite(float(np.vdot(g, g))):
                continue
            if not np.isfinite(g).all():
                return f"gradient of {name}"
            return (f"the sum of squared gradients of {name} ({g.dtype} overflow; "
                    f"largest |g| {float(np.abs(g).max()):.3g})")
    return None


def mean_elbo_terms(model: Model, x, rng: np.random.Generator, batch_size: int = 1000) -> dict:
    """Mean ELBO, log-likelihood term and KL over `x` with sampled z (nats).

    log_lik = mean_i log p(x_i|z_i) with one z_i ~ q(z|x_i) each;
    kl = mean_i KL(q(.|x_i) || r) (exact for the one-layer model, sampled
    for the two-layer one: `model.elbo_terms`); elbo = log_lik - kl;
    elbo_se its standard error over the examples
    (`estimators.standard_error`).

    Examples
    --------
    >>> x = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    >>> scores = mean_elbo_terms(VAE(4, 2, hidden=(8,)), x, np.random.default_rng(1))
    >>> sorted(scores)
    ['elbo', 'elbo_se', 'kl', 'log_lik']
    >>> bool(np.isclose(scores["elbo"], scores["log_lik"] - scores["kl"]))
    True
    """
    x = model.as_input(x, "x_val")
    log_lik_sum = kl_sum = 0.0
    elbos = []
    for start in range(0, x.shape[0], batch_size):
        terms = model.elbo_terms(x[start:start + batch_size], rng)
        log_lik_sum += float(np.sum(terms["log_lik"], dtype=np.float64))
        kl_sum += float(np.sum(terms["kl"], dtype=np.float64))
        elbos.append(terms["log_lik"].astype(np.float64) - terms["kl"])
    n = x.shape[0]
    return {"elbo": (log_lik_sum - kl_sum) / n, "elbo_se": standard_error(np.concatenate(elbos)),
            "log_lik": log_lik_sum / n, "kl": kl_sum / n}


class Trainer:
    """Holds what a training run needs to continue: model, optimizer, the
    generator, the position inside the current epoch, and the history.

    Parameters
    ----------
    model : VAE or HierarchicalVAE (any model of protocol.py)
    optimizer : Adam or SGD, optional
        Default ``Adam(lr=1e-3)``.
    beta : float
        KL weight.
    batch_size : int
    rng : numpy.random.Generator or int, optional
        Data order and eps; None is seed 0.
    objective : {"elbo", "iwae"}
        "elbo": the (beta-weighted) negative ELBO of `model.py`. "iwae":
        the importance-weighted bound with `k` samples (`iwae.py`), beta 1.
    k : int
        Importance samples per example for "iwae" (1 for "elbo").
    binarize : {"none", "dynamic"}
        "dynamic" redraws every batch as Bernoulli(grey level) pixels from
        `rng` (the IWAE paper's protocol). A static binarization is a
        property of the data: apply `datasets.static_binarize` once.
    lr_schedule : {"constant", "iwae"}
        "iwae": the 3^i-epoch stages of `optim.iwae_learning_rate`, spread
        over `schedule_epochs` (default: the epochs of the first `train`).
    fast : bool
        True (the default): the fused step where the model has one
        (`fused_step.supports`); False: the reference step (module
        docstring). The two agree to rounding.

    Examples
    --------
    >>> x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    >>> from numpyvae.train import train
    >>> trainer = Trainer(VAE(4, 2, hidden=(8,)), batch_size=20, rng=1)
    >>> history = train(trainer, x, epochs=3)
    >>> trainer.epochs_done, trainer.steps_done, len(history)
    (3, 0, 3)
    """

    def __init__(self, model: Model, optimizer=None, beta: float = 1.0, batch_size: int = 128,
                 rng=None, objective: str = "elbo", k: int = 1, binarize: str = "none",
                 lr_schedule: str = "constant", schedule_epochs: int | None = None,
                 fast: bool = True):
        if not isinstance(model, Model):  # the protocol, not a class
            raise TypeError(f"model: expected a numpyvae model (VAE or HierarchicalVAE), "
                            f"got {type(model).__name__}")
        if not isinstance(fast, bool):
            raise TypeError(f"fast: expected True or False, got {describe(fast)}")
        self.fast = fast
        self.model = model
        self.optimizer = Adam() if optimizer is None else optimizer
        self.beta = model.check_beta(beta)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.rng = as_generator(rng)
        self.epochs_done = 0            # completed epochs
        self.steps_done = 0             # completed steps inside the current epoch
        self.perm: np.ndarray | None = None  # order of the current epoch, once drawn
        self.sums = [0.0, 0.0, 0.0, 0, 0.0]  # loss, log_lik, kl, n seen, seconds
        self.history: list[dict] = []
        self.workspace: dict = {}  # scratch arrays reused by every step; see fused_step
        self.workspace_2: dict = {}  # the second half's, for a step that splits the batch
        self.objective, self.k = _check_objective(objective, k, self.beta)
        if self.objective == "iwae":
            model.check_density("the IWAE objective")
        if binarize not in ("none", "dynamic"):
            raise ValueError(f"binarize: expected 'none' or 'dynamic' (a static binarization "
                             f"is applied to the data once), got {binarize!r}")
        if binarize == "dynamic" and model.config.likelihood != "bernoulli":
            raise ValueError("binarize: 'dynamic' needs likelihood='bernoulli'")
        if lr_schedule not in ("constant", "iwae"):
            raise ValueError(f"lr_schedule: expected 'constant' or 'iwae', got {lr_schedule!r}")
        self.binarize, self.lr_schedule = binarize, lr_schedule
        self.schedule_epochs = None if schedule_epochs is None \
            else check_int(schedule_epochs, "schedule_epochs", 1)
        self.base_lr = self.optimizer.lr

    def set_learning_rate(self) -> None:
        """Apply the schedule for the epoch about to run."""
        if self.lr_schedule == "iwae":
            assert self.schedule_epochs is not None, "train() sets it before the first epoch"
            self.optimizer.lr = iwae_learning_rate(self.epochs_done, self.schedule_epochs, self.base_lr)

    def train_step(self, xb: np.ndarray) -> tuple[float, dict]:
        """One optimizer step on batch `xb`; returns the loss and terms.

        `xb` is checked for its type, dtype and shape only; its values
        are trusted, as `train` validated the whole data set once (use
        ``model.as_input(xb)`` to validate a batch of your own).
        """
        params, config, ws = self.model.params, self.model.config, self.workspace
        if not (isinstance(xb, np.ndarray) and xb.dtype == self.model.dtype and xb.ndim == 2
                and xb.shape[1] == config.input_dim):
            raise ValueError(f"xb: expected a {self.model.dtype} array of shape "
                             f"(n, {config.input_dim}), got {describe(xb)}")
        n, k = xb.shape[0], self.k if self.objective == "iwae" else 1
        shape = (k, n, config.noise_dim) if self.objective == "iwae" else (n, config.noise_dim)
        eps = self.rng.standard_normal(shape, dtype=self.model.dtype)
        if not (self.fast and fused_step.supports(config)):
            # the reference: the model's loss and its backward, then the optimizer
            loss, terms, grads = self.model.forward_backward(xb, eps, self.beta, self.objective)
            bad = first_nonfinite(loss, grads)
            if bad is None:
                self.optimizer.step(params, grads)
            self._raise_if_diverged(bad)
            return loss, terms
        # the fast form swaps in here. A large step runs as two halves of the batch on two cores, when the
        # machine has them and threadpoolctl can pin BLAS (fused_step.forward_backward).
        parallel = fused_step.splits(n, k) and threads.two_cores()
        helper = threads.helper() if parallel else None
        with threads.one_blas_thread(parallel):
            loss, terms, grads = fused_step.forward_backward(
                params, xb, eps, config, self.objective, self.beta, (ws, self.workspace_2),
                helper)  # grads: views into ws, valid until the next step
            bad = first_nonfinite(loss, grads)
            if bad is None and isinstance(self.optimizer, Adam):
                fused_step.adam_step(self.optimizer, params, grads, ws, helper)
            elif bad is None:
                self.optimizer.step(params, grads)
        self._raise_if_diverged(bad)
        return loss, terms

    def _raise_if_diverged(self, bad: str | None) -> None:
        if bad is not None:
            raise TrainingDiverged(
                f"training diverged at epoch {self.epochs_done + 1}, step {self.steps_done + 1}: "
                f"{bad} is not finite")

    def settings(self) -> dict:
        """The constructor's arguments besides model and optimizer."""
        return {"beta": self.beta, "batch_size": self.batch_size, "objective": self.objective,
                "k": self.k, "binarize": self.binarize, "lr_schedule": self.lr_schedule,
                "schedule_epochs": self.schedule_epochs, "fast": self.fast}

    def state_dict(self) -> dict:
        """Everything a resumed run needs besides the model and optimizer.

        The settings, the position (epoch, step, the running sums), the
        generator's state, the history and the base learning rate, all
        JSON-ready, plus ``perm``: the order of the epoch in progress (an
        int64 array, or None between epochs). Copies, like the
        optimizers' `state_dict`.
        """
        return {**self.settings(), "epoch": self.epochs_done, "step": self.steps_done,
                "sums": list(self.sums), "rng": self.rng.bit_generator.state,
                "history": [dict(row) for row in self.history], "base_lr": self.base_lr,
                "perm": None if self.perm is None else self.perm.copy()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict` (its settings must match this one's)."""
        mine = self.settings()
        differ = sorted(k for k in mine if k in state and state[k] != mine[k])
        if differ:
            raise ValueError(f"state: settings {differ} differ from this trainer's")
        self.rng = generator_from_state(state["rng"])
        self.epochs_done, self.steps_done = int(state["epoch"]), int(state["step"])
        self.sums = list(state["sums"])
        self.history = [dict(row) for row in state["history"]]
        self.base_lr = state.get("base_lr", self.base_lr)
        perm = state.get("perm")
        self.perm = None if perm is None else np.array(perm, dtype=np.int64)

    def run_epoch(self, x: np.ndarray, on_step=None) -> None:
        """Finish the current epoch (from `self.steps_done` on) over validated `x`."""
        n = x.shape[0]
        if self.perm is None:
            self.perm = self.rng.permutation(n)
        if len(self.perm) != n:  # an epoch begun on other data: its order would not fit
            raise ValueError(f"x: the epoch in progress orders {len(self.perm)} examples, the "
                             f"data it began with, got {n}; continue it with the same data")
        n_steps = math.ceil(n / self.batch_size)
        while self.steps_done < n_steps:
            t0 = time.perf_counter()
            idx = self.perm[self.steps_done * self.batch_size:(self.steps_done + 1) * self.batch_size]
            # gather the batch into a buffer kept per batch size, no allocation;
            # idx is a piece of a permutation of range(n), always in bounds, so
            # mode="clip" only skips the check that makes take() buffer its output
            xb = self.workspace.get(("batch", len(idx), x.dtype))
            if xb is None:
                xb = self.workspace[("batch", len(idx), x.dtype)] = np.empty(
                    (len(idx), x.shape[1]), x.dtype)
            np.take(x, idx, axis=0, out=xb, mode="clip")
            if self.binarize == "dynamic":  # pixels ~ Bernoulli(grey level), fresh each batch
                u = self.workspace.get(("uniform", len(idx), x.dtype))
                if u is None:
                    u = self.workspace[("uniform", len(idx), x.dtype)] = np.empty_like(xb)
                self.rng.random(dtype=xb.dtype, out=u)  # the same draws as without out=
                np.less(u, xb, out=xb)  # 1.0 where u < x, else 0.0
            loss, terms = self.train_step(xb)
            self.sums[0] += loss * len(idx)
            self.sums[1] += float(np.sum(terms["log_lik"], dtype=np.float64))
            self.sums[2] += float(np.sum(terms["kl"], dtype=np.float64))
            self.sums[3] += len(idx)
            self.sums[4] += time.perf_counter() - t0
            self.steps_done += 1
            if on_step is not None:
                on_step(self)

    def end_epoch(self, x_val=None) -> dict:
        """Close the epoch: record its history row and reset the position."""
        loss_sum, ll_sum, kl_sum, n_seen, seconds = self.sums
        row = {"epoch": self.epochs_done + 1, "train_loss": loss_sum / n_seen,
               "train_elbo": (ll_sum - kl_sum) / n_seen, "train_log_lik": ll_sum / n_seen,
               "train_kl": kl_sum / n_seen}
        if x_val is not None:
            val = mean_elbo_terms(self.model, x_val, self.rng)
            row.update(val_elbo=val["elbo"], val_elbo_se=val["elbo_se"],
                       val_log_lik=val["log_lik"], val_kl=val["kl"])
        row["seconds"] = seconds
        self.history.append(row)
        self.epochs_done += 1
        self.steps_done, self.perm = 0, None
        self.sums = [0.0, 0.0, 0.0, 0, 0.0]
        return row


_BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                   "Philox": np.random.Philox, "SFC64": np.random.SFC64,
                   "MT19937": np.random.MT19937}


def generator_from_state(state: dict) -> np.random.Generator:
    """Rebuild a Generator from ``rng.bit_generator.state``.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> copy = generator_from_state(rng.bit_generator.state)
    >>> bool(copy.random() == rng.random())
    True
    """
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"rng state: unknown bit generator {name!r}")
    bit_generator = _BIT_GENERATORS[name]()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def trainer_from_checkpoint(ckpt) -> Trainer:
    """A `Trainer` positioned exactly where the checkpoint's run stopped.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from numpyvae.checkpoint import load_checkpoint, save
    >>> x = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    >>> from numpyvae.train import train
    >>> trainer = Trainer(VAE(4, 2, hidden=(8,)), batch_size=10, rng=1)
    >>> _ = train(trainer, x, epochs=1)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = save(trainer.model, folder / "run", trainer=trainer)
    >>> resumed = trainer_from_checkpoint(load_checkpoint(path))
    >>> resumed.epochs_done, resumed.batch_size, len(resumed.history)
    (1, 10, 1)
    """
    state = ckpt.trainer_state
    if state is None:
        raise ValueError("checkpoint: it holds no trainer state, so it cannot be resumed")
    settings = {k: state.get(k, default) for k, default in _SETTING_DEFAULTS.items()}
    trainer = Trainer(ckpt.model, ckpt.optimizer, beta=state["beta"],
                      batch_size=state["batch_size"], **settings)
    trainer.load_state_dict({**state, "perm": ckpt.arrays.get("trainer/perm")})
    return trainer


# checkpoints written before a setting existed hold no value for it
# (the fused step, fast=True, is what every version before the setting ran)
_SETTING_DEFAULTS = {"objective": "elbo", "k": 1, "binarize": "none",
                     "lr_schedule": "constant", "schedule_epochs": None, "fast": True}

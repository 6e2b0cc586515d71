"""The training loop: shuffled minibatches, one reparameterized sample per
example, the loss and its gradient, an optimizer step.

One argument chooses the code that runs the step. ``fast=False`` runs
the reference, for any model: draw eps, the model's loss and its
backward (`model.loss_forward` / `loss_backward`, or a bound head over
its log-weights), then `optim.Adam.step` -- the equations as the notes
and the papers write them (`Trainer.train_step`, the lines after
"reference"). ``fast=True`` (the default) swaps in, where it exists, the
fused form of the same step (`fused_step.py`: the one-layer model's
loss, its gradient and Adam in preallocated buffers), held equal to the
reference by tests/test_fused_step.py and tests/test_train.py.

Maximising the notes' bound over (theta, phi) is done by stochastic
gradient descent on loss = mean[-log p(x|z) + beta * KL], with x drawn
from the data and z = mu + std * eps, eps ~ N(0, I) (so (x, z) come
from p(x) q_phi(z|x)). All randomness -- the order of the data and every
eps -- comes from one `numpy.random.Generator`, whose state is part of
the trainer's state: a run saved after any step and resumed gives the
same parameters, bit for bit, as a run that never stopped.
"""

from __future__ import annotations

import math
import signal
import threading
import time

import numpy as np

from . import _progress, fused_step, threads
from ._validation import check_int, describe
from .estimators import standard_error
from .optim import Adam, iwae_learning_rate
from .protocol import Model
from .vae import VAE, as_generator

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


def evaluate(model: Model, x, rng: np.random.Generator, batch_size: int = 1000) -> dict:
    """Mean ELBO, log-likelihood term and KL over `x` with sampled z (nats).

    log_lik = mean_i log p(x_i|z_i) with one z_i ~ q(z|x_i) each;
    kl = mean_i KL(q(.|x_i) || r) (exact for the one-layer model, sampled
    for the two-layer one: `model.elbo_terms`); elbo = log_lik - kl;
    elbo_se its standard error over the examples
    (`estimators.standard_error`).

    Examples
    --------
    >>> x = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    >>> scores = evaluate(VAE(4, 2, hidden=(8,)), x, np.random.default_rng(1))
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
    >>> trainer = Trainer(VAE(4, 2, hidden=(8,)), batch_size=20, rng=1)
    >>> history = train(trainer, x, epochs=3)
    >>> trainer.epoch, trainer.step, len(history)
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
        self.epoch = 0            # completed epochs
        self.step = 0             # completed steps inside the current epoch
        self.perm = None          # order of the current epoch, once drawn
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
            self.optimizer.lr = iwae_learning_rate(self.epoch, self.schedule_epochs,
                                                   self.base_lr)

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
                f"training diverged at epoch {self.epoch + 1}, step {self.step + 1}: "
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
        return {**self.settings(), "epoch": self.epoch, "step": self.step,
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
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.sums = list(state["sums"])
        self.history = [dict(row) for row in state["history"]]
        self.base_lr = state.get("base_lr", self.base_lr)
        perm = state.get("perm")
        self.perm = None if perm is None else np.array(perm, dtype=np.int64)

    def run_epoch(self, x: np.ndarray, on_step=None) -> None:
        """Finish the current epoch (from `self.step` on) over validated `x`."""
        n = x.shape[0]
        if self.perm is None:
            self.perm = self.rng.permutation(n)
        n_steps = math.ceil(n / self.batch_size)
        while self.step < n_steps:
            t0 = time.perf_counter()
            idx = self.perm[self.step * self.batch_size:(self.step + 1) * self.batch_size]
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
            self.step += 1
            if on_step is not None:
                on_step(self)

    def end_epoch(self, x_val=None) -> dict:
        """Close the epoch: record its history row and reset the position."""
        loss_sum, ll_sum, kl_sum, n_seen, seconds = self.sums
        row = {"epoch": self.epoch + 1, "train_loss": loss_sum / n_seen,
               "train_elbo": (ll_sum - kl_sum) / n_seen, "train_log_lik": ll_sum / n_seen,
               "train_kl": kl_sum / n_seen}
        if x_val is not None:
            val = evaluate(self.model, x_val, self.rng)
            row.update(val_elbo=val["elbo"], val_elbo_se=val["elbo_se"],
                       val_log_lik=val["log_lik"], val_kl=val["kl"])
        row["seconds"] = seconds
        self.history.append(row)
        self.epoch += 1
        self.step, self.perm = 0, None
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
    >>> trainer = Trainer(VAE(4, 2, hidden=(8,)), batch_size=10, rng=1)
    >>> _ = train(trainer, x, epochs=1)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = save(trainer.model, folder / "run", trainer=trainer)
    >>> resumed = trainer_from_checkpoint(load_checkpoint(path))
    >>> resumed.epoch, resumed.batch_size, len(resumed.history)
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


def train(trainer: Trainer, x_train, epochs: int, x_val=None, progress: bool = False,
          checkpoint_path=None, log=print, checkpoint_extra: dict | None = None) -> list[dict]:
    """Run `trainer` until it has completed `epochs` epochs in total.

    With `checkpoint_path`, a checkpoint is written (atomically) after every
    epoch, and on KeyboardInterrupt one is written at the last completed
    step before the interrupt is re-raised (a Ctrl-C that arrives during a
    step takes effect when that step is complete); `checkpoint_extra` is
    stored in each (`numpyvae.save`'s ``extra``). A step or a validation
    that meets NaN or inf raises `TrainingDiverged` naming the epoch, the
    step and the last good checkpoint (or saying there is none yet);
    numpy's floating-point warnings are silenced meanwhile, since the
    checks report what they would.

    With `progress`, a tqdm bar (when tqdm is installed) counts the
    examples of all epochs, moves after every step and shows the epoch
    and the running train ELBO; without tqdm, `log` is called with a
    line for the first epoch of this call, every ceil(epochs / 20)-th
    and the last (`_progress.epoch_line`: ELBOs, time per epoch,
    examples per second).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> x = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    >>> trainer = Trainer(VAE(4, 2, hidden=(8,)), batch_size=10, rng=1)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.npz"
    >>> history = train(trainer, x, epochs=2, checkpoint_path=path)
    >>> len(history), trainer.epoch, path.exists()
    (2, 2, True)
    """
    from pathlib import Path

    from .checkpoint import save
    model = trainer.model
    x_train = model.as_input(x_train, "x_train")
    if x_val is not None:
        x_val = model.as_input(x_val, "x_val")
    epochs = check_int(epochs, "epochs", 1)
    if trainer.batch_size > x_train.shape[0]:
        raise ValueError(f"batch_size: expected at most the {x_train.shape[0]} training "
                         f"examples, got {trainer.batch_size}")
    if trainer.schedule_epochs is None:
        trainer.schedule_epochs = epochs
    saved = checkpoint_path is not None and Path(checkpoint_path).exists()
    bar = _progress_bar(progress, trainer, epochs, x_train.shape[0])
    first_epoch = trainer.epoch + 1
    pending: list = []  # a Ctrl-C that arrived during a step, raised after it
    previous_handler = _hold_sigint(pending)
    where = ""
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while trainer.epoch < epochs:
                trainer.set_learning_rate()
                where = "step"
                trainer.run_epoch(x_train, on_step=lambda t: _on_step(t, bar, pending))
                where = "validation"
                row = trainer.end_epoch(x_val)
                if checkpoint_path is not None:
                    save(model, checkpoint_path, trainer=trainer, extra=checkpoint_extra)
                    saved = True
                where = ""
                _report(bar, row, progress, epochs, first_epoch, x_train.shape[0], log)
                _raise_pending(pending)
    except KeyboardInterrupt:
        if checkpoint_path is not None:
            save(model, checkpoint_path, trainer=trainer, extra=checkpoint_extra)
        raise
    except ValueError as e:  # TrainingDiverged, or a kernel's check met NaN or inf
        if not where:
            raise
        raise TrainingDiverged(_diverged(e, trainer, where, checkpoint_path, saved)) from None
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        if bar is not None:
            bar["bar"].close()
    return trainer.history


def _diverged(e: ValueError, trainer: Trainer, where: str, checkpoint_path,
              saved: bool) -> str:
    """The message of a divergence: where, what, and the last good checkpoint."""
    if isinstance(e, TrainingDiverged):
        text = str(e)
    elif where == "step":
        text = (f"training diverged at epoch {trainer.epoch + 1}, step {trainer.step + 1}: "
                f"{e}")
    else:
        text = f"training diverged in the validation after epoch {trainer.epoch + 1}: {e}"
    if checkpoint_path is None:
        return f"{text}; no checkpoint was being written"
    if not saved:
        return f"{text}; no checkpoint was written (none of its epochs was completed)"
    return f"{text}; the last good checkpoint is {checkpoint_path}"


def _hold_sigint(pending: list):
    """Make Ctrl-C (SIGINT) wait for the end of the running step.

    A KeyboardInterrupt raised inside a step would leave the generator, the
    parameters or the optimizer moments half-advanced, and the checkpoint
    written on interrupt would not be the state after any step. The handler
    only records the signal in `pending`; `_raise_pending` raises it between
    steps. Done in the main thread over Python's default handler only;
    returns the handler to restore, or None when nothing was changed.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return None
    return signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))


def _raise_pending(pending: list) -> None:
    if pending:
        pending.clear()
        raise KeyboardInterrupt


def _progress_bar(progress: bool, trainer: Trainer, epochs: int, n_train: int):
    """A bar over every example of every epoch (tqdm), or None."""
    if not progress or trainer.epoch >= epochs:
        return None
    # a resumed run starts at its interrupted epoch's examples (trainer.sums[3])
    return _progress.training_bar(epochs, n_train, trainer.epoch, trainer.sums[3])


def _on_step(trainer: Trainer, bar, pending: list) -> None:
    if bar is not None:
        _progress.step_bar(bar, trainer)
    _raise_pending(pending)


def _report(bar, row: dict, progress: bool, epochs: int, first: int, n_train: int,
            log) -> None:
    """After an epoch: the bar's postfix, or a line for the first epoch of
    this call, every ceil(epochs / 20)-th and the last."""
    if not progress:
        return
    if bar is not None:
        _progress.epoch_bar(bar, row)
    elif _progress.report_epoch(row, epochs, first):
        log(_progress.epoch_line(row, epochs, n_train))


def fit(model: Model, x_train, *, epochs: int, batch_size: int = 128, optimizer=None,
        x_val=None, beta: float = 1.0, rng=None, progress: bool = False,
        checkpoint_path=None, objective: str = "elbo", k: int = 1, binarize: str = "none",
        lr_schedule: str = "constant", fast: bool = True) -> list[dict]:
    """Train `model` in place and return its history.

    Parameters
    ----------
    model : VAE or HierarchicalVAE
    x_train : ndarray, shape (n, input_dim)
        Real float data (converted once to the model's dtype); in [0, 1]
        for a Bernoulli decoder.
    epochs : int
        Number of passes over `x_train`, >= 1.
    batch_size : int
        Examples per step, at most n.
    optimizer : Adam or SGD, optional
        Default ``Adam(lr=1e-3)``.
    x_val : ndarray, optional
        Held-out data scored after every epoch (ELBO with a sampled z).
    beta : float
        KL weight (1 is the ELBO).
    rng : numpy.random.Generator or int, optional
        Data order and noise (None is seed 0).
    progress : bool
        A tqdm bar over the examples of every epoch when tqdm is
        installed, else a line for the first epoch, every
        ceil(epochs / 20)-th and the last (through `log` in `train`).
    checkpoint_path : str or Path, optional
        Write a resumable checkpoint after every epoch.
    objective, k, binarize, lr_schedule
        As for `Trainer`: "elbo" or "iwae" with k samples; "none" or
        "dynamic" binarization of each batch; a "constant" learning rate
        or the IWAE paper's "iwae" stages over `epochs`.
    fast : bool
        False trains through the reference equations (`Trainer`).

    Returns
    -------
    list of dict
        One row per epoch: ``epoch, train_loss, train_elbo, train_log_lik,
        train_kl`` (+ ``val_elbo, val_log_lik, val_kl``), ``seconds``; nats
        per example, log_lik = mean log p(x|z), elbo = log_lik - kl.

    Examples
    --------
    >>> x = np.random.default_rng(0).random((64, 4)).astype(np.float32)
    >>> history = fit(VAE(4, 2, hidden=(8,)), x, epochs=2, batch_size=32)
    >>> [row["epoch"] for row in history]
    [1, 2]
    """
    trainer = Trainer(model, optimizer, beta=beta, batch_size=batch_size, rng=rng,
                      objective=objective, k=k, binarize=binarize, lr_schedule=lr_schedule,
                      fast=fast)
    return train(trainer, x_train, epochs, x_val=x_val, progress=progress,
                 checkpoint_path=checkpoint_path)

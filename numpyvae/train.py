"""The training loop: epochs of shuffled minibatches, each step one
reparameterized sample per example, the loss and its gradient, an
optimizer step (`trainer.Trainer`), with a checkpoint after every epoch.

Maximising the notes' bound over (theta, phi) is done by stochastic
gradient descent on loss = mean[-log p(x|z) + beta * KL], with x drawn
from the data and z = mu + std * eps, eps ~ N(0, I) (so (x, z) come
from p(x) q_phi(z|x)). `train` runs a `Trainer` for a number of epochs,
writing checkpoints, holding Ctrl-C until a step is complete, naming the
epoch and step where a run diverges, and showing progress; `fit` is
`train` on a new Trainer. ``fit(..., fast=False)`` trains through the
reference equations (trainer.py says where the fast form swaps in).
"""

from __future__ import annotations

import signal
import threading
import time

import numpy as np

from . import _progress
from ._validation import check_int
from .protocol import Model

# The Trainer and its companions live in trainer.py; numpyvae.train.Trainer
# and the others stay importable from here, where they were first documented.
from .trainer import (  # noqa: F401
    HISTORY_KEYS,
    Trainer,
    TrainingDiverged,
    first_nonfinite,
    generator_from_state,
    mean_elbo_terms,
    trainer_from_checkpoint,
)
from .vae import VAE  # noqa: F401  (the doctests' model)


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
    examples per second), and inside an epoch a line whenever it has run
    another `_progress.STEP_LINE_SECONDS` (`_progress.step_line`: examples
    done, time left in the epoch).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> x = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    >>> trainer = Trainer(VAE(4, 2, hidden=(8,)), batch_size=10, rng=1)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.npz"
    >>> history = train(trainer, x, epochs=2, checkpoint_path=path)
    >>> len(history), trainer.epochs_done, path.exists()
    (2, 2, True)
    """
    from pathlib import Path

    from .checkpoint import save
    model = trainer.model
    x_train = model.as_input(x_train, "x_train")
    if x_val is not None:
        x_val = model.as_input(x_val, "x_val")
    epochs = check_int(epochs, "epochs", 1)
    if trainer.steps_done > 0 and epochs <= trainer.epochs_done:
        raise ValueError(f"epochs: the trainer is inside epoch {trainer.epochs_done + 1} "
                         f"(step {trainer.steps_done}), got {epochs}; expected at least "
                         f"{trainer.epochs_done + 1}, so that the epoch begun is finished")
    if trainer.batch_size > x_train.shape[0]:
        raise ValueError(f"batch_size: expected at most the {x_train.shape[0]} training "
                         f"examples, got {trainer.batch_size}")
    if trainer.schedule_epochs is None:
        trainer.schedule_epochs = epochs
    saved = checkpoint_path is not None and Path(checkpoint_path).exists()
    bar = _progress_bar(progress, trainer, epochs, x_train.shape[0])
    first_epoch = trainer.epochs_done + 1
    pending: list = []  # a Ctrl-C that arrived during a step, raised after it
    previous_handler = _hold_sigint(pending)
    where = ""
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while trainer.epochs_done < epochs:
                trainer.set_learning_rate()
                where = "step"
                lines = _step_lines(progress, bar, epochs, x_train.shape[0], log)
                trainer.run_epoch(x_train, on_step=lambda t, lines=lines: _on_step(t, bar, pending, lines))
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
        text = (f"training diverged at epoch {trainer.epochs_done + 1}, step {trainer.steps_done + 1}: "
                f"{e}")
    else:
        text = f"training diverged in the validation after epoch {trainer.epochs_done + 1}: {e}"
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
    if not progress or trainer.epochs_done >= epochs:
        return None
    # a resumed run starts at its interrupted epoch's examples (trainer.sums[3])
    return _progress.training_bar(epochs, n_train, trainer.epochs_done, int(trainer.sums[3]))


def _step_lines(progress: bool, bar, epochs: int, n_train: int, log) -> dict | None:
    """The clock of the lines inside an epoch (progress without tqdm), or None."""
    if not progress or bar is not None:
        return None
    start = time.monotonic()
    return {"start": start, "next": start + _progress.STEP_LINE_SECONDS, "epochs": epochs,
            "n_train": n_train, "log": log}


def _on_step(trainer: Trainer, bar, pending: list, lines: dict | None) -> None:
    """After a step: move the bar, or (without tqdm) a line when the epoch
    has run another `_progress.STEP_LINE_SECONDS`; then a held Ctrl-C."""
    if bar is not None:
        _progress.step_bar(bar, trainer)
    elif lines is not None:
        now = time.monotonic()
        if now >= lines["next"]:
            lines["next"] = now + _progress.STEP_LINE_SECONDS
            lines["log"](_progress.step_line(trainer, lines["epochs"], lines["n_train"],
                                             now - lines["start"]))
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
        ceil(epochs / 20)-th and the last (through `log` in `train`), and
        inside an epoch a line every minute of it (a long MNIST epoch).
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

"""numpyvae/_progress.py and the progress of `train`: a bar that moves
every step with tqdm, a readable number of lines without it."""

import sys

import numpy as np
import pytest

from numpyvae import VAE, _progress
from numpyvae.train import Trainer, train


def _trainer():
    return Trainer(VAE(4, 2, hidden=(8,)), batch_size=10, rng=1)


X = np.random.default_rng(0).random((40, 4)).astype(np.float32)


def test_without_tqdm_a_line_every_twentieth_of_the_epochs_and_the_last(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    lines = []
    train(_trainer(), X, 200, x_val=X, progress=True, log=lines.append)
    epochs = [int(line.split()[1].split("/")[0]) for line in lines]
    assert epochs == [1] + list(range(10, 201, 10))
    assert all(line.startswith(f"epoch {e}/200: train ELBO ") for e, line in zip(epochs, lines, strict=True))
    assert all("val ELBO" in line and " ± " in line and "examples/s" in line
               and "/epoch" in line for line in lines)


def test_without_tqdm_a_resumed_run_reports_its_first_epoch(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    trainer, lines = _trainer(), []
    train(trainer, X, 50, progress=False, log=lines.append)
    assert lines == []
    train(trainer, X, 61, progress=True, log=lines.append)
    assert [line.split(":")[0] for line in lines] == [
        "epoch 51/61", "epoch 52/61", "epoch 56/61", "epoch 60/61", "epoch 61/61"]


class RecordingBar:
    """Stands in for tqdm.tqdm and records what the bar is told."""

    made = []

    def __init__(self, total, initial=0, **kwargs):
        self.total, self.n, self.initial, self.kwargs = total, initial, initial, kwargs
        self.updates, self.postfixes, self.closed = [], [], False
        RecordingBar.made.append(self)

    def update(self, n):
        self.updates.append(n)
        self.n += n

    def set_postfix_str(self, text, refresh=True):
        self.postfixes.append(text)

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    tqdm = pytest.importorskip("tqdm")
    monkeypatch.setattr(tqdm, "tqdm", RecordingBar)
    RecordingBar.made = []
    return RecordingBar.made


def test_with_tqdm_the_bar_moves_every_step_over_all_examples(bars, monkeypatch):
    monkeypatch.setattr(_progress.time, "monotonic", lambda: 0.0)  # a clock that stands still
    lines = []
    train(_trainer(), X, 2, x_val=X, progress=True, log=lines.append)
    (bar,) = bars
    assert lines == [] and bar.closed
    assert (bar.total, bar.initial, bar.n) == (80, 0, 80)
    assert bar.updates == [10] * 8  # 4 steps an epoch, each moves the bar
    assert bar.kwargs["unit"].strip() == "examples"
    # the postfix is formatted at the first step (then the clock says wait) and
    # after each epoch, not at every step
    assert len(bar.postfixes) == 3
    assert bar.postfixes[0].startswith("epoch 1/2, train ELBO ")
    assert bar.postfixes[-1].startswith("epoch 2/2, train ELBO ") and "val ELBO" in \
        bar.postfixes[-1]


def test_with_tqdm_a_resumed_run_starts_at_the_examples_done(bars):
    trainer = _trainer()

    def stop_after_two_steps(t):
        if t.steps_done == 2:
            raise KeyboardInterrupt

    train(trainer, X, 1)
    with pytest.raises(KeyboardInterrupt):
        trainer.run_epoch(X, on_step=stop_after_two_steps)
    train(trainer, X, 3, progress=True)
    (bar,) = bars
    assert (bar.total, bar.initial, bar.n) == (120, 60, 120)


def test_no_progress_makes_no_bar_and_no_line(bars):
    lines = []
    train(_trainer(), X, 2, x_val=X, log=lines.append)
    assert bars == [] and lines == []


def test_durations_and_rates_read_well():
    assert _progress.duration(0.0351) == "35 ms"
    assert _progress.duration(3.21) == "3.2 s"
    assert _progress.rate(1437, 0.0351) == "40,900 examples/s"
    assert _progress.plus_minus(-24.5049, 0.412) == "-24.50 ± 0.41"
    assert sum(_progress.report_epoch({"epoch": e}, 7, 1) for e in range(1, 8)) == 7

"""Progress reports of long jobs: a tqdm bar when tqdm is installed (the
``progress`` extra), else a readable number of lines.

`train.train` and `evaluation.evaluate` use these; the `Trainer`
itself prints nothing. A bar counts examples (of all epochs, for a
training) and moves after every step; its postfix is rewritten at most
every `POSTFIX_SECONDS`, so a step pays a clock read and tqdm's own
update, never the formatting of a string.
"""

from __future__ import annotations

import math
import sys
import time

POSTFIX_SECONDS = 0.2
STEP_LINE_SECONDS = 60.0  # without tqdm: a line inside an epoch this often


def make_bar(total: int, initial: int = 0, desc: str | None = None):
    """A tqdm bar over `total` examples (on stderr), or None without tqdm.

    Examples
    --------
    >>> bar = make_bar(10, 4, "demo")
    >>> bar is None or (bar.total, bar.n) == (10, 4)
    True
    >>> if bar is not None:
    ...     bar.close()
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    # 57.5k/287k above 10,000 examples; exact counts below (not 40.0/40.0)
    return tqdm(total=total, initial=initial, desc=desc, unit=" examples",
                unit_scale=total >= 10_000, dynamic_ncols=True, file=sys.stderr)


def duration(seconds: float) -> str:
    """`seconds` with a precision that suits it: ms below one second.

    Examples
    --------
    >>> duration(0.0351), duration(0.0004), duration(2.345), duration(75.0)
    ('35 ms', '0.4 ms', '2.3 s', '75 s')
    """
    if seconds < 0.001:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def rate(examples: int, seconds: float) -> str:
    """Examples per second, rounded to three significant figures.

    Examples
    --------
    >>> rate(1437, 0.0351), rate(10, 0.0)
    ('40,900 examples/s', '- examples/s')
    """
    if seconds <= 0:
        return "- examples/s"
    value = examples / seconds
    return f"{float(f'{value:.3g}'):,.0f} examples/s"


def plus_minus_sign(stream=None) -> str:
    """"±", or "+-" where `stream` (default sys.stdout) cannot encode it
    (``PYTHONIOENCODING=ascii``, an old console): a report must not stop
    a training over a character.

    Examples
    --------
    >>> import io
    >>> ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    >>> plus_minus_sign(ascii_out), plus_minus_sign(io.StringIO())
    ('+-', '±')
    """
    encoding = getattr(sys.stdout if stream is None else stream, "encoding", None) or "utf-8"
    try:
        "±".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "+-"
    return "±"


def plus_minus(value: float, se: float | None) -> str:
    """``value ± se`` with two decimals (the SE left out when unknown), the
    sign as stdout can print it (`plus_minus_sign`).

    Examples
    --------
    >>> plus_minus(-24.5012, 0.4119) in ('-24.50 ± 0.41', '-24.50 +- 0.41')
    True
    >>> plus_minus(-3.0, None)
    '-3.00'
    """
    return f"{value:.2f}" if se is None else f"{value:.2f} {plus_minus_sign()} {se:.2f}"


def report_epoch(row: dict, epochs: int, first: int) -> bool:
    """Whether the epoch of history `row` gets a line: the first epoch of
    this call (`first`), every ceil(epochs / 20)-th, and the last.

    Examples
    --------
    >>> [e for e in range(1, 201) if report_epoch({"epoch": e}, 200, 1)][:4]
    [1, 10, 20, 30]
    >>> sum(report_epoch({"epoch": e}, 200, 1) for e in range(1, 201))
    21
    >>> max(sum(report_epoch({"epoch": e}, n, 1) for e in range(1, n + 1))
    ...     for n in range(1, 1000))  # never more than 21 lines (22 resumed)
    21
    """
    epoch = row["epoch"]
    return epoch in (first, epochs) or epoch % math.ceil(epochs / 20) == 0


def epoch_line(row: dict, epochs: int, n_train: int) -> str:
    """One line for history `row`: epoch, ELBOs, time and speed.

    Examples
    --------
    >>> row = {"epoch": 10, "train_elbo": -25.314, "val_elbo": -25.6, "val_elbo_se": 0.41,
    ...        "seconds": 0.0351}
    >>> epoch_line(row, 200, 1437)
    'epoch 10/200: train ELBO -25.31, val ELBO -25.60 ± 0.41; 35 ms/epoch, 40,900 examples/s'
    """
    text = f"epoch {row['epoch']}/{epochs}: train ELBO {row['train_elbo']:.2f}"
    if "val_elbo" in row:
        text += f", val ELBO {plus_minus(row['val_elbo'], row.get('val_elbo_se'))}"
    return (f"{text}; {duration(row['seconds'])}/epoch, "
            f"{rate(n_train, row['seconds'])}")


def step_line(trainer, epochs: int, n_train: int, seconds: float) -> str:
    """A line inside a long epoch (without tqdm, every `STEP_LINE_SECONDS`):
    examples done, the running train ELBO, the time spent and left.

    Examples
    --------
    >>> class Trainer:
    ...     epochs_done, sums = 2, [0.0, -2000.0, 500.0, 12000, 0.0]
    >>> step_line(Trainer(), 10, 60000, 45.0)
    'epoch 3/10: 12,000 of 60,000 examples, train ELBO -0.21 so far; 45 s, about 180 s left in the epoch'
    """
    _, ll_sum, kl_sum, n_seen, _ = trainer.sums
    left = seconds * (n_train - n_seen) / max(n_seen, 1)
    return (f"epoch {trainer.epochs_done + 1}/{epochs}: {int(n_seen):,} of {n_train:,} "
            f"examples, train ELBO {(ll_sum - kl_sum) / max(n_seen, 1):.2f} so far; "
            f"{duration(seconds)}, about {duration(left)} left in the epoch")


def training_bar(epochs: int, n_train: int, done_epochs: int, done_examples: int):
    """The bar of a training, or None without tqdm: all examples of all
    epochs, `done_*` of them already trained (a resumed run).

    Returns a dict holding the bar and what `step_bar` needs between steps.
    """
    bar = make_bar(epochs * n_train, done_epochs * n_train + done_examples)
    if bar is None:
        return None
    return {"bar": bar, "epochs": epochs, "seen": done_examples, "next_postfix": 0.0}


def step_bar(state: dict, trainer) -> None:
    """After a step: move the bar by the examples of the step; rewrite the
    postfix (the epoch, the running train ELBO from ``trainer.sums``) at
    most every `POSTFIX_SECONDS`."""
    n_seen = trainer.sums[3]
    state["bar"].update(n_seen - state["seen"])
    state["seen"] = n_seen
    now = time.monotonic()
    if now >= state["next_postfix"]:
        state["next_postfix"] = now + POSTFIX_SECONDS
        loss_sum, ll_sum, kl_sum, n_seen, _ = trainer.sums
        state["bar"].set_postfix_str(f"epoch {trainer.epochs_done + 1}/{state['epochs']}, train "
                                     f"ELBO {(ll_sum - kl_sum) / n_seen:.2f}", refresh=False)


def epoch_bar(state: dict, row: dict) -> None:
    """After an epoch: count the next one from 0; show the val ELBO."""
    state["seen"] = 0
    text = f"epoch {row['epoch']}/{state['epochs']}, train ELBO {row['train_elbo']:.2f}"
    if "val_elbo" in row:
        text += f", val ELBO {row['val_elbo']:.2f}"
    state["bar"].set_postfix_str(text, refresh=False)
    state["next_postfix"] = time.monotonic() + POSTFIX_SECONDS

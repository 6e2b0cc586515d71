"""Input checks at the boundary: data, noise, dtypes, counts, pixel ranges,
and the trainer's state a checkpoint stores.

Public entry points call these once; the kernels of the reference check
only shapes and dtypes (numpyvae/reference/arrays.py, whose wording these
share) and trust their callers for the values (finite, in range). Every
message names the argument, what was expected and what was given.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .reference.arrays import FLOAT_DTYPES, check_finite, check_positive, describe


def check_float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """Return np.dtype(dtype) if it is float32 or float64, else TypeError.

    Examples
    --------
    >>> check_float_dtype("float32")
    dtype('float32')
    >>> check_float_dtype("int8")
    Traceback (most recent call last):
        ...
    TypeError: dtype: expected 'float32' or 'float64', got 'int8'
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected 'float32' or 'float64', got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected 'float32' or 'float64', got {dtype!r}")
    return dt


def check_dtype_like_params(dtype, **arrays: np.ndarray) -> None:
    """Raise TypeError unless every array has the parameters' `dtype`.

    Examples
    --------
    >>> check_dtype_like_params(np.dtype("float32"), x=np.zeros(2, dtype=np.float32))
    >>> check_dtype_like_params(np.dtype("float32"), x=np.zeros(2))
    Traceback (most recent call last):
        ...
    TypeError: x: expected dtype float32 like the parameters, got float64
    """
    for name, a in arrays.items():
        if a.dtype != dtype:
            raise TypeError(f"{name}: expected dtype {dtype} like the parameters, got {a.dtype}")


def check_unit_interval(a: np.ndarray, name: str) -> None:
    """Raise ValueError unless every entry lies in [0, 1] (no NaN/inf).

    Examples
    --------
    >>> check_unit_interval(np.array([0.0, 0.3, 1.0]), "x")
    >>> check_unit_interval(np.array([0.0, 2.0]), "x")
    Traceback (most recent call last):
        ...
    ValueError: x: expected values in [0, 1] for a Bernoulli likelihood,
    got values in [0.0, 2.0]
    """
    if a.size == 0:
        return
    lo, hi = a.min(), a.max()
    if not (lo >= 0 and hi <= 1):  # also False for NaN
        check_finite(a, name)
        raise ValueError(
            f"{name}: expected values in [0, 1] for a Bernoulli likelihood, "
            f"got values in [{lo}, {hi}]"
        )


def check_int(value, name: str, minimum: int) -> int:
    """Return `value` as an int if it is an integer >= `minimum`.

    Examples
    --------
    >>> check_int(np.int64(3), "epochs", 1)
    3
    >>> check_int(0, "epochs", 1)
    Traceback (most recent call last):
        ...
    ValueError: epochs: expected an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def as_data(x, name: str, dtype, n_features: int | None = None,
            unit_interval: bool = False) -> np.ndarray:
    """Convert real float data to `dtype` once; reject everything else.

    Accepts a 2-d ndarray of float16/32/64 (or a list of floats) of shape
    (n, n_features) with n >= 1 and finite values. Integer and boolean
    arrays are refused, never silently converted, with a hint that
    depends on what the array is (`_integer_hint`); complex and object
    arrays are refused. Returns `x` itself when it already has the
    requested dtype (no copy).

    Examples
    --------
    >>> x = as_data([[0.0, 0.5], [1.0, 0.25]], "x", "float32", n_features=2)
    >>> x.shape, x.dtype
    ((2, 2), dtype('float32'))
    >>> as_data(np.zeros((2, 2), dtype=np.uint8), "x", "float32")
    Traceback (most recent call last):
        ...
    TypeError: x: expected floating-point data, got dtype uint8
    (for uint8 images 0..255 use x.astype('float32') / 255)
    >>> as_data(np.zeros((2, 2), dtype=int), "z", "float64")
    Traceback (most recent call last):
        ...
    TypeError: z: expected floating-point data, got dtype int64
    (convert it with z.astype('float64'))
    """
    dtype = np.dtype(dtype)
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {describe(x)}")
    kind = x.dtype.kind
    if kind in "iub":
        raise TypeError(f"{name}: expected floating-point data, got dtype {x.dtype}"
                        f"{_integer_hint(name, kind, dtype)}")
    if kind != "f":
        raise TypeError(f"{name}: expected real floating-point data, got dtype {x.dtype}")
    if x.ndim != 2:
        hint = "; flatten images first, e.g. x.reshape(len(x), -1)" if x.ndim > 2 else ""
        want = f"(n, {n_features})" if n_features is not None else "(n, d)"
        raise ValueError(f"{name}: expected shape {want}, got {x.shape}{hint}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one example, got shape {x.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(
            f"{name}: expected shape (n, {n_features}), got {x.shape}"
        )
    if x.dtype != dtype:
        x = x.astype(dtype)
    check_finite(x, name)
    if unit_interval:
        check_unit_interval(x, name)
    return x


def is_data_name(name: str) -> bool:
    """Whether `name` names data x (rows of examples, maybe images): x, X,
    xb, or x_<something> (x_train, x_val, X_test); not z, z1, Z or eps.
    Names match the math (STYLE.md), so the name says what an array is.

    Examples
    --------
    >>> [is_data_name(n) for n in ("x", "x_val", "X", "z", "z1", "eps")]
    [True, True, True, False, False, False]
    """
    return name in ("x", "X", "xb") or name.startswith(("x_", "X_"))


def _integer_hint(name: str, kind: str, dtype: np.dtype) -> str:
    """The hint for an integer or boolean array given where floats are
    expected: how to scale uint8 images, for data x; how to convert, for
    a latent z or noise eps (which are no images)."""
    if not is_data_name(name):
        return f" (convert it with {name}.astype('{dtype}'))"
    if kind in "iu":
        return f" (for uint8 images 0..255 use {name}.astype('{dtype}') / 255)"
    return ""


def as_noise(eps, name: str, dtype, noise_dim: int) -> np.ndarray:
    """Standard-normal noise of k samples per example, validated like
    `as_data`: shape (n, noise_dim) (one sample) or (k, n, noise_dim),
    finite, converted once to `dtype`; returned as (k, n, noise_dim).

    Examples
    --------
    >>> as_noise(np.zeros((4, 2)), "eps", "float32", 2).shape
    (1, 4, 2)
    >>> as_noise(np.zeros((4, 3)), "eps", "float32", 2)
    Traceback (most recent call last):
        ...
    ValueError: eps: expected shape (n, 2) or (k, n, 2), got (4, 3)
    """
    if not isinstance(eps, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {describe(eps)}")
    if eps.ndim not in (2, 3) or eps.shape[-1] != noise_dim or eps.shape[0] < 1:
        raise ValueError(f"{name}: expected shape (n, {noise_dim}) or (k, n, {noise_dim}), "
                         f"got {eps.shape}")
    eps = eps if eps.ndim == 3 else eps[None]
    return as_data(eps.reshape(-1, noise_dim), name, dtype).reshape(eps.shape)


COUNT_MAX = 2**53  # a count stored as JSON: exact in every reader's float64
TRAINER_KEYS = ("epoch", "step", "batch_size", "beta", "sums", "history", "rng")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_count(value, name: str, minimum: int = 0, maximum: int = COUNT_MAX) -> int:
    """Return `value` as an int if it is an integer (not a bool, not a
    float) in [minimum, maximum]; TypeError or ValueError naming `name`.

    Examples
    --------
    >>> check_count(3, "trainer.step")
    3
    >>> check_count(2.0, "trainer.step")
    Traceback (most recent call last):
        ...
    TypeError: trainer.step: expected an integer, got 2.0
    >>> check_count(-1, "optimizer/t")
    Traceback (most recent call last):
        ...
    ValueError: optimizer/t: expected an integer in [0, 9007199254740992],
    got -1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {_short(value)}")
    value = int(value)
    if not minimum <= value <= maximum:
        raise ValueError(f"{name}: expected an integer in [{minimum}, {maximum}], "
                         f"got {_short(value)}")
    return value


def check_permutation(perm, name: str, max_length: int) -> None:
    """Raise ValueError unless `perm` is a 1-d integer array holding each
    of 0 .. n-1 once, with 1 <= n <= `max_length`.

    Examples
    --------
    >>> check_permutation(np.array([2, 0, 1]), "perm", 10)
    >>> check_permutation(np.array([0, 0, 1]), "perm", 10)
    Traceback (most recent call last):
        ...
    ValueError: perm: expected a permutation of 0..2, got repeated or
    out-of-range entries
    """
    if not isinstance(perm, np.ndarray) or perm.ndim != 1 or perm.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected a 1-d integer array, got {describe(perm)}")
    if not 1 <= len(perm) <= max_length:
        raise ValueError(f"{name}: expected 1 to {max_length} entries, got {len(perm)}")
    if not np.array_equal(np.sort(perm), np.arange(len(perm))):
        raise ValueError(f"{name}: expected a permutation of 0..{len(perm) - 1}, "
                         "got repeated or out-of-range entries")


def _check_history(history, epoch: int) -> None:
    """One row per completed epoch, of numbers (None where undefined, as
    the standard error of a single or an infinite ELBO)."""
    rows_ok = isinstance(history, list) and all(
        isinstance(row, dict) and all(isinstance(k, str) and (v is None or _is_real(v))
                                      for k, v in row.items()) for row in history)
    if not rows_ok:
        raise ValueError(f"trainer.history: expected a list of rows (dicts of numbers "
                         f"or None), got {_short(history)}")
    if len(history) != epoch:
        raise ValueError(f"trainer.epoch: expected {len(history)}, the rows of "
                         f"trainer.history, got {epoch}")


def _check_position(perm, step: int, batch_size: int, max_length: int) -> int:
    """The step inside the epoch of `perm` (None between epochs); returns
    the number of examples its steps have seen."""
    if perm is None:
        if step != 0:
            raise ValueError(f"trainer.step: expected 0 between epochs (no trainer/perm "
                             f"stored), got {step}")
        return 0
    check_permutation(perm, "trainer/perm", max_length)
    n_steps = -(-len(perm) // batch_size)
    if step > n_steps:
        raise ValueError(f"trainer.step: expected at most {n_steps}, the steps of an epoch "
                         f"of {len(perm)} examples in batches of {batch_size}, got {step}")
    return min(step * batch_size, len(perm))


def _check_sums(sums, n_seen: int) -> None:
    """[loss, log_lik, kl, examples seen, seconds] of the current epoch."""
    if not (isinstance(sums, list) and len(sums) == 5 and all(_is_real(v) for v in sums)):
        raise ValueError("trainer.sums: expected 5 numbers (loss, log_lik, kl, examples "
                         f"seen, seconds), got {_short(sums)}")
    if check_count(sums[3], "trainer.sums[3]") != n_seen:
        raise ValueError(f"trainer.sums[3]: expected {n_seen}, the examples of the steps "
                         f"done, got {sums[3]}")
    if not (math.isfinite(sums[4]) and sums[4] >= 0):
        raise ValueError(f"trainer.sums[4]: expected seconds >= 0, got {sums[4]}")


def check_trainer_state(state, perm, max_length: int) -> None:
    """Raise TypeError or ValueError, naming the key, unless `state` is a
    consistent `Trainer.state_dict` (``perm`` given apart, None between
    epochs): counts are integers in range, one history row per epoch
    done, the step inside `perm`, the sums those steps add up to. The
    generator state and the settings are left to the Trainer.

    Examples
    --------
    >>> state = {"epoch": 0, "step": 1, "batch_size": 2, "beta": 1.0,
    ...          "sums": [0.5, -0.4, 0.1, 2, 0.01], "history": [],
    ...          "rng": {}}
    >>> check_trainer_state(state, np.array([1, 2, 0]), 10)
    >>> check_trainer_state(dict(state, step=3), np.array([1, 2, 0]), 10)
    Traceback (most recent call last):
        ...
    ValueError: trainer.step: expected at most 2, the steps of an epoch of
    3 examples in batches of 2, got 3
    """
    if not isinstance(state, dict):
        raise TypeError(f"trainer: expected a dict, got {describe(state)}")
    missing = [k for k in TRAINER_KEYS if k not in state]
    if missing:
        raise ValueError(f"trainer.{missing[0]}: missing from the trainer's state")
    batch_size = check_count(state["batch_size"], "trainer.batch_size", 1)
    epoch = check_count(state["epoch"], "trainer.epoch")
    step = check_count(state["step"], "trainer.step")
    _check_history(state["history"], epoch)
    _check_sums(state["sums"], _check_position(perm, step, batch_size, max_length))
    if "base_lr" in state:
        check_positive(state["base_lr"], "trainer.base_lr")

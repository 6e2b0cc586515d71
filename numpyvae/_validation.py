"""Input checks at the boundary: data, noise, dtypes, counts, pixel ranges.

Public entry points call these once; the kernels of the reference check
only shapes and dtypes (numpyvae/reference/arrays.py, whose wording these
share) and trust their callers for the values (finite, in range). Every
message names the argument, what was expected and what was given.
"""

from __future__ import annotations

import numbers

import numpy as np

from .reference.arrays import FLOAT_DTYPES, check_finite, describe


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
    arrays are refused with a hint on how to scale them, never silently
    divided; complex and object arrays are refused. Returns `x` itself
    when it already has the requested dtype (no copy).

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
    """
    dtype = np.dtype(dtype)
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {describe(x)}")
    kind = x.dtype.kind
    if kind in "iub":
        hint = " (for uint8 images 0..255 use x.astype('float32') / 255)" \
            if kind in "iu" else ""
        raise TypeError(
            f"{name}: expected floating-point data, got dtype {x.dtype}{hint}"
        )
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

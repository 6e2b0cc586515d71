"""Argument checks on arrays: type, dtype, shape, finiteness, positivity.

The kernels of the reference check the shapes and dtypes of what they are
given (a wrong shape is never silently broadcast) and trust their callers
for the values; the public entry points (numpyvae/_validation.py) check
the values once, at the boundary. Every message names the argument, what
was expected and what was given. Not an equation: a learner may skip it.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(a) -> str:
    """Short description of a value for an error message.

    Examples
    --------
    >>> describe(np.zeros((2, 3), dtype=np.float32))
    'array of shape (2, 3) and dtype float32'
    >>> describe([1, 2])
    'list'
    """
    if isinstance(a, np.ndarray):
        return f"array of shape {a.shape} and dtype {a.dtype}"
    return f"{type(a).__name__}"


def check_float_array(a, name: str, ndim: int | None = None) -> np.ndarray:
    """Return `a` unchanged if it is a float32/float64 ndarray of `ndim`.

    Raises TypeError for anything that is not an ndarray of float32 or
    float64, and ValueError for the wrong number of dimensions. No copy,
    no conversion: this is for kernels, whose callers own the dtype.

    Examples
    --------
    >>> a = np.zeros((2, 3))
    >>> check_float_array(a, "x", ndim=2) is a
    True
    >>> check_float_array(np.zeros(3, dtype=int), "x")
    Traceback (most recent call last):
        ...
    TypeError: x: expected dtype float32 or float64, got int64
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {describe(a)}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected dtype float32 or float64, got {a.dtype}"
        )
    if ndim is not None and a.ndim != ndim:
        raise ValueError(
            f"{name}: expected a {ndim}-d array, got shape {a.shape}"
        )
    return a


def check_same_dtype(**arrays: np.ndarray) -> np.dtype:
    """Raise TypeError unless all arrays share one float dtype.

    Examples
    --------
    >>> check_same_dtype(mu=np.zeros(2), log_var=np.ones(2))
    dtype('float64')
    >>> check_same_dtype(mu=np.zeros(2), log_var=np.ones(2, dtype=np.float32))
    Traceback (most recent call last):
        ...
    TypeError: log_var: expected dtype float64 like mu, got float32;
    convert one of them first
    """
    items = list(arrays.items())
    first_name, first = items[0]
    for name, a in items[1:]:
        if a.dtype != first.dtype:
            raise TypeError(
                f"{name}: expected dtype {first.dtype} like {first_name}, "
                f"got {a.dtype}; convert one of them first"
            )
    return first.dtype


def check_same_shape(ref_name: str, ref: np.ndarray, **arrays) -> None:
    """Raise ValueError unless every array has the shape of `ref`.

    Examples
    --------
    >>> mu = np.zeros((4, 2))
    >>> check_same_shape("mu", mu, log_var=np.zeros((4, 2)))
    >>> check_same_shape("mu", mu, log_var=np.zeros((4, 3)))
    Traceback (most recent call last):
        ...
    ValueError: log_var: expected shape (4, 2) like mu, got (4, 3)
    """
    for name, a in arrays.items():
        if a.shape != ref.shape:
            raise ValueError(
                f"{name}: expected shape {ref.shape} like {ref_name}, "
                f"got {a.shape}"
            )


def check_finite(a: np.ndarray, name: str) -> None:
    """Raise ValueError if `a` holds NaN or inf.

    Examples
    --------
    >>> check_finite(np.array([0.5, 1.0]), "x")
    >>> check_finite(np.array([0.5, np.inf]), "x")
    Traceback (most recent call last):
        ...
    ValueError: x: expected finite values, got inf at index (1,)
    """
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name}: expected finite values, got {a[tuple(bad)]} at index "
            f"{tuple(int(i) for i in bad)}"
        )


def check_positive(value, name: str, allow_zero: bool = False) -> float:
    """Return `value` as a float if it is a real number > 0 (or >= 0).

    Examples
    --------
    >>> check_positive(2, "sigma")
    2.0
    >>> check_positive(0, "delta", allow_zero=True)
    0.0
    >>> check_positive(-1.0, "sigma")
    Traceback (most recent call last):
        ...
    ValueError: sigma: expected a finite number > 0, got -1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {describe(value)}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and np.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value}")
    return value

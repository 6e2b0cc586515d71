"""Input and noise helpers of `VAEEstimator` (estimator.py): the
scikit-learn way of reading data (`as_real_array`, `check_features`:
lists, DataFrames and int arrays become float; scikit-learn's messages
for bad input) and the independent random streams derived from
``random_state`` (`seed_entropy`, `stream` and the ``*_STREAM``
purposes). Imports only numpy, scipy and _validation.py.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import sparse

from ..reference.arrays import describe

# Independent random streams derived from random_state, one per purpose.
INIT_STREAM, TRAIN_STREAM, SCORE_STREAM, SAMPLE_STREAM = 0, 1, 2, 3


def seed_entropy(random_state) -> int:
    """The integer seed behind `random_state`; a Generator is not advanced.

    Shared by `stream` and `VAEEstimator`'s per-example score noise.

    Examples
    --------
    >>> seed_entropy(None), seed_entropy(7)
    (0, 7)
    """
    if random_state is None:
        return 0
    if isinstance(random_state, np.random.Generator):
        return int(copy.deepcopy(random_state).integers(2**63))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) \
            and random_state >= 0:
        return int(random_state)
    raise TypeError("random_state: expected None, a non-negative int seed or a "
                    f"numpy.random.Generator, got {describe(random_state)}")


def stream(random_state, purpose: int) -> np.random.Generator:
    """A fresh Generator for one `purpose`, the same at every call.

    Examples
    --------
    >>> a, b = stream(5, TRAIN_STREAM), stream(5, TRAIN_STREAM)
    >>> bool(a.random() == b.random())
    True
    >>> bool(stream(5, SAMPLE_STREAM).random() == stream(5, TRAIN_STREAM).random())
    False
    """
    return np.random.default_rng([seed_entropy(random_state), purpose])


def as_real_array(X, name: str) -> np.ndarray:
    """`X` as an ndarray of floats, the scikit-learn way.

    Lists, DataFrames and int/bool/object arrays of numbers become
    float64 (scikit-learn's convention; numpyvae.VAE refuses integer
    data instead). Sparse, complex and non-numeric input is refused.

    Examples
    --------
    >>> a = as_real_array([[0, 1], [1, 0]], "X")
    >>> a.dtype, a.shape
    (dtype('float64'), (2, 2))
    >>> as_real_array(np.ones((1, 2), dtype=complex), "X")
    Traceback (most recent call last):
        ...
    ValueError: X: Complex data not supported, got dtype complex128
    """
    if sparse.issparse(X):
        raise TypeError(f"{name}: sparse input is not supported, got {type(X).__name__}; "
                        "use X.toarray()")
    try:
        a = np.asarray(X)
    except (TypeError, ValueError) as e:  # ragged nested lists
        raise ValueError(f"{name}: expected a 2-d array of real numbers ({e})") from None
    if a.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported, got dtype {a.dtype}")
    if a.dtype.kind in "iubO":
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: expected real numbers, got an entry that is "
                            f"not one ({e})") from None
    elif a.dtype.kind != "f":
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    return a


def check_features(a: np.ndarray, name: str, n_features: int | None, bernoulli: bool) -> None:
    """scikit-learn's messages for no features, a feature-count mismatch,
    NaN/inf and negative values (which a Bernoulli likelihood refuses).

    Examples
    --------
    >>> check_features(np.zeros((3, 4)), "X", n_features=4, bernoulli=True)
    >>> check_features(np.zeros((3, 5)), "X", n_features=4, bernoulli=True)
    Traceback (most recent call last):
        ...
    ValueError: X has 5 features, but VAEEstimator is expecting 4 features as input.
    """
    if a.ndim == 1:
        raise ValueError(f"{name}: expected a 2-d array, got shape {a.shape}; Reshape your data "
                         "with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one example")
    if a.ndim == 2 and a.shape[1] == 0:
        raise ValueError(f"{name}: 0 feature(s) (shape={a.shape}) while a minimum of 1 "
                         "is required.")
    if n_features is not None and a.ndim == 2 and a.shape[1] != n_features:
        raise ValueError(f"{name} has {a.shape[1]} features, but VAEEstimator is expecting "
                         f"{n_features} features as input.")
    if not np.isfinite(a).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{name}: Input contains NaN or infinity, got {a[bad]} at index {bad}")
    if bernoulli and a.size and a.min() < 0:
        raise ValueError(f"{name}: Negative values in data, but likelihood='bernoulli' "
                         f"needs values in [0, 1]; got a minimum of {a.min()}")

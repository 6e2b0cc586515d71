"""Input and noise helpers of `VAEEstimator` (sklearn_estimator.py): the
scikit-learn way of reading data (`as_real_array`, `check_features`:
lists, DataFrames and int arrays become float; scikit-learn's messages
for bad input), the range of the model's dtype (`check_fits_dtype`), the
Gaussian likelihood's feature scaling (`feature_scaling`, `standardize`)
and the independent random streams derived from ``random_state``
(`seed_entropy`, `stream` and the ``*_STREAM`` purposes). Imports only
numpy, scipy and reference/arrays.py.
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


def check_fits_dtype(a: np.ndarray, name: str, dtype) -> None:
    """Refuse finite values too large for `dtype`, the model's dtype
    (casting them would give inf), saying what to do.

    Examples
    --------
    >>> check_fits_dtype(np.array([[1e38]]), "X", np.float32)
    >>> import textwrap
    >>> try:
    ...     check_fits_dtype(np.array([[-1e39]]), "X", np.float32)
    ... except ValueError as e:
    ...     print(textwrap.fill(str(e), 72))
    X: values up to 1e+39 in absolute value do not fit in float32, the
    estimator's dtype (largest 3.4e+38); scale X down (e.g. X / X.std()) or
    use dtype='float64'
    """
    dtype = np.dtype(dtype)
    largest = float(np.finfo(dtype).max)
    peak = float(np.abs(a).max()) if a.size else 0.0
    if peak > largest:
        other = " or use dtype='float64'" if dtype.itemsize < 8 else ""
        raise ValueError(f"{name}: values up to {peak:.2g} in absolute value do not fit in "
                         f"{dtype}, the estimator's dtype (largest {largest:.2g}); scale "
                         f"{name} down (e.g. {name} / {name}.std()){other}")


def feature_scaling(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and standard deviation, in float64, finite for
    any finite x (a constant feature gets scale 1).

    Notes
    -----
    With peak_j = max_i |x_ij|, v = x / peak lies in [-1, 1], and
    mean_j = peak_j mean_i(v_ij), scale_j = peak_j std_i(v_ij): the
    squares of std are those of v, which cannot overflow (the squares
    of x do from |x| ~ 1.3e154 on).

    Examples
    --------
    >>> mean, scale = feature_scaling(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> mean.tolist(), scale.tolist()
    ([2.0, 5.0], [1.0, 1.0])
    >>> feature_scaling(np.array([[-1e300], [1e300]]))[1].tolist()
    [1e+300]
    """
    x = x.astype(np.float64)  # (n, d)
    peak = np.abs(x).max(axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    v = x / peak
    mean, std = peak * v.mean(axis=0), peak * v.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def standardize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, name: str) -> np.ndarray:
    """u = (x - mean) / scale, computed in float64, in x's dtype; a u too
    large for that dtype (x far from the data that `mean` and `scale`
    come from, or too near float64's limit) is refused.

    Examples
    --------
    >>> x = np.array([[1.0], [3.0]], dtype=np.float32)
    >>> standardize(x, np.array([2.0]), np.array([1.0]), "X").ravel().tolist()
    [-1.0, 1.0]
    >>> import textwrap
    >>> try:
    ...     standardize(x, np.array([2.0]), np.array([1e-39]), "X")
    ... except ValueError as e:
    ...     print(textwrap.fill(str(e), 72))
    X: standardized with mean_ and scale_ of fit, values reach 1e+39, beyond
    float32 (largest 3.4e+38): X lies too far from the data at fit, or too
    near float64's limit to standardize; scale X down
    """
    with np.errstate(over="ignore", invalid="ignore"):
        u = (x.astype(np.float64) - mean) / scale  # (n, d)
    largest = float(np.finfo(x.dtype).max)
    peak = float(np.abs(u).max()) if u.size else 0.0
    if not peak <= largest:  # inf or NaN too
        raise ValueError(f"{name}: standardized with mean_ and scale_ of fit, values reach "
                         f"{peak:.2g}, beyond {x.dtype} (largest {largest:.2g}): {name} lies "
                         f"too far from the data at fit, or too near float64's limit to "
                         f"standardize; scale {name} down")
    return u.astype(x.dtype)

"""Tools for checking gradients of your own layers: hypothesis strategies
and assertions built on `numpyvae.gradcheck`: `assert_grad_close` for a
scalar function, `assert_vjp_close` for a kernel with an array output.

As in numpyvae's own tests, hypothesis draws shapes and a seed and the
arrays come from ``numpy.random.default_rng(seed)``: failing examples are
small, reproducible and shrink well. Values stay at least `KINK_MARGIN`
from the kink of relu at 0, where a central difference (step 1e-5)
averages the two one-sided slopes, which no correct gradient equals.

hypothesis is an optional test dependency (``pip install hypothesis`` or
``numpyvae[test]``), imported only inside the strategy functions, so
the assertions work without it. Example: docs/gradient-checking.md.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.typing import NDArray

from ..protocol import Model
from ..reference.activations import ACTIVATIONS
from ..reference.layers import dense_forward
from ..reference.vae import loss_forward
from ..vae import LIKELIHOODS, POSTERIORS, VAE
from .gradcheck import ABS_TOL, FD_STEP, NORMWISE_TOL, REL_TOL, check_gradients, require_float64

Array = NDArray[np.floating]

__all__ = ["KINK_MARGIN", "MAX_TRIES", "SEEDS", "arrays_for_layer", "assert_grad_close",
           "assert_vjp_close", "batches", "check_log_weights_gradients", "hidden_pre_activations",
           "make_batch", "make_layer_arrays", "relu_margin", "vae_configs", "vae_models"]

KINK_MARGIN = 1e-3  # no relu input closer than this to 0 (100 finite-difference steps)
MAX_TRIES = 100     # redraws allowed to move every relu input off its kink
SEEDS = (0, 2**32 - 1)  # range of the drawn seeds


def _strategies():
    """``hypothesis.strategies``, or a one-line ImportError."""
    try:
        from hypothesis import strategies
    except ImportError:
        raise ImportError("numpyvae.testing strategies need hypothesis: pip install "
                          "hypothesis (or pip install numpyvae[test])") from None
    return strategies


def _off_kinks(a: Array, margin: float) -> bool:
    return a.size == 0 or float(np.abs(a).min()) >= margin


def make_layer_arrays(rng: np.random.Generator, n: int, d_in: int, d_out: int,
                      margin: float = KINK_MARGIN,
                      dtype="float64") -> tuple[Array, Array, Array]:
    """Random ``(x, W, b)`` for a dense layer, off the relu kink.

    x (n, d_in) and b (d_out,) are standard normal; W (d_in, d_out) has
    an initializer's scale, standard deviation 1/sqrt(d_in), so x @ W + b
    is of order 1 for any d_in and a tanh or sigmoid after the layer
    does not saturate (its gradient would drown in rounding noise).
    Every entry of x and of x @ W + b is at least `margin` from 0, so a
    relu applied to either is smooth within a finite-difference step;
    draws are repeated (from `rng`) until this holds.

    Examples
    --------
    >>> x, W, b = make_layer_arrays(np.random.default_rng(0), 4, 3, 2)
    >>> x.shape, W.shape, b.shape, x.dtype
    ((4, 3), (3, 2), (2,), dtype('float64'))
    >>> bool(np.abs(x).min() >= KINK_MARGIN)
    True
    """
    for _ in range(MAX_TRIES):
        x = rng.standard_normal((n, d_in)).astype(dtype)  # (n, d_in)
        W = (rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(dtype)
        b = rng.standard_normal(d_out).astype(dtype)
        if _off_kinks(x, margin) and _off_kinks(dense_forward(x, W, b)[0], margin):
            return x, W, b
    raise ValueError(f"margin: no draw in {MAX_TRIES} keeps x and x @ W + b at least "
                     f"{margin} from 0; use a smaller margin")


def arrays_for_layer(max_batch: int = 8, max_features: int = 16,
                     margin: float = KINK_MARGIN, dtype="float64"):
    """Strategy for float64 ``(x, W, b)`` of a dense layer.

    Draws the batch size n in 1..`max_batch`, d_in and d_out in
    1..`max_features` and a seed; `make_layer_arrays` makes x (n, d_in),
    W (d_in, d_out) and b (d_out,) with ``default_rng(seed)``, every
    entry of x and of x @ W + b at least `margin` away from 0. Like every
    strategy here, raises ImportError if hypothesis is missing.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, database=None)
    ... @given(arrays_for_layer())
    ... def test_dense_bias_gradient(xWb):
    ...     x, W, b = xWb
    ...     f = lambda v: float(dense_forward(x, W, v)[0].sum())
    ...     assert_grad_close(f, lambda v: np.full_like(v, len(x)), b)
    >>> test_dense_bias_gradient()
    """
    st = _strategies()
    sizes = st.tuples(st.integers(1, max_batch), st.integers(1, max_features),
                      st.integers(1, max_features), st.integers(*SEEDS))
    return sizes.map(lambda t: make_layer_arrays(np.random.default_rng(t[3]), t[0], t[1],
                                                 t[2], margin, dtype))


def vae_configs(likelihoods=LIKELIHOODS, posteriors=POSTERIORS, activations=ACTIVATIONS,
                max_depth: int = 2, max_width: int = 5, max_input_dim: int = 6,
                max_latent_dim: int = 3, dtype="float64"):
    """Strategy for keyword arguments of a small, valid `numpyvae.VAE`.

    Draws likelihood x posterior x depth (0..`max_depth` hidden layers of
    width 1..`max_width`) x activation, input_dim in 1..`max_input_dim`,
    latent_dim in 1..`max_latent_dim`, sigma in [0.5, 2] for a Gaussian
    decoder and delta in [0.25, 1.5] for a fixed posterior (never 0: its
    KL would be infinite). Each draw is a dict: ``VAE(**config)`` builds
    the model (see `vae_models` for models ready to check).

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, database=None)
    ... @given(vae_configs(posteriors=("fixed",)))
    ... def test_builds(config):
    ...     assert VAE(**config).config.delta > 0
    >>> test_builds()
    """
    st = _strategies()
    hidden = st.lists(st.integers(1, max_width), max_size=max_depth).map(tuple)
    draws = st.tuples(st.sampled_from(likelihoods), st.sampled_from(posteriors), hidden,
                      st.sampled_from(activations), st.integers(1, max_input_dim),
                      st.integers(1, max_latent_dim), st.floats(0.5, 2.0),
                      st.floats(0.25, 1.5))
    return draws.map(lambda t: _config(*t, dtype=dtype))


def _config(likelihood, posterior, hidden, activation, input_dim, latent_dim, sigma, delta,
            *, dtype) -> dict:
    config = dict(input_dim=input_dim, latent_dim=latent_dim, hidden=hidden,
                  activation=activation, likelihood=likelihood, posterior=posterior,
                  sigma=sigma if likelihood == "gaussian" else None,
                  delta=delta if posterior == "fixed" else None, dtype=dtype)
    return {k: v for k, v in config.items() if v is not None}


def vae_models(configs=None):
    """Strategy for small float64 `VAE` models with nonzero biases.

    Draws a configuration from `configs` (default ``vae_configs()``) and
    a seed, builds ``VAE(**config, rng=seed)`` and adds U(0.1, 0.5) to
    every bias. Initial biases are 0, which makes two kinds of point
    common that a gradient check cannot judge: a relu fed only by dead
    units sits exactly on its kink, and with every relu dead log_var = 0
    is a stationary point of the KL, whose gradient is rounding noise.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, database=None)
    ... @given(vae_models(vae_configs(likelihoods=("gaussian",))))
    ... def test_builds(model):
    ...     assert model.config.likelihood == "gaussian"
    >>> test_builds()
    """
    st = _strategies()
    configs = vae_configs() if configs is None else configs
    return st.tuples(configs, st.integers(*SEEDS)).map(lambda t: _model(*t))


def _model(config: dict, seed: int) -> VAE:
    rng = np.random.default_rng(seed)
    model = VAE(**config, rng=rng)
    for name, p in model.params.items():
        if name.endswith(".b"):
            p += rng.uniform(0.1, 0.5, p.shape).astype(p.dtype)
    return model


def hidden_pre_activations(model: VAE, x: Array, eps: Array) -> Array:
    """Every hidden pre-activation of encoder and decoder, flattened.

    Read from the reference chain's caches (`model.loss_forward`), at
    z = mu + std * eps: each hidden layer's activation cache is its
    input a for relu, softplus and identity (its output for tanh and
    sigmoid), so call this for those three.

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(4,), dtype="float64", rng=0)
    >>> x, eps = np.full((5, 3), 0.5), np.ones((5, 2))
    >>> hidden_pre_activations(model, x, eps).shape  # 5 rows x (4 + 4) units
    (40,)
    """
    x, eps = model.as_input(x), model.as_latent(eps, "eps")
    _, _, cache = loss_forward(model.params, x, eps, model.config, 0.0)
    layers = cache["enc"][0] + cache["dec"][0]  # (name, dense_cache, act_cache)
    found = [act_cache.ravel() for _, _, act_cache in layers]
    return np.concatenate(found) if found else np.zeros(0)


def relu_margin(model: VAE, x: Array, eps: Array) -> float:
    """Smallest |pre-activation| of any hidden unit, encoder and decoder.

    Parameters
    ----------
    model : VAE
    x : ndarray, shape (n, input_dim)
    eps : ndarray, shape (n, latent_dim) or (k, n, latent_dim)
        The decoder is evaluated at z = mu + std * eps for every slab.

    Returns
    -------
    float
        inf when the model has no hidden layer. A check whose steps move
        no pre-activation by more than this stays off relu's kink.

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(), dtype="float64", rng=0)
    >>> relu_margin(model, np.zeros((1, 3)), np.zeros((1, 2)))
    inf
    """
    if eps.ndim == 3:  # (k, n, d_z): repeat x once per slab
        k, n, d_z = eps.shape
        x = np.broadcast_to(x, (k, *x.shape)).reshape(k * n, -1)
        eps = eps.reshape(k * n, d_z)
    found = hidden_pre_activations(model, x, eps)
    return float(np.abs(found).min()) if found.size else math.inf


def make_batch(model: VAE, rng: np.random.Generator, n: int,
               margin: float = KINK_MARGIN) -> tuple[Array, Array]:
    """A data batch x and noise eps for `model`, in the model's dtype.

    x is uniform in [0, 1) for a Bernoulli decoder and standard normal
    for a Gaussian one; eps is standard normal, (n, latent_dim). For a
    relu model the batch is redrawn from `rng` until every hidden
    pre-activation (encoder and decoder, at z = mu + std * eps) is at
    least `margin` from 0 (a model straight from init, with zero biases,
    may have none: use `vae_models`).

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(4,), dtype="float64", rng=0)
    >>> x, eps = make_batch(model, np.random.default_rng(0), 5)
    >>> x.shape, eps.shape, x.dtype
    ((5, 3), (5, 2), dtype('float64'))
    """
    c = model.config
    for _ in range(MAX_TRIES):
        if c.likelihood == "bernoulli":
            x = rng.random((n, c.input_dim)).astype(model.dtype)
        else:
            x = rng.standard_normal((n, c.input_dim)).astype(model.dtype)
        eps = rng.standard_normal((n, c.latent_dim)).astype(model.dtype)
        if c.activation != "relu" or _off_kinks(hidden_pre_activations(model, x, eps), margin):
            return x, eps
    raise ValueError(f"model: no batch in {MAX_TRIES} draws keeps every relu "
                     f"pre-activation at least {margin} from 0 (a dead unit?)")


def batches(model: VAE, max_batch: int = 5, margin: float = KINK_MARGIN):
    """Strategy for batches ``(x, eps)`` that `model` accepts.

    Draws the batch size n in 1..`max_batch` and a seed; `make_batch`
    makes x (n, input_dim) and eps (n, latent_dim) in the model's dtype,
    x in [0, 1) for Bernoulli, relu inputs at least `margin` from 0.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> model = VAE(3, 2, hidden=(), dtype="float64", rng=0)
    >>> @settings(max_examples=5, database=None)
    ... @given(batches(model))
    ... def test_shapes(batch):
    ...     x, eps = batch
    ...     assert x.shape[1] == 3 and eps.shape == (len(x), 2)
    >>> test_shapes()
    """
    st = _strategies()
    draws = st.tuples(st.integers(1, max_batch), st.integers(*SEEDS))
    return draws.map(lambda t: make_batch(model, np.random.default_rng(t[1]), t[0], margin))


def _worst_entry(check, f_value: float, rtol: float, atol: float) -> str:
    name, a, n = check.name, check.worst_analytic, check.worst_numerical
    rel = abs(a - n) / max(abs(a), abs(n)) if a != n else 0.0
    allowed = atol * max(1.0, abs(f_value)) + rtol * abs(n)
    return (f"{name}: gradient differs from central differences; worst entry "
            f"{name}[{', '.join(map(str, check.worst_index))}]: analytic {a:.10g}, "
            f"numerical {n:.10g}, relative error {rel:.3g} (|a - n| = {abs(a - n):.3g}, "
            f"allowed {allowed:.3g}); normwise relative error {check.normwise_error:.3g}")


def assert_grad_close(f: Callable, grad_f: Callable, *arrays: np.ndarray,
                      rtol: float = REL_TOL, atol: float = ABS_TOL,
                      normwise_tol: float = NORMWISE_TOL, fd_step: float = FD_STEP) -> None:
    """Assert that `grad_f` is the gradient of `f`, by central differences.

    Parameters
    ----------
    f : callable
        ``f(*arrays)`` returns a scalar.
    grad_f : callable
        ``grad_f(*arrays)`` returns the analytic gradients df/darray, one
        per array, each shaped like its array (a single array when there
        is one input).
    *arrays : ndarray, float64
        The point of the check; not modified.
    rtol, atol : float
        Every entry must satisfy ``|a - n| <= atol * max(1, |f|) +
        rtol * |n|`` with a analytic, n numerical.
    normwise_tol : float
        And per array ``||a - n|| / (||a|| + ||n||) < normwise_tol``.
    fd_step : float
        Central-difference step h.

    Raises
    ------
    AssertionError
        On a mismatch; the message names the worst entry (index,
        analytic, numerical, relative error) of every failing array and
        ends with the `numpyvae.gradcheck.check_gradients` table.
    TypeError
        If an array is not float64 (float32 rounding, about 1e-7 |f| / h,
        is far above the tolerance), or `f` does not return a scalar.
    ValueError
        If `grad_f` does not return one gradient per array of its shape.

    Notes
    -----
    Built on `numpyvae.gradcheck.check_gradients`: (f(v + h e_i) - f(v - h e_i))
    / (2 h) per entry i, 2 calls of f per entry; keep the arrays small.

    Examples
    --------
    >>> x = np.array([1.0, -2.0, 0.5])
    >>> f = lambda v: float(np.sum(v ** 3))
    >>> assert_grad_close(f, lambda v: 3 * v ** 2, x)
    >>> g = lambda v: 3.003 * v ** 2
    >>> assert_grad_close(f, g, x)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    AssertionError: arrays[0]: ... analytic 12.012, numerical 12, ...
    """
    if not arrays:
        raise TypeError("arrays: expected at least one array to differentiate, got none")
    names = [f"arrays[{i}]" for i in range(len(arrays))]
    for name, a in zip(names, arrays, strict=True):
        require_float64(a, name)
    f_value = f(*arrays)
    if np.ndim(f_value) != 0:
        raise TypeError(f"f: expected a scalar, got an array of shape {np.shape(f_value)}; "
                        "reduce it, e.g. np.sum(dout * out) for a random dout")
    grads = grad_f(*arrays)
    grads = [grads] if isinstance(grads, np.ndarray) else list(grads)
    if len(grads) != len(arrays):
        raise ValueError(f"grad_f: expected {len(arrays)} gradients, one per array, "
                         f"got {len(grads)}")
    report = check_gradients(f, list(arrays), grads, names, fd_step=fd_step,
                       normwise_tol=normwise_tol, abs_tol=atol, rel_tol=rtol)
    if not report.passed:
        lines = [_worst_entry(c, report.f_value, rtol, atol)
                 for c in report.inputs if not c.passed]
        raise AssertionError("\n".join(lines) + "\n\n" + str(report))


def assert_vjp_close(forward: Callable, inputs, backward: Callable,
                     rng: np.random.Generator | int = 0, names=None,
                     rtol: float = REL_TOL, atol: float = ABS_TOL,
                     normwise_tol: float = NORMWISE_TOL, fd_step: float = FD_STEP) -> None:
    """Assert that `backward` is the vector-Jacobian product of `forward`.

    For a kernel with an array output: a random upstream gradient dout
    is drawn, ``backward(dout, cache)`` is judged against central
    differences of sum(dout * out), entry by entry, for every input.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> (out, cache)``, out an array (the numpyvae
        kernel contract; wrap constant arguments in a lambda).
    inputs : ndarray or sequence of ndarray, float64
        The point of the check; not modified.
    backward : callable
        ``backward(dout, cache)`` -> the gradient wrt each input, one per
        input in order (a single array when there is one input).
    rng : numpy.random.Generator or int
        Source of dout, N(0, 1) entries shaped like out (an int is a
        seed).
    names : sequence of str, optional
        Input names for the message (default ``inputs[0], ...``).
    rtol, atol, normwise_tol, fd_step : float
        The gate of `assert_grad_close`, with f = sum(dout * out).

    Raises
    ------
    AssertionError
        On a mismatch; the message names the worst entry of every
        failing input (index, analytic, numerical, relative error) and
        ends with the `numpyvae.gradcheck.check_gradients` table.
    TypeError
        If an input is not float64.
    ValueError
        If `backward` does not return one gradient per input.

    Notes
    -----
    f(x) = sum(dout * forward(x)),  df/dx = J^T dout = backward(dout)
    numerical: (f(x + h e_i) - f(x - h e_i)) / (2 h) per entry i. A
    random dout weighs every output differently, so an error that moves
    gradient between outputs cannot cancel as it can with dout = 1.

    Examples
    --------
    >>> from numpyvae.reference.kl import kl_backward, kl_forward
    >>> rng = np.random.default_rng(0)
    >>> mu, log_var = rng.standard_normal((2, 3)), rng.random((2, 3))
    >>> assert_vjp_close(kl_forward, [mu, log_var], kl_backward)
    >>> def no_half(dkl, cache):  # dlog_var without its factor 0.5
    ...     mu, var = cache
    ...     return dkl[:, None] * mu, dkl[:, None] * (var - 1.0)
    >>> assert_vjp_close(kl_forward, [mu, log_var], no_half,
    ...                  names=["mu", "log_var"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    AssertionError: log_var: gradient differs ... worst entry log_var[...
    """
    inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    names = [f"inputs[{i}]" for i in range(len(inputs))] if names is None else list(names)
    for name, x in zip(names, inputs, strict=True):
        require_float64(x, name)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out, cache = forward(*inputs)
    dout = rng.standard_normal(np.shape(out))  # the random upstream gradient
    grads = backward(dout, cache)
    grads = [grads] if isinstance(grads, np.ndarray) else list(grads)
    if len(grads) != len(inputs):
        raise ValueError(f"backward: expected {len(inputs)} gradients, one per input, "
                         f"got {len(grads)}")

    def f(*arrays):
        return float(np.sum(dout * forward(*arrays)[0]))

    report = check_gradients(f, inputs, grads, names, fd_step=fd_step,
                       normwise_tol=normwise_tol, abs_tol=atol, rel_tol=rtol)
    if not report.passed:
        lines = [_worst_entry(c, report.f_value, rtol, atol)
                 for c in report.inputs if not c.passed]
        raise AssertionError("\n".join(lines) + "\n\n" + str(report))


def check_log_weights_gradients(model: Model, x: Array, eps: Array, dlog_w: Array, grads: dict,
                                **tol):
    """`check_gradients` of sum(dlog_w * log w) wrt every parameter array
    of any model of the protocol, eps held fixed.

    `grads` is what the model's ``log_weights_backward(dlog_w, cache)``
    gave (or a planted wrong copy of it); `tol` goes to `check_gradients`.
    The finite differences evaluate ``model.log_weights`` at moved
    parameters, swapped in and restored around each call.

    Examples
    --------
    >>> model = VAE(3, 2, hidden=(4,), activation="tanh", dtype="float64")
    >>> rng = np.random.default_rng(0)
    >>> x, eps, g = rng.random((5, 3)), rng.standard_normal((4, 5, 2)), rng.random((4, 5))
    >>> grads = model.log_weights_backward(g, model.log_weights(x, eps)[2])
    >>> check_log_weights_gradients(model, x, eps, g, grads).passed
    True
    """
    names = list(model.params)

    def f(*arrays):
        saved = model.params
        model.params = dict(zip(names, arrays, strict=True))
        try:
            return float(np.sum(dlog_w * model.log_weights(x, eps)[0]))
        finally:
            model.params = saved

    return check_gradients(f, [model.params[k] for k in names], [grads[k] for k in names],
                           names=names, **tol)

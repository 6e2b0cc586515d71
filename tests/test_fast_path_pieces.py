"""Finite-difference checks of each piece of model.py's fast path, one by
one (the whole loss is checked in test_model.py and test_speed_path.py).

Each piece is a function v -> out; its backward, given a random upstream
gradient dout, must equal numerical_vjp(piece, v, dout) in float64.
"""

import numpy as np
import pytest

from numpyvae import VAE
from numpyvae.gradcheck import compare_gradients, numerical_vjp
from numpyvae.model import (_dense_backward_into, _dense_into, _heads_backward,
                            _heads_forward, _hidden_backward, _hidden_forward,
                            _log_lik_backward_into, _log_lik_into, _mlp_backward,
                            _mlp_forward)


def _close(name, analytic, f, v, dout):
    numerical = numerical_vjp(f, v, dout)
    f_value = float(np.sum(dout * f(v)))
    check = compare_gradients(name, analytic, numerical, f_value)
    assert check.passed, check


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    model = VAE(6, 3, hidden=(5, 4), activation="tanh", dtype="float64", rng=0)
    for b in (k for k in model.params if k.endswith(".b")):
        model.params[b][...] = rng.uniform(0.1, 0.5, model.params[b].shape)
    return model, rng


def test_dense_backward_into(setup):
    model, rng = setup
    h, W, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    da = rng.standard_normal((4, 3))
    grads = {"L.W": np.empty((5, 3)), "L.b": np.empty(3)}
    dh = _dense_backward_into(da, h, W, grads, "L", {}, need_dx=True)
    _close("h", dh, lambda v: _dense_into(v, W, b, {}, "L").copy(), h, da)
    _close("W", grads["L.W"], lambda v: _dense_into(h, v, b, {}, "L").copy(), W, da)
    _close("b", grads["L.b"], lambda v: _dense_into(h, W, v, {}, "L").copy(), b, da)
    assert _dense_backward_into(da, h, W, grads, "L", {}, need_dx=False) is None


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_hidden_backward(setup, activation):
    model, rng = setup
    model = VAE(6, 3, hidden=(5, 4), activation=activation, dtype="float64", rng=1)
    for name in model.params:
        if name.endswith(".b"):
            model.params[name][...] = rng.uniform(0.2, 0.6, model.params[name].shape)
    x = rng.random((4, 6))
    h, layers = _hidden_forward(model.params, x, "enc", model.config, {})
    dh = rng.standard_normal(h.shape)
    grads = {k: np.empty_like(v) for k, v in model.params.items()}
    dx = _hidden_backward(dh.copy(), layers, model.config, grads, {}, need_dx=True)

    def forward_x(v):
        return _hidden_forward(model.params, v, "enc", model.config, {})[0].copy()

    _close("x", dx, forward_x, x, dh)
    for name in ("enc0.W", "enc1.b"):
        def forward_p(v, name=name):
            params = dict(model.params, **{name: v})
            return _hidden_forward(params, x, "enc", model.config, {})[0].copy()
        _close(name, grads[name], forward_p, model.params[name].copy(), dh)


@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_heads_backward(setup, posterior):
    _, rng = setup
    model = VAE(6, 3, hidden=(5,), posterior=posterior, dtype="float64", rng=2)
    h = rng.standard_normal((4, 5))
    mu, log_var, W = _heads_forward(model.params, h, model.config, {})
    width = 6 if posterior == "diagonal" else 3
    dheads = rng.standard_normal((4, width))
    grads = {k: np.empty_like(v) for k, v in model.params.items()}
    dh = _heads_backward(dheads, h, W, model.config, grads, {}, need_dx=True)

    def heads(params, v):
        mu, log_var, _ = _heads_forward(params, v, model.config, {})
        return np.hstack([mu, log_var]) if log_var is not None else mu.copy()

    _close("h", dh, lambda v: heads(model.params, v), h, dheads)
    for name in ("mu.W", "mu.b") + (("log_var.W", "log_var.b") if width == 6 else ()):
        _close(name, grads[name], lambda v, n=name: heads(dict(model.params, **{n: v}), h),
               model.params[name].copy(), dheads)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_lik_backward_into(setup, likelihood):
    _, rng = setup
    model = VAE(6, 3, hidden=(), likelihood=likelihood, sigma=None, dtype="float64", rng=3)
    x, out = rng.random((4, 6)), rng.standard_normal((4, 6))
    _, cache = _log_lik_into(x, out, model.config, {})
    dout = _log_lik_backward_into(cache, 4, model.config, {})
    # the loss's share: -mean(log_lik), i.e. an upstream gradient of -1/n
    _close("out", dout, lambda v: _log_lik_into(x, v, model.config, {})[0].copy(), out,
           np.full(4, -1.0 / 4))


def test_mlp_backward(setup):
    model, rng = setup
    z = rng.standard_normal((4, 3))
    h, caches = _mlp_forward(model.params, z, "dec", 2, "tanh")
    dh = rng.standard_normal(h.shape)
    grads = {}
    dz = _mlp_backward(dh, caches, "tanh", grads)
    _close("z", dz, lambda v: _mlp_forward(model.params, v, "dec", 2, "tanh")[0], z, dh)
    _close("dec1.W", grads["dec1.W"],
           lambda v: _mlp_forward(dict(model.params, **{"dec1.W": v}), z, "dec", 2, "tanh")[0],
           model.params["dec1.W"].copy(), dh)


# The readable chain of model.py (used by iwae.py and the estimators), piece by piece.

def test_decoder_backward(setup):
    from numpyvae.model import decoder_backward, decoder_forward
    model, rng = setup
    z = rng.standard_normal((4, 3))
    out, cache = decoder_forward(model.params, z, model.config)
    dout = rng.standard_normal(out.shape)
    grads = {}
    dz = decoder_backward(dout, cache, model.config, grads)
    _close("z", dz, lambda v: decoder_forward(model.params, v, model.config)[0], z, dout)
    _close("out.W", grads["out.W"],
           lambda v: decoder_forward(dict(model.params, **{"out.W": v}), z, model.config)[0],
           model.params["out.W"].copy(), dout)


def test_encoder_backward(setup):
    from numpyvae.model import encoder_backward, encoder_forward
    model, rng = setup
    x = rng.random((4, 6))
    mu, log_var, cache = encoder_forward(model.params, x, model.config)
    dmu, dlog_var = rng.standard_normal(mu.shape), rng.standard_normal(log_var.shape)
    grads = {}
    dx = encoder_backward(dmu, dlog_var, cache, model.config, grads)

    def both(params, v):
        mu, log_var, _ = encoder_forward(params, v, model.config)
        return np.hstack([mu, log_var])

    upstream = np.hstack([dmu, dlog_var])
    _close("x", dx, lambda v: both(model.params, v), x, upstream)
    _close("enc0.W", grads["enc0.W"], lambda v: both(dict(model.params, **{"enc0.W": v}), x),
           model.params["enc0.W"].copy(), upstream)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_lik_backward(setup, likelihood):
    from numpyvae.model import log_lik_backward, log_lik_forward
    _, rng = setup
    model = VAE(6, 3, hidden=(), likelihood=likelihood, dtype="float64", rng=3)
    x, out = rng.random((4, 6)), rng.standard_normal((4, 6))
    dlog_lik = rng.standard_normal(4)
    _, cache = log_lik_forward(x, out, model.config)
    dout = log_lik_backward(dlog_lik, cache, model.config)
    _close("out", dout, lambda v: log_lik_forward(x, v, model.config)[0], out, dlog_lik)

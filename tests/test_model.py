"""Tests for numpyvae/model.py: the whole loss checked against central
differences for every configuration (every parameter array, eps held
fixed), a property-based directional check, the delta = 0 autoencoder,
known values and an independent reference of the linear model."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpyvae import VAE
from numpyvae.gradcheck import check_gradients, directional_check
from numpyvae.model import (_mlp_backward, _mlp_forward, decoder_backward, decoder_forward,
                            encoder_backward, encoder_forward, log_lik_backward,
                            log_lik_forward, loss_backward, loss_forward)
from numpyvae.testing import assert_grad_close, hidden_pre_activations

N, D_X, D_Z = 5, 6, 3  # batch, input and latent sizes: small, so each check is ~20 ms
RELU_MARGIN = 1e-3     # no relu pre-activation this close to its kink at 0


def make_model(likelihood="bernoulli", posterior="diagonal", hidden=(7, 5), activation="tanh",
               delta=0.5, seed=0, dtype="float64"):
    """A small model whose biases are random too (init puts them at 0)."""
    model = VAE(D_X, D_Z, hidden=hidden, activation=activation, likelihood=likelihood,
                sigma=0.7 if likelihood == "gaussian" else None, posterior=posterior,
                delta=delta if posterior == "fixed" else None, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1000)
    for name, p in model.params.items():
        if name.endswith(".b"):
            model.params[name] = (0.3 * rng.standard_normal(p.shape)).astype(p.dtype)
    return model


def make_batch(model, seed, n=N):
    """x (in [0, 1] for Bernoulli, real for Gaussian) and eps, in the model's dtype."""
    rng = np.random.default_rng(seed)
    c = model.config
    if c.likelihood == "bernoulli":
        x = rng.random((n, c.input_dim))
    else:
        x = rng.standard_normal((n, c.input_dim))
    eps = rng.standard_normal((n, c.latent_dim))
    return x.astype(model.dtype), eps.astype(model.dtype)


def away_from_kinks(likelihood, posterior, hidden, activation):
    """A model and batch with every relu pre-activation >= RELU_MARGIN from 0.

    The finite-difference step (1e-5) moves a pre-activation by far less
    than the margin, so the loss is smooth inside every central difference.
    """
    for seed in range(50):
        model = make_model(likelihood, posterior, hidden, activation, seed=seed)
        x, eps = make_batch(model, seed)
        if activation != "relu":
            return model, x, eps
        a = hidden_pre_activations(model, x, eps)
        if np.abs(a).min() > RELU_MARGIN:
            return model, x, eps
    raise AssertionError("no seed in 0..49 keeps the relu pre-activations away from 0")


def check_loss_gradients(model, x, eps, beta, grads):
    """gradcheck of loss_forward wrt every parameter array, eps fixed."""
    names = list(model.params)

    def f(*arrays):
        return loss_forward(dict(zip(names, arrays)), x, eps, model.config, beta)[0]

    return check_gradients(f, list(model.params.values()), [grads[k] for k in names], names)


# ------------------------------------------------- every configuration

ARCHITECTURES = [((), "tanh"), ((7, 5), "tanh"), ((7, 5), "relu")]


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0], ids=lambda b: f"beta{b:g}")
@pytest.mark.parametrize("hidden,activation", ARCHITECTURES,
                         ids=["linear", "deep-tanh", "deep-relu"])
@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_loss_gradients_match_finite_differences(likelihood, posterior, hidden, activation,
                                                 beta):
    model, x, eps = away_from_kinks(likelihood, posterior, hidden, activation)
    loss, grads = model.loss_and_grads(x, eps, beta)
    report = check_loss_gradients(model, x, eps, beta, grads)
    assert report.passed, f"\n{report}"
    assert [c.name for c in report.inputs] == list(model.params)


@pytest.mark.parametrize("activation", ["softplus", "sigmoid", "identity"])
def test_loss_gradients_other_activations(activation):
    model, x, eps = away_from_kinks("gaussian", "diagonal", (4,), activation)
    _, grads = model.loss_and_grads(x, eps, 1.0)
    report = check_loss_gradients(model, x, eps, 1.0, grads)
    assert report.passed, f"\n{report}"


def test_relu_case_really_is_away_from_kinks():
    model, x, eps = away_from_kinks("bernoulli", "diagonal", (7, 5), "relu")
    a = hidden_pre_activations(model, x, eps)
    assert a.size == N * 2 * (7 + 5)
    assert np.abs(a).min() > RELU_MARGIN
    assert (a < 0).any() and (a > 0).any()  # both sides of the kink are exercised


# ---------------------------------------------- delta = 0: autoencoder

def test_point_mass_posterior_with_beta_zero_is_an_autoencoder():
    model = make_model("bernoulli", "fixed", delta=0.0)
    x, eps = make_batch(model, 0)
    loss, grads = model.loss_and_grads(x, eps, beta=0.0)
    assert math.isfinite(loss)
    report = check_loss_gradients(model, x, eps, 0.0, grads)
    assert report.passed, f"\n{report}"
    # z = mu exactly: the noise has no effect
    other_eps = np.random.default_rng(99).standard_normal(eps.shape)
    assert model.loss_and_grads(x, other_eps, beta=0.0)[0] == loss


@pytest.mark.parametrize("beta", [1e-3, 1.0, 4.0])
def test_point_mass_posterior_with_positive_beta_is_refused(beta):
    model = make_model("bernoulli", "fixed", delta=0.0)
    x, eps = make_batch(model, 0)
    with pytest.raises(ValueError, match="beta.*KL.*infinite"):
        model.loss_and_grads(x, eps, beta=beta)


# ------------------------------------------- property-based, any size

activations = st.sampled_from(["tanh", "softplus", "sigmoid", "identity"])  # smooth


@given(likelihood=st.sampled_from(["bernoulli", "gaussian"]),
       posterior=st.sampled_from(["diagonal", "fixed"]),
       hidden=st.lists(st.integers(1, 6), max_size=2), activation=activations,
       beta=st.sampled_from([0.0, 0.5, 1.0, 4.0]), n=st.integers(1, 6),
       d_x=st.integers(1, 8), d_z=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_loss_gradient_directional(likelihood, posterior, hidden, activation, beta, n, d_x,
                                   d_z, seed):
    rng = np.random.default_rng(seed)
    model = VAE(d_x, d_z, hidden=tuple(hidden), activation=activation, likelihood=likelihood,
                posterior=posterior, delta=0.8 if posterior == "fixed" else None,
                dtype="float64", rng=rng)
    x = rng.random((n, d_x)) if likelihood == "bernoulli" else rng.standard_normal((n, d_x))
    eps = rng.standard_normal((n, d_z))
    loss, grads = model.loss_and_grads(x, eps, beta)
    names, shapes = list(model.params), [p.shape for p in model.params.values()]
    sizes = [p.size for p in model.params.values()]

    def unflatten(theta):
        parts = np.split(theta, np.cumsum(sizes)[:-1])
        return {k: v.reshape(s) for k, v, s in zip(names, parts, shapes)}

    theta = np.concatenate([p.ravel() for p in model.params.values()])
    dtheta = np.concatenate([grads[k].ravel() for k in names])
    f = lambda t: loss_forward(unflatten(t), x, eps, model.config, beta)[0]  # noqa: E731
    analytic, numerical = directional_check(f, theta, dtheta, rng)
    assert abs(analytic - numerical) <= 1e-6 * max(1.0, abs(loss)) + 1e-5 * abs(numerical)


# --------------------------------------------------------- known values

def test_kl_is_zero_at_the_prior():
    model = make_model("bernoulli", "diagonal")
    for k in ("mu.W", "mu.b", "log_var.W", "log_var.b"):
        model.params[k][...] = 0.0  # mu = 0, log_var = 0: q = r
    x, eps = make_batch(model, 0)
    _, terms, _ = loss_forward(model.params, x, eps, model.config, 1.0)
    np.testing.assert_array_equal(terms["kl"], 0.0)


def test_fixed_posterior_kl_is_zero_at_the_prior():
    model = make_model("gaussian", "fixed", delta=1.0)
    model.params["mu.W"][...] = 0.0
    model.params["mu.b"][...] = 0.0
    x, eps = make_batch(model, 0)
    _, terms, _ = loss_forward(model.params, x, eps, model.config, 1.0)
    np.testing.assert_allclose(terms["kl"], 0.0, atol=1e-15)


@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.5])
def test_loss_is_mean_neg_log_lik_plus_beta_mean_kl(posterior, beta):
    model = make_model("gaussian", posterior)
    x, eps = make_batch(model, 3)
    loss, terms, _ = loss_forward(model.params, x, eps, model.config, beta)
    assert terms["log_lik"].shape == terms["kl"].shape == (N,)
    assert (terms["kl"] > 0).all()
    expected = -np.mean(terms["log_lik"]) + beta * np.mean(terms["kl"])
    assert loss == pytest.approx(expected, rel=1e-14, abs=1e-14)
    assert model.loss_and_grads(x, eps, beta)[0] == loss


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_linear_model_matches_an_independent_reference(likelihood):
    """hidden=(): the whole ELBO written out directly from the notes."""
    model = make_model(likelihood, "diagonal", hidden=())
    x, eps = make_batch(model, 4)
    p = model.params
    mu = x @ p["mu.W"] + p["mu.b"]
    log_var = x @ p["log_var.W"] + p["log_var.b"]
    z = mu + np.exp(0.5 * log_var) * eps
    out = z @ p["out.W"] + p["out.b"]
    if likelihood == "bernoulli":  # x log s(o) + (1 - x) log(1 - s(o)) = x o - log(1 + e^o)
        log_lik = (x * out - np.logaddexp(0.0, out)).sum(axis=1)
    else:
        sigma = 0.7
        log_lik = (-0.5 * ((x - out) / sigma) ** 2 - math.log(sigma)
                   - 0.5 * math.log(2 * math.pi)).sum(axis=1)
    kl = 0.5 * (mu ** 2 + np.exp(log_var) - 1.0 - log_var).sum(axis=1)
    loss, terms, _ = loss_forward(p, x, eps, model.config, 1.0)
    np.testing.assert_allclose(terms["log_lik"], log_lik, rtol=1e-12)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-12)
    assert loss == pytest.approx(np.mean(kl - log_lik), rel=1e-12)
    np.testing.assert_allclose(model.elbo_terms(x)["kl"], kl, rtol=1e-12)  # KL needs no eps


def test_loss_and_grads_equals_the_pure_functions():
    model = make_model("bernoulli", "diagonal")
    x, eps = make_batch(model, 5)
    loss, grads = model.loss_and_grads(x, eps, 2.0)
    loss2, _, cache = loss_forward(model.params, x, eps, model.config, 2.0)
    grads2 = loss_backward(cache)
    assert loss == loss2
    assert list(grads) == list(grads2) == list(model.params)
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads2[k])


@pytest.mark.parametrize("likelihood,posterior", [("bernoulli", "diagonal"),
                                                  ("gaussian", "fixed")])
def test_float32_model_gives_float32_grads_and_a_python_float_loss(likelihood, posterior):
    model = make_model(likelihood, posterior, dtype="float32")
    x, eps = make_batch(model, 0)
    loss, grads = model.loss_and_grads(x, eps)
    assert type(loss) is float and math.isfinite(loss)
    assert list(grads) == list(model.params)
    for k, g in grads.items():
        assert g.dtype == np.float32, k
        assert g.shape == model.params[k].shape, k
    _, terms, _ = loss_forward(model.params, x, eps, model.config, 1.0)
    assert terms["log_lik"].dtype == terms["kl"].dtype == np.float32
    # and it agrees with the float64 model holding the same weights
    model64 = make_model(likelihood, posterior, dtype="float64")
    model64.params = {k: v.astype(np.float64) for k, v in model.params.items()}
    loss64, _ = model64.loss_and_grads(x.astype(np.float64), eps.astype(np.float64))
    assert loss == pytest.approx(loss64, rel=1e-5)


@pytest.mark.parametrize("name", ["enc0.W", "mu.b", "log_var.W", "dec1.b", "out.W"])
def test_a_planted_error_of_one_in_a_thousand_is_caught(name):
    model, x, eps = away_from_kinks("bernoulli", "diagonal", (7, 5), "tanh")
    _, grads = model.loss_and_grads(x, eps, 1.0)
    assert check_loss_gradients(model, x, eps, 1.0, grads).passed
    grads[name] = grads[name] * 1.001
    report = check_loss_gradients(model, x, eps, 1.0, grads)
    assert not report.passed
    assert [c.name for c in report.inputs if not c.passed] == [name]


# ------------------------------------------ the chain's pieces, one by one
# Each piece is a function v -> out; its backward, given a random upstream
# gradient dout, must equal numerical_vjp(piece, v, dout) in float64.

def _close(name, analytic, f, v, dout):
    """`analytic` is the gradient of sum(dout * f(v)) wrt `v` (`name`)."""
    assert_grad_close(lambda u: float(np.sum(dout * f(u))), lambda u: analytic, v)


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    model = VAE(6, 3, hidden=(5, 4), activation="tanh", dtype="float64", rng=0)
    for b in (k for k in model.params if k.endswith(".b")):
        model.params[b][...] = rng.uniform(0.1, 0.5, model.params[b].shape)
    return model, rng


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


def test_decoder_backward(setup):
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
    _, rng = setup
    model = VAE(6, 3, hidden=(), likelihood=likelihood, dtype="float64", rng=3)
    x, out = rng.random((4, 6)), rng.standard_normal((4, 6))
    dlog_lik = rng.standard_normal(4)
    _, cache = log_lik_forward(x, out, model.config)
    dout = log_lik_backward(dlog_lik, cache, model.config)
    _close("out", dout, lambda v: log_lik_forward(x, v, model.config)[0], out, dlog_lik)

"""Tests for numpyvae/reference/vae.py: the whole loss checked against central
differences for every configuration (every parameter array, eps held
fixed), a property-based directional check, the delta = 0 autoencoder,
known values and an independent reference of the linear model; then the
same model's log-weights (k samples per example) and the bound losses
over them, their backwards for every configuration, and their known
values (k samples are k one-sample calls, the sampled KL averages to the
analytic one, IWAE >= ELBO, k = 1 makes the two bounds one)."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm

from numpyvae import VAE, testing
from numpyvae.gradcheck import check_gradients, directional_derivatives
from numpyvae.reference.activations import ACTIVATIONS
from numpyvae.reference.layers import mlp_backward, mlp_forward
from numpyvae.reference.vae import (
    bound_loss_backward,
    bound_loss_forward,
    decoder_backward,
    decoder_forward,
    encoder_backward,
    encoder_forward,
    log_lik_backward,
    log_lik_forward,
    log_weights_backward,
    log_weights_forward,
    loss_backward,
    loss_forward,
    posterior_log_var,
    prior_log_weights,
)
from numpyvae.testing import assert_grad_close, batches, hidden_pre_activations, relu_margin, vae_models

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
        return loss_forward(dict(zip(names, arrays, strict=True)), x, eps, model.config, beta)[0]

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
        return {k: v.reshape(s) for k, v, s in zip(names, parts, shapes, strict=True)}

    theta = np.concatenate([p.ravel() for p in model.params.values()])
    dtheta = np.concatenate([grads[k].ravel() for k in names])
    f = lambda t: loss_forward(unflatten(t), x, eps, model.config, beta)[0]  # noqa: E731
    analytic, numerical = directional_derivatives(f, theta, dtheta, rng)
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
    h, caches = mlp_forward(model.params, z, "dec", 2, "tanh")
    dh = rng.standard_normal(h.shape)
    grads = {}
    dz = mlp_backward(dh, caches, "tanh", grads)
    _close("z", dz, lambda v: mlp_forward(model.params, v, "dec", 2, "tanh")[0], z, dh)
    _close("dec1.W", grads["dec1.W"],
           lambda v: mlp_forward(dict(model.params, **{"dec1.W": v}), z, "dec", 2, "tanh")[0],
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


def test_decoder_backward_with_a_sample_axis(setup):
    # z (k, n, d_z): the decoder's weight gradients sum over every sample.
    model, rng = setup
    z = rng.standard_normal((3, 4, 3))
    out, cache = decoder_forward(model.params, z, model.config)
    assert out.shape == (3, 4, 6)
    dout = rng.standard_normal(out.shape)
    grads = {}
    dz = decoder_backward(dout, cache, model.config, grads)
    _close("z", dz, lambda v: decoder_forward(model.params, v, model.config)[0], z, dout)
    for name in ("dec0.W", "out.b"):
        _close(name, grads[name],
               lambda v, name=name: decoder_forward(dict(model.params, **{name: v}), z,
                                                    model.config)[0],
               model.params[name].copy(), dout)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_lik_backward_with_samples_and_broadcast_x(setup, likelihood):
    _, rng = setup
    model = VAE(6, 3, hidden=(), likelihood=likelihood, sigma=0.7 if likelihood == "gaussian"
                else None, dtype="float64", rng=3)
    x, out = rng.random((4, 6)), rng.standard_normal((3, 4, 6))
    dlog_lik = rng.standard_normal((3, 4))
    _, cache = log_lik_forward(x, out, model.config)
    dout = log_lik_backward(dlog_lik, cache, model.config)
    _close("out", dout, lambda v: log_lik_forward(x, v, model.config)[0], out, dlog_lik)


# ============================================== log-weights and bound losses

FD_TOL = dict(abs_tol=1e-9, rel_tol=1e-6)  # float64 and a smooth function
DEPTHS = {0: (), 1: (5,), 2: (5, 4)}
DELTA = 0.7


def sampled_point(likelihood, posterior, hidden, activation, k, n=N):
    """A model, x and eps (k, n, d_z), every relu input of every slab off its kink."""
    for seed in range(50):
        model = make_model(likelihood, posterior, hidden, activation, delta=DELTA, seed=seed)
        x, _ = make_batch(model, seed, n)
        eps = np.random.default_rng(seed + 500).standard_normal((k, n, D_Z))
        if activation != "relu" or relu_margin(model, x, eps) > RELU_MARGIN:
            return model, x, eps
    raise AssertionError("no seed in 0..49 keeps the relu pre-activations away from 0")


def check_log_weights_gradients(model, x, eps, dlog_w, grads):
    """gradcheck of sum(dlog_w * log_w) wrt every parameter array, eps fixed."""
    return testing.check_log_weights_gradients(model, x, eps, dlog_w, grads, **FD_TOL)


def check_bound_gradients(model, x, eps, objective, grads):
    """gradcheck of the bound loss wrt every parameter array, eps fixed."""
    names = list(model.params)

    def f(*arrays):
        return bound_loss_forward(dict(zip(names, arrays, strict=True)), x, eps, model.config, objective)[0]

    return check_gradients(f, [model.params[k] for k in names], [grads[k] for k in names],
                           names, **FD_TOL)


LOG_W_CASES = list(itertools.product(["bernoulli", "gaussian"], ["diagonal", "fixed"],
                                     ACTIVATIONS, sorted(DEPTHS), [1, 3]))


@pytest.mark.parametrize("likelihood,posterior,activation,depth,k", LOG_W_CASES,
                         ids=["-".join(map(str, c)) for c in LOG_W_CASES])
def test_log_weights_backward_matches_finite_differences(likelihood, posterior, activation,
                                                         depth, k):
    model, x, eps = sampled_point(likelihood, posterior, DEPTHS[depth], activation, k)
    dlog_w = np.random.default_rng(k).standard_normal((k, N))  # a random upstream gradient
    log_w, terms, cache = log_weights_forward(model.params, x, eps, model.config)
    assert log_w.shape == terms["log_lik"].shape == terms["log_ratio"].shape == (k, N)
    grads = log_weights_backward(dlog_w, cache)
    assert list(grads) == list(model.params)
    report = check_log_weights_gradients(model, x, eps, dlog_w, grads)
    assert report.passed, f"\n{report}"


def test_relu_log_weights_case_really_is_away_from_kinks():
    model, x, eps = sampled_point("bernoulli", "diagonal", DEPTHS[2], "relu", 3)
    a = np.concatenate([hidden_pre_activations(model, x, e) for e in eps])
    assert a.size == 3 * N * 2 * (5 + 4)
    assert np.abs(a).min() > RELU_MARGIN and (a < 0).any() and (a > 0).any()


@pytest.mark.parametrize("name", ["enc0.W", "mu.b", "log_var.W", "log_var.b", "dec1.b",
                                  "out.W"])
def test_log_weights_backward_planted_error_is_caught(name):
    model, x, eps = sampled_point("bernoulli", "diagonal", (5, 4), "tanh", 3)
    dlog_w = np.random.default_rng(0).standard_normal((3, N))
    grads = log_weights_backward(dlog_w, log_weights_forward(model.params, x, eps,
                                                             model.config)[2])
    assert check_log_weights_gradients(model, x, eps, dlog_w, grads).passed
    grads[name] = grads[name] * 1.001
    report = check_log_weights_gradients(model, x, eps, dlog_w, grads)
    assert [c.name for c in report.inputs if not c.passed] == [name]


BOUND_CASES = list(itertools.product(["bernoulli", "gaussian"], ["diagonal", "fixed"],
                                     [((), "tanh"), ((7, 5), "tanh"), ((7, 5), "relu")],
                                     ["elbo", "iwae"], [1, 3]))


@pytest.mark.parametrize("likelihood,posterior,arch,objective,k", BOUND_CASES,
                         ids=[f"{c[0]}-{c[1]}-{len(c[2][0])}{c[2][1]}-{c[3]}-k{c[4]}"
                              for c in BOUND_CASES])
def test_bound_loss_backward_matches_finite_differences(likelihood, posterior, arch,
                                                        objective, k):
    hidden, activation = arch
    model, x, eps = sampled_point(likelihood, posterior, hidden, activation, k)
    loss, terms, cache = bound_loss_forward(model.params, x, eps, model.config, objective)
    assert loss == pytest.approx(-float(np.mean(terms[objective])), rel=1e-14, abs=1e-14)
    grads = bound_loss_backward(cache)
    assert list(grads) == list(model.params)
    report = check_bound_gradients(model, x, eps, objective, grads)
    assert report.passed, f"\n{report}"


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_bound_loss_backward_planted_error_is_caught(objective):
    model, x, eps = sampled_point("gaussian", "diagonal", (7, 5), "tanh", 3)
    grads = bound_loss_backward(bound_loss_forward(model.params, x, eps, model.config,
                                                   objective)[2])
    grads["log_var.b"] = grads["log_var.b"] * 1.001
    report = check_bound_gradients(model, x, eps, objective, grads)
    assert [c.name for c in report.inputs if not c.passed] == ["log_var.b"]


def test_the_two_objectives_have_different_gradients():
    # With unequal weights the IWAE gradient weighs the samples by w~, not 1/k:
    # one objective's gradient fails the other's check.
    model, x, eps = sampled_point("bernoulli", "diagonal", (7, 5), "tanh", 3)
    iwae_grads = bound_loss_backward(bound_loss_forward(model.params, x, eps, model.config,
                                                        "iwae")[2])
    assert not check_bound_gradients(model, x, eps, "elbo", iwae_grads).passed


# --------------------------------------------------- log-weights: known values

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_k_samples_are_k_one_sample_calls(likelihood, posterior):
    model, x, eps = sampled_point(likelihood, posterior, (7, 5), "tanh", 4)
    dlog_w = np.random.default_rng(1).standard_normal((4, N))
    log_w, terms, cache = log_weights_forward(model.params, x, eps, model.config)
    grads = log_weights_backward(dlog_w, cache)
    summed = {name: 0.0 for name in grads}
    for i in range(4):
        one_w, one_terms, one_cache = log_weights_forward(model.params, x, eps[i:i + 1],
                                                          model.config)
        np.testing.assert_allclose(log_w[i], one_w[0], rtol=1e-13, atol=1e-13)
        for name in ("log_lik", "log_ratio"):
            np.testing.assert_allclose(terms[name][i], one_terms[name][0], rtol=1e-13,
                                       atol=1e-13)
        for name, g in log_weights_backward(dlog_w[i:i + 1], one_cache).items():
            summed[name] = summed[name] + g
    for name in grads:  # the backward is linear in dlog_w: the samples' sum
        np.testing.assert_allclose(grads[name], summed[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_linear_log_weights_match_an_independent_reference(likelihood, posterior):
    """hidden=(): log p(x|z) + log r(z) - log q(z|x) written out with scipy.stats."""
    model, x, eps = sampled_point(likelihood, posterior, (), "tanh", 3)
    p = model.params
    mu = x @ p["mu.W"] + p["mu.b"]
    if posterior == "diagonal":
        std = np.exp(0.5 * (x @ p["log_var.W"] + p["log_var.b"]))
    else:
        std = np.full_like(mu, DELTA)
    z = mu + std * eps                                # (k, n, d_z)
    out = z @ p["out.W"] + p["out.b"]                 # (k, n, d_x)
    if likelihood == "bernoulli":
        log_lik = (x * out - np.logaddexp(0.0, out)).sum(axis=-1)
    else:
        log_lik = norm.logpdf(x, out, 0.7).sum(axis=-1)
    log_ratio = (norm.logpdf(z) - norm.logpdf(z, mu, std)).sum(axis=-1)
    log_w, terms, _ = log_weights_forward(p, x, eps, model.config)
    np.testing.assert_allclose(terms["log_lik"], log_lik, rtol=1e-12)
    np.testing.assert_allclose(terms["log_ratio"], log_ratio, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(log_w, log_lik + log_ratio, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_one_sample_log_lik_is_the_elbo_s_reconstruction_term(posterior):
    # Same eps, same z: loss_forward's log p(x|z) is the log-weight's.
    model, x, eps = sampled_point("gaussian", posterior, (7, 5), "tanh", 1)
    _, terms, _ = log_weights_forward(model.params, x, eps, model.config)
    _, elbo_terms, _ = loss_forward(model.params, x, eps[0], model.config, 1.0)
    np.testing.assert_allclose(terms["log_lik"][0], elbo_terms["log_lik"], rtol=1e-13)


@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_the_sampled_kl_averages_to_the_analytic_kl(posterior):
    # -log_ratio = log q(z|x) - log r(z), whose expectation over eps is KL(q || r).
    model = make_model("gaussian", posterior, hidden=(7, 5), delta=DELTA)
    x, _ = make_batch(model, 0, n=3)
    m = 20_000
    eps = np.random.default_rng(1).standard_normal((m, 3, D_Z))
    _, terms, _ = log_weights_forward(model.params, x, eps, model.config)
    sampled = -terms["log_ratio"]                                    # (m, n)
    kl = loss_forward(model.params, x, eps[0], model.config, 1.0)[1]["kl"]
    stderr = sampled.std(axis=0, ddof=1) / math.sqrt(m)
    assert np.all(stderr < 0.02)
    assert np.all(np.abs(sampled.mean(axis=0) - kl) < 4.0 * stderr)
    # and the sampled-ELBO head's kl term is the same sampled KL
    _, bound_terms, _ = bound_loss_forward(model.params, x, eps, model.config, "elbo")
    np.testing.assert_allclose(bound_terms["kl"], sampled.mean(axis=0), rtol=1e-10)


def test_at_the_prior_the_log_ratio_is_zero():
    # mu = 0, log_var = 0: q = r, so log r(z) - log q(z|x) = 0 at every sample.
    model = make_model("bernoulli", "diagonal")
    for k in ("mu.W", "mu.b", "log_var.W", "log_var.b"):
        model.params[k][...] = 0.0
    x, _ = make_batch(model, 0)
    eps = np.random.default_rng(2).standard_normal((3, N, D_Z))
    log_w, terms, _ = log_weights_forward(model.params, x, eps, model.config)
    np.testing.assert_array_equal(terms["log_ratio"], 0.0)
    np.testing.assert_array_equal(log_w, terms["log_lik"])


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
@pytest.mark.parametrize("hidden", [(), (7, 5)], ids=["linear", "deep"])
def test_k1_makes_the_elbo_and_iwae_bounds_one(likelihood, posterior, hidden):
    model, x, eps = sampled_point(likelihood, posterior, hidden, "tanh", 1)
    loss_e, terms_e, cache_e = bound_loss_forward(model.params, x, eps, model.config, "elbo")
    loss_i, terms_i, cache_i = bound_loss_forward(model.params, x, eps, model.config, "iwae")
    assert loss_e == pytest.approx(loss_i, rel=1e-13, abs=1e-13)
    np.testing.assert_allclose(terms_i["iwae"], terms_e["elbo"], rtol=1e-13)
    grads_e, grads_i = bound_loss_backward(cache_e), bound_loss_backward(cache_i)
    for name in grads_e:
        np.testing.assert_allclose(grads_i[name], grads_e[name], rtol=1e-12, atol=1e-14,
                                   err_msg=name)


@given(st.data(), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_iwae_is_at_least_the_elbo_per_example(data, k, seed):
    model = data.draw(vae_models())
    x, _ = data.draw(batches(model, max_batch=3))
    eps = np.random.default_rng(seed).standard_normal((k, x.shape[0], model.config.latent_dim))
    _, terms, _ = bound_loss_forward(model.params, x, eps, model.config, "iwae")
    assert terms["iwae"].shape == terms["elbo"].shape == (x.shape[0],)
    assert np.all(terms["iwae"] >= terms["elbo"] - 1e-12 * np.abs(terms["elbo"]))
    log_w = log_weights_forward(model.params, x, eps, model.config)[0]
    strict = log_w.max(axis=0) - log_w.min(axis=0) > 1e-3  # unequal weights
    assert np.all(terms["iwae"][strict] > terms["elbo"][strict])
    np.testing.assert_allclose(terms["elbo"], log_w.mean(axis=0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(terms["log_lik"] - terms["kl"], terms["elbo"], rtol=1e-10,
                               atol=1e-10)


def test_the_sampled_elbo_averages_to_the_analytic_elbo():
    # E_eps[log w] = log_lik - KL: the two ELBOs agree in expectation only.
    model = make_model("gaussian", "diagonal", hidden=(4,))
    x, _ = make_batch(model, 0, n=2)
    m = 20_000
    eps = np.random.default_rng(3).standard_normal((m, 2, D_Z))
    log_w = log_weights_forward(model.params, x, eps, model.config)[0]   # (m, n)
    analytic = []  # the analytic-KL ELBO of the first 2000 slabs, one call each
    for e in eps[:2000]:
        _, t, _ = loss_forward(model.params, x, e, model.config, 1.0)
        analytic.append(t["log_lik"] - t["kl"])
    analytic = np.array(analytic)                                        # (2000, n)
    diff = log_w[:2000] - analytic  # same eps: not equal draw by draw
    assert diff.std() > 0.05
    expected = analytic.mean(axis=0)
    se = np.hypot(log_w.std(axis=0, ddof=1) / math.sqrt(m),
                  analytic.std(axis=0, ddof=1) / math.sqrt(2000))
    assert np.all(np.abs(log_w.mean(axis=0) - expected) < 4.0 * se)


def test_unknown_objective_is_refused():
    model, x, eps = sampled_point("bernoulli", "diagonal", (), "tanh", 2)
    with pytest.raises(ValueError, match="^objective:.*'elbo', 'iwae'"):
        bound_loss_forward(model.params, x, eps, model.config, "kl")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_log_weights_and_bounds_keep_their_dtype(dtype, posterior):
    model = make_model("bernoulli", posterior, dtype=dtype, delta=DELTA)
    x, _ = make_batch(model, 0)
    eps = np.random.default_rng(0).standard_normal((2, N, D_Z)).astype(dtype)
    log_w, terms, cache = log_weights_forward(model.params, x, eps, model.config)
    assert log_w.dtype == terms["log_lik"].dtype == terms["log_ratio"].dtype == dtype
    grads = log_weights_backward(np.ones((2, N), dtype), cache)
    assert all(g.dtype == dtype and g.shape == model.params[k].shape
               for k, g in grads.items())
    for objective in ("elbo", "iwae"):
        loss, terms, cache = bound_loss_forward(model.params, x, eps, model.config, objective)
        assert type(loss) is float and math.isfinite(loss)
        assert all(t.dtype == dtype for t in terms.values())
        assert all(g.dtype == dtype for g in bound_loss_backward(cache).values())


def test_log_weights_agree_in_float32_and_float64():
    model64 = make_model("gaussian", "fixed", delta=DELTA)
    model32 = make_model("gaussian", "fixed", delta=DELTA, dtype="float32")
    model32.params = {k: v.astype(np.float32) for k, v in model64.params.items()}
    x, _ = make_batch(model64, 0)
    eps = np.random.default_rng(0).standard_normal((3, N, D_Z))
    w64 = log_weights_forward(model64.params, x, eps, model64.config)[0]
    w32 = log_weights_forward(model32.params, x.astype(np.float32), eps.astype(np.float32),
                              model32.config)[0]
    np.testing.assert_allclose(w32, w64, rtol=1e-5, atol=1e-5)


# ------------------------------------------------ prior weights and log_var

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_prior_log_weights_are_the_decoder_s_log_lik_at_z_eps(likelihood):
    model = make_model(likelihood, "diagonal", hidden=())
    x, _ = make_batch(model, 0)
    eps = np.random.default_rng(4).standard_normal((3, N, D_Z))  # z ~ r(z) itself
    log_w = prior_log_weights(model.params, x, eps, model.config)
    assert log_w.shape == (3, N)
    out = eps @ model.params["out.W"] + model.params["out.b"]
    if likelihood == "bernoulli":
        expected = (x * out - np.logaddexp(0.0, out)).sum(axis=-1)
    else:
        expected = norm.logpdf(x, out, 0.7).sum(axis=-1)
    np.testing.assert_allclose(log_w, expected, rtol=1e-12)
    # the encoder plays no part
    moved = {**model.params, "mu.b": model.params["mu.b"] + 1.0}
    np.testing.assert_array_equal(prior_log_weights(moved, x, eps, model.config), log_w)


def test_posterior_log_var_is_the_head_or_two_log_delta():
    model = make_model("bernoulli", "fixed", delta=DELTA)
    mu = np.zeros((2, D_Z))
    np.testing.assert_allclose(posterior_log_var(mu, None, model.config),
                               np.full((2, D_Z), 2.0 * math.log(DELTA)), rtol=1e-15)
    log_var = np.ones((2, D_Z))
    assert posterior_log_var(mu, log_var, make_model().config) is log_var

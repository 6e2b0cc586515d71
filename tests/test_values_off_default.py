"""Values away from the defaults, through the public API.

sigma = 1, delta = 1 and beta = 1 hide whole classes of bugs: sigma for
sigma^2, log delta for 2 log delta, beta applied to the loss but not to
its gradient. Here the Trainer is shown to pass its beta to the loss and
to the gradient, the IWAE bound's -log k gets a value check (k identical
noise samples give log w, computed independently with scipy.stats), and
whole-model values and gradients at sigma, delta, beta != 1 agree between
float32 and float64 and pass the float64 checks.
"""

import math

import numpy as np
import pytest
from scipy.stats import bernoulli, norm

from numpyvae import SGD, VAE, Trainer
from numpyvae.gradcheck import check_model, check_model_directional
from numpyvae.reference.vae import bound_loss_forward
from numpyvae.train import train

CONFIGS = [dict(likelihood="bernoulli"),
           dict(likelihood="gaussian", sigma=0.45),
           dict(likelihood="gaussian", sigma=2.2, posterior="fixed", delta=0.35),
           dict(likelihood="bernoulli", posterior="fixed", delta=1.8)]
IDS = ["bernoulli", "sigma=0.45", "sigma=2.2,delta=0.35", "delta=1.8"]


def model_and_batch(config, dtype="float64", n=4, seed=0):
    model = VAE(5, 2, hidden=(4,), activation="tanh", dtype=dtype, rng=seed, **config)
    rng = np.random.default_rng(seed + 1)
    x = rng.random((n, 5)) if config["likelihood"] == "bernoulli" \
        else rng.standard_normal((n, 5))
    return model, x.astype(dtype)


# --------------------------------------------------- the Trainer's beta

def one_sgd_step(beta, lr=0.1):
    """Parameters after one full-batch SGD step of a Trainer with `beta`."""
    model, x = model_and_batch(dict(likelihood="gaussian", sigma=0.6), n=6)
    trainer = Trainer(model, SGD(lr=lr), beta=beta, batch_size=6, rng=3)
    history = train(trainer, x, epochs=1)  # prints nothing without progress
    return {k: v.copy() for k, v in model.params.items()}, history[0], x


@pytest.mark.parametrize("beta", [0.25, 2.0])
def test_trainer_passes_its_beta_to_the_loss_and_its_gradient(beta):
    # loss = recon + beta * KL. The KL and its gradient do not depend on
    # eps, so two trainers drawing the same eps differ by exactly beta
    # times the KL's share: in the reported loss, and in the SGD step.
    at_beta, row, x = one_sgd_step(beta)
    at_zero, row0, _ = one_sgd_step(0.0)
    assert math.isclose(row["train_loss"] - row0["train_loss"], beta * row["train_kl"],
                        rel_tol=1e-9)
    model, _ = model_and_batch(dict(likelihood="gaussian", sigma=0.6), n=6)
    eps = np.random.default_rng(9).standard_normal((6, 2))  # any eps: KL ignores it
    g1, g0 = model.loss_and_grads(x, eps, 1.0)[1], model.loss_and_grads(x, eps, 0.0)[1]
    moved = False
    for name in at_beta:
        kl_step = -0.1 * beta * (g1[name] - g0[name])
        np.testing.assert_allclose(at_beta[name] - at_zero[name], kl_step, rtol=1e-7,
                                   atol=1e-12, err_msg=name)
        moved |= bool(np.abs(kl_step).max() > 1e-6)
    assert moved  # the KL's gradient is not zero here, so beta shows


# --------------------------------------------------- the IWAE's -log k

def log_w_by_scipy(model, x, eps):
    """log p(x|z) + log r(z) - log q(z|x) for one slab eps (n, d_z)."""
    c = model.config
    mu, log_var = (a.astype(np.float64) for a in model.encode(x))
    std = np.exp(0.5 * log_var)
    z = mu + std * eps.astype(np.float64)
    mean = model.decode(z.astype(model.dtype)).astype(np.float64)
    xs = x.astype(np.float64)
    if c.likelihood == "bernoulli":
        log_lik = (xs * np.log(mean) + (1 - xs) * np.log1p(-mean)).sum(axis=1)
    else:
        log_lik = norm.logpdf(xs, mean, c.sigma).sum(axis=1)
    return log_lik + norm.logpdf(z).sum(axis=1) - norm.logpdf(z, mu, std).sum(axis=1)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("k", [1, 2, 7])
def test_k_identical_samples_give_log_w(config, k):
    model, x = model_and_batch(config)
    eps = np.random.default_rng(5).standard_normal((1, 4, 2))
    expected = log_w_by_scipy(model, x, eps[0])
    same = np.repeat(eps, k, axis=0)  # (k, n, d_z): -log k must cancel log(k w)
    loss, terms, _ = bound_loss_forward(model.params, x, same, model.config, "iwae")
    np.testing.assert_allclose(terms["iwae"], expected, rtol=1e-10)
    np.testing.assert_allclose(terms["elbo"], expected, rtol=1e-10)  # equal weights
    assert math.isclose(loss, -expected.mean(), rel_tol=1e-10)
    loss, terms, _ = bound_loss_forward(model.params, x, same, model.config, "elbo")
    assert math.isclose(loss, -expected.mean(), rel_tol=1e-10)


def test_bernoulli_scipy_reference_is_scipys_own():
    # The Bernoulli line of log_w_by_scipy, checked against bernoulli.logpmf.
    x, p = np.array([[1.0, 0.0, 1.0]]), np.array([[0.2, 0.3, 0.9]])
    np.testing.assert_allclose((x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1),
                               bernoulli.logpmf(x, p).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_iwae_terms_agree_in_float32_and_float64(config):
    model64, x = model_and_batch(config)
    model32, _ = model_and_batch(config, "float32")
    eps = np.random.default_rng(6).standard_normal((3, 4, 2))
    t64 = bound_loss_forward(model64.params, x, eps, model64.config, "iwae")[1]
    params32 = {k: v.astype(np.float32) for k, v in model64.params.items()}
    t32 = bound_loss_forward(params32, x.astype(np.float32), eps.astype(np.float32),
                             model32.config, "iwae")[1]
    for name in ("iwae", "elbo", "log_lik", "kl"):
        assert t32[name].dtype == np.float32
        np.testing.assert_allclose(t32[name], t64[name], rtol=2e-5, atol=1e-5, err_msg=name)


# --------------------------- whole models: float32 against float64, checks

@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("beta", [0.3, 1.0, 2.5])
def test_loss_and_grads_agree_in_float32_and_float64(config, beta):
    model64, x = model_and_batch(config)
    model32 = VAE.from_config({**model64.config.to_dict(), "dtype": "float32"},
                              {k: v.astype(np.float32) for k, v in model64.params.items()})
    eps = np.random.default_rng(7).standard_normal((4, 2))
    loss64, g64 = model64.loss_and_grads(x, eps, beta)
    loss32, g32 = model32.loss_and_grads(x.astype(np.float32), eps.astype(np.float32), beta)
    assert math.isclose(loss32, loss64, rel_tol=1e-5)
    for name in g64:
        assert g32[name].dtype == np.float32
        err = np.linalg.norm(g32[name] - g64[name]) / (np.linalg.norm(g64[name]) + 1e-12)
        assert err < 1e-4, name


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("beta", [0.3, 2.5])
def test_float64_checks_pass_away_from_the_defaults(config, beta):
    model, x = model_and_batch(config)
    eps = np.random.default_rng(8).standard_normal((4, 2))
    assert check_model(model, x, eps, beta=beta).passed
    assert check_model_directional(model, x, eps, beta).passed
    assert check_model_directional(model, x, eps[None].repeat(2, 0) * [[[1.0]], [[-0.5]]],
                                   objective="iwae").passed
    report = check_model(model, x, eps, beta=beta, analytic_dtype="float32")
    worst = max(c.normwise_error for c in report.inputs)
    assert 1e-9 < worst < 1e-3  # float32 round-off: visible, and nothing more

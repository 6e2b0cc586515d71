"""Random-direction checks of whole models at the pytorch/examples size:
VAE(784, 20, hidden=(400,)), 652,824 parameters, in float64, for every
likelihood and posterior, the ELBO and the IWAE objective. Element-wise
differences would take 1.3 million loss evaluations; these take a few
dozen each. Each configuration also shows that a planted error of 1e-4
(relative) on one weight block fails the check."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from numpyvae import VAE
from numpyvae.gradcheck import DIRECTIONAL_RTOL, check_model_directional
from numpyvae.testing import KINK_MARGIN, batches, relu_margin, vae_models

N_ROWS, K = 3, 2  # a few MNIST-like rows; importance samples for IWAE

CONFIGS = [  # likelihood, posterior, objective; sigma and delta away from 1
    (lik, post, obj) for lik in ("bernoulli", "gaussian")
    for post in ("diagonal", "fixed") for obj in ("elbo", "iwae")]


def mnist_model(likelihood, posterior):
    return VAE(784, 20, hidden=(400,), likelihood=likelihood,
               sigma=0.7 if likelihood == "gaussian" else None, posterior=posterior,
               delta=0.6 if posterior == "fixed" else None, dtype="float64", rng=0,
               init="he")  # He's wider scale keeps every relu input off its kink


def mnist_batch(model, objective, seed=0):
    """Rows in [0, 1] like MNIST's, and eps, every relu input off its kink.

    A step of 5e-3 along a unit direction moves a pre-activation by about
    5e-3 * |x| / sqrt(652,824), under 1e-4 here: far inside the margin.
    """
    rng = np.random.default_rng(seed)
    for _ in range(100):
        x = rng.random((N_ROWS, 784))
        shape = (N_ROWS, 20) if objective == "elbo" else (K, N_ROWS, 20)
        eps = rng.standard_normal(shape)
        if relu_margin(model, x, eps) >= KINK_MARGIN:
            return x, eps
    raise AssertionError("no batch off the relu kinks in 100 draws")


def model_grads(model, x, eps, objective, beta):
    """The model's own gradient of the objective (the IWAE one has no beta)."""
    if objective == "iwae":
        return model.loss_and_grads(x, eps, objective="iwae")[1]
    return model.loss_and_grads(x, eps, beta)[1]


@pytest.mark.parametrize("likelihood, posterior, objective", CONFIGS)
def test_mnist_size_model_passes_and_a_planted_error_fails(likelihood, posterior,
                                                           objective):
    model = mnist_model(likelihood, posterior)
    assert sum(p.size for p in model.params.values()) == (
        652_824 if posterior == "diagonal" else 652_824 - 400 * 20 - 20)
    x, eps = mnist_batch(model, objective)
    beta = 0.5 if objective == "elbo" else 1.0
    report = check_model_directional(model, x, eps, beta, objective, rng=1)
    assert report.passed, str(report)
    assert report.max_error < 1e-9  # Richardson reaches float64 precision
    grads = model_grads(model, x, eps, objective, beta)
    planted = {**grads, "dec0.W": grads["dec0.W"] * (1.0 + 1e-4)}
    bad = check_model_directional(model, x, eps, beta, objective, planted, rng=1)
    assert not bad.passed
    assert max(bad.errors) > 100 * DIRECTIONAL_RTOL  # far outside the gate


def test_a_planted_error_on_the_smallest_block_fails_too():
    # mu.b holds 20 of 652,824 entries and 3% of the gradient's norm.
    model = mnist_model("bernoulli", "diagonal")
    x, eps = mnist_batch(model, "elbo", seed=2)
    grads = model.loss_and_grads(x, eps)[1]
    planted = {**grads, "mu.b": grads["mu.b"] * (1.0 + 1e-4)}
    assert not check_model_directional(model, x, eps, grads=planted, rng=3).passed


def test_beta_reaches_the_gradient_at_the_mnist_size():
    # The gradient of beta = 1 judged against the loss of beta = 0.3.
    model = mnist_model("gaussian", "diagonal")
    x, eps = mnist_batch(model, "elbo", seed=4)
    wrong_beta = model.loss_and_grads(x, eps, 1.0)[1]
    assert not check_model_directional(model, x, eps, 0.3, grads=wrong_beta).passed
    assert check_model_directional(model, x, eps, 0.3).passed


@given(st.data())
def test_every_drawn_small_model_passes_the_directional_check(data):
    model = data.draw(vae_models())
    x, eps = data.draw(batches(model, max_batch=3))
    beta = data.draw(st.sampled_from([0.0, 0.4, 1.0, 2.5]))
    assert check_model_directional(model, x, eps, beta, rng=0).passed
    if model.config.hidden == () or model.config.activation != "relu":
        k_eps = np.stack([eps, eps[::-1]])  # (2, n, d_z)
        assert check_model_directional(model, x, k_eps, objective="iwae").passed


def test_arguments_are_checked():
    model = VAE(3, 2, hidden=(), dtype="float64", rng=0)
    x, eps = np.full((1, 3), 0.5), np.zeros((1, 2))
    with pytest.raises(ValueError, match="^objective:"):
        check_model_directional(model, x, eps, objective="elbo2")
    with pytest.raises(TypeError, match="float64"):
        check_model_directional(VAE(3, 2, hidden=()), x.astype(np.float32),
                                eps.astype(np.float32))
    with pytest.raises(TypeError, match="^eps:.*float64"):
        check_model_directional(model, x, eps.astype(np.float32))

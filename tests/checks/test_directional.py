"""Tests for numpyvae/checks/directional.py: the checks along random directions.

First the pieces on known cases: Richardson's derivative reaches float64
precision with large steps, random directions are unit vectors over
every array, and check_directional and check_vjp_jvp pass correct
gradients (numpyvae's kernels included) and catch small planted errors.

Then whole models at the pytorch/examples size:
VAE(784, 20, hidden=(400,)), 652,824 parameters, in float64, for every
likelihood and posterior, the ELBO and the IWAE objective. Element-wise
differences would take 1.3 million loss evaluations; these take a few
dozen each. Each configuration also shows that a planted error of 1e-4
(relative) on one weight block fails the check."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numpyvae.checks.directional
import numpyvae.gradcheck
from numpyvae import VAE
from numpyvae.checks.directional import (
    DIRECTIONAL_RTOL,
    check_directional,
    check_model_directional,
    check_vjp_jvp,
    random_directions,
    richardson_derivative,
)
from numpyvae.reference.kl import kl_backward, kl_forward
from numpyvae.reference.layers import dense_backward, dense_forward
from numpyvae.reference.likelihoods import (
    bernoulli_log_lik_backward,
    bernoulli_log_lik_forward,
    gaussian_log_lik_backward,
    gaussian_log_lik_forward,
)
from numpyvae.reference.sampling import (
    reparameterize_backward,
    reparameterize_fixed_backward,
    reparameterize_fixed_forward,
    reparameterize_forward,
)
from numpyvae.testing import KINK_MARGIN, batches, relu_margin, vae_models

seeds = st.integers(0, 2**32 - 1)
batch = st.integers(1, 8)
features = st.integers(1, 16)


def cubic(v):
    return float((v ** 3).sum())


# ------------------------------------------------ richardson_derivative

@pytest.mark.parametrize("levels, step, bound", [(0, 1e-5, 1e-9), (1, 1e-2, 1e-9),
                                                 (2, 4e-2, 1e-10)])
def test_richardson_reaches_float64_precision_with_large_steps(levels, step, bound):
    for t0 in (-1.3, 0.2, 2.0):
        d, noise = richardson_derivative(lambda t, t0=t0: np.exp(np.sin(t0 + t)), step, levels)
        exact = np.cos(t0) * np.exp(np.sin(t0))
        assert abs(d - exact) < bound  # phi and phi' are of order 1
        assert 0 < noise < 1e-8  # the rounding bound, ROUNDING * |phi| * 2^levels / h


def test_each_richardson_level_removes_one_power_of_h_squared():
    phi = lambda t: np.exp(t)  # noqa: E731, phi'(0) = 1
    errors = [abs(richardson_derivative(phi, 0.2, levels)[0] - 1.0) for levels in (0, 1, 2)]
    # plain: h^2 / 6 ~ 7e-3; one level: ~ (h/2)^4 / 30 ~ 3e-6 (the O(h^4)
    # term); two levels: ~ 1e-9 (O(h^6))
    assert errors[0] > 1e-3 > 1e-4 > errors[1] > 1e-7 > errors[2]


def test_random_directions_are_unit_and_cover_every_array():
    rng = np.random.default_rng(0)
    u = random_directions([np.zeros((3, 4)), np.zeros(5)], rng)
    assert [a.shape for a in u] == [(3, 4), (5,)]
    assert abs(sum(float((a * a).sum()) for a in u) - 1.0) < 1e-12
    assert all(np.all(a != 0) for a in u)


# -------------------------------------------------- check_directional

@given(n=batch, d=features, seed=seeds)
def test_check_directional_passes_a_correct_gradient(n, d, seed):
    rng = np.random.default_rng(seed)
    x, W = rng.uniform(-2.0, 2.0, (n, d)), rng.standard_normal((d, 3)) / np.sqrt(d)

    def f(x, W):
        return float(np.sum(np.tanh(x @ W)))

    dh = 1.0 - np.tanh(x @ W) ** 2
    report = check_directional(f, [x, W], [dh @ W.T, x.T @ dh], rng)
    assert report.passed, str(report)


@pytest.mark.parametrize("size", [1e-3, 1e-5, 1e-7])
def test_check_directional_catches_a_small_planted_error(size):
    rng = np.random.default_rng(1)
    x = rng.uniform(-2.0, 2.0, (6, 7))
    g = 3 * x ** 2
    report = check_directional(cubic, x, g, rng)
    assert report.passed
    one_block = g.copy()
    one_block[2] *= 1.0 + size  # one row of the gradient off by `size`
    bad = check_directional(cubic, x, one_block, rng)
    assert not bad.passed, str(bad)
    assert bad.max_error > 10 * DIRECTIONAL_RTOL


def test_check_directional_report_table_and_errors():
    x = np.array([1.0, -2.0])
    report = check_directional(cubic, x, 3 * x ** 2 * 1.01, np.random.default_rng(0))
    lines = str(report).splitlines()
    assert lines[0].split()[:3] == ["direction", "analytic", "numerical"]
    assert len(lines) == 4 and all(line.split()[-1] == "NO" for line in lines[1:])
    assert all(abs(e - 0.01 / 1.01) < 1e-6 for e in report.errors)  # g scaled: 1% always


def test_check_directional_argument_errors():
    x = np.ones(3)
    with pytest.raises(ValueError, match="^analytic: expected 1 gradients"):
        check_directional(cubic, x, [x, x])
    with pytest.raises(ValueError, match=r"^analytic\[0\]: expected shape \(3,\)"):
        check_directional(cubic, x, np.ones(2))


# ------------------------------------------------------- check_vjp_jvp

def kernels(rng, sigma, delta):
    """(forward, inputs, backward) of numpyvae's kernels, float64."""
    n, d = 3, 4
    x01, xs = rng.uniform(0.0, 1.0, (n, d)), rng.standard_normal((n, d))
    eps = rng.standard_normal((n, d))
    mu, log_var = rng.uniform(-2, 2, (n, d)), rng.uniform(-2, 2, (n, d))
    return [
        (dense_forward, [xs, rng.standard_normal((d, 2)), rng.standard_normal(2)],
         dense_backward),
        (kl_forward, [mu, log_var], kl_backward),
        (lambda m, lv: reparameterize_forward(m, lv, eps), [mu, log_var],
         reparameterize_backward),
        (lambda m: reparameterize_fixed_forward(m, delta, eps), [mu],
         reparameterize_fixed_backward),
        (lambda v: bernoulli_log_lik_forward(x01, v), [xs], bernoulli_log_lik_backward),
        (lambda v: gaussian_log_lik_forward(xs, v, sigma), [mu], gaussian_log_lik_backward),
    ]


@pytest.mark.parametrize("sigma, delta", [(1.0, 1.0), (0.3, 0.4), (2.5, 1.7)])
@given(seed=seeds)
def test_check_vjp_jvp_passes_every_kernel(sigma, delta, seed):
    for forward, inputs, backward in kernels(np.random.default_rng(seed), sigma, delta):
        report = check_vjp_jvp(forward, inputs, backward, seed)
        assert report.passed, str(report)


def test_check_vjp_jvp_catches_sigma_for_sigma_squared_only_away_from_1():
    rng = np.random.default_rng(0)
    x, recon = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))

    def sigma_not_squared(dlog_lik, cache):
        diff, sigma = cache
        return dlog_lik[:, None] * diff / sigma

    for sigma, caught in ((1.0, False), (0.7, True), (1.5, True)):
        report = check_vjp_jvp(lambda v, sigma=sigma: gaussian_log_lik_forward(x, v, sigma), recon,
                               sigma_not_squared)
        assert report.passed != caught


def test_check_vjp_jvp_argument_errors():
    x = np.ones((2, 2))
    with pytest.raises(ValueError, match="^backward: expected 2 gradients"):
        check_vjp_jvp(lambda u, v: (u * v, v), [x, x], lambda dout, v: dout * v)
    with pytest.raises(TypeError, match=r"^inputs\[1\]:.*float64"):
        check_vjp_jvp(lambda u, v: (u * v, v), [x, x.astype(np.float32)],
                      lambda dout, v: (dout, dout))


# ------------------------------------------------- numpyvae.gradcheck

def test_every_directional_name_is_still_reached_through_gradcheck():
    # numpyvae.gradcheck is the public module of every checker (README.md,
    # docs/gradient-checking.md): the split must not move a name away from it.
    for name in ("DIRECTIONAL_LEVELS", "DIRECTIONAL_RTOL", "DIRECTIONAL_STEP", "N_DIRECTIONS",
                 "ROUNDING", "DirectionalReport", "check_directional",
                 "check_model_directional", "check_vjp_jvp", "random_directions",
                 "richardson_derivative"):
        assert getattr(numpyvae.gradcheck, name) is getattr(numpyvae.checks.directional, name), name


# ------------------------------------------------ whole models, MNIST size

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

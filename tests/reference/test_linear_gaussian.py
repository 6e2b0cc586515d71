"""Tests of numpyvae/reference/linear_gaussian.py: the closed-form log p(x)
equals scipy's Gaussian density and a brute-force integral over z."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import multivariate_normal, norm

from numpyvae.reference.linear_gaussian import log_marginal


@pytest.mark.parametrize("seed", range(5))
def test_log_marginal_is_the_gaussian_of_the_integrated_model(seed):
    rng = np.random.default_rng(seed)
    d_z, d_x, sigma = 2, 4, 0.6
    W, b = rng.normal(size=(d_z, d_x)), rng.normal(size=d_x)
    x = rng.normal(size=(6, d_x))
    expected = multivariate_normal(b, W.T @ W + sigma ** 2 * np.eye(d_x)).logpdf(x)
    np.testing.assert_allclose(log_marginal(x, W, b, sigma), expected, rtol=1e-12)


def test_log_marginal_integrates_the_latent_out():
    """d_z = d_x = 1: p(x) = integral of N(z; 0, 1) N(x; z w + b, sigma^2) dz."""
    w, b, sigma, x = 1.7, -0.3, 0.5, 0.8
    integral, _ = quad(lambda z: norm.pdf(z) * norm.pdf(x, z * w + b, sigma), -12, 12)
    got = log_marginal(np.array([[x]]), np.array([[w]]), np.array([b]), sigma)
    np.testing.assert_allclose(got, [np.log(integral)], rtol=1e-10)


def test_float32_inputs_give_float64_log_densities():
    x, W, b = np.zeros((2, 3), np.float32), np.ones((1, 3), np.float32), np.zeros(3, np.float32)
    assert log_marginal(x, W, b, 1.0).dtype == np.float64

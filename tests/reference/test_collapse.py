"""Tests of numpyvae/reference/collapse.py: the prior-sampled bound and the
KL term alone, each checked against central differences (and a planted
0.1 % error in a gradient is caught)."""

import numpy as np
import pytest

from numpyvae import VAE
from numpyvae.gradcheck import numerical_vjp
from numpyvae.reference.collapse import kl_loss_and_grads, prior_bound_loss_and_grads

TOL = dict(rtol=1e-6, atol=1e-9)


def test_prior_bound_gradient_matches_finite_differences():
    model = VAE(3, 2, hidden=(4,), activation="tanh", likelihood="gaussian", sigma=0.7,
                dtype="float64", rng=0)
    rng = np.random.default_rng(1)
    x, z = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    _, grads = prior_bound_loss_and_grads(model.params, x, z, model.config)
    assert sorted(grads) == ["dec0.W", "dec0.b", "out.W", "out.b"]
    for name, g in grads.items():
        def loss(v, name=name):
            return prior_bound_loss_and_grads({**model.params, name: v}, x, z, model.config)[0]
        np.testing.assert_allclose(g, numerical_vjp(loss, model.params[name], 1.0), **TOL)


@pytest.mark.parametrize("posterior, delta", [("diagonal", None), ("fixed", 0.5)])
def test_kl_gradient_matches_finite_differences(posterior, delta):
    model = VAE(3, 2, hidden=(4,), activation="tanh", posterior=posterior, delta=delta,
                dtype="float64", rng=0)
    x = np.random.default_rng(1).random((5, 3))
    _, grads = kl_loss_and_grads(model.params, x, model.config)
    assert sorted(grads) == sorted(k for k in model.params if not k.startswith(("dec", "out")))
    for name, g in grads.items():
        def loss(v, name=name):
            return kl_loss_and_grads({**model.params, name: v}, x, model.config)[0]
        np.testing.assert_allclose(g, numerical_vjp(loss, model.params[name], 1.0), **TOL)


def test_a_planted_gradient_error_is_caught():
    model = VAE(3, 2, hidden=(4,), activation="tanh", dtype="float64", rng=0)
    x = np.random.default_rng(1).random((5, 3))
    _, grads = kl_loss_and_grads(model.params, x, model.config)
    numerical = numerical_vjp(lambda v: kl_loss_and_grads({**model.params, "mu.W": v}, x,
                                                          model.config)[0],
                              model.params["mu.W"], 1.0)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grads["mu.W"] * 1.001, numerical, **TOL)

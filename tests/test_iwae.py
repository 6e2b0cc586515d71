"""numpyvae.iwae: the importance-weighted objective and its hand-written gradient."""

import itertools

import numpy as np
import pytest

from numpyvae import VAE
from numpyvae.estimators import iwae_bound
from numpyvae.gradcheck import check_gradients
from numpyvae.iwae import iwae_loss_backward, iwae_loss_forward

CONFIGS = list(itertools.product(["bernoulli", "gaussian"], ["diagonal", "fixed"],
                                 [(), (6, 5)], [1, 4]))


def _setup(likelihood="bernoulli", posterior="diagonal", hidden=(6, 5), k=3, dtype="float64",
           seed=0):
    model = VAE(7, 3, hidden=hidden, activation="tanh", likelihood=likelihood,
                posterior=posterior, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.random((5, 7)).astype(dtype)
    eps = rng.standard_normal((k, 5, 3)).astype(dtype)
    return model, x, eps


def _check(model, x, eps, grads):
    names = list(model.params)

    def loss(*arrays):
        return iwae_loss_forward(dict(zip(names, arrays)), x, eps, model.config)[0]

    return check_gradients(loss, [model.params[n] for n in names], [grads[n] for n in names],
                     names=names)


@pytest.mark.parametrize("likelihood,posterior,hidden,k", CONFIGS)
def test_iwae_backward_matches_finite_differences(likelihood, posterior, hidden, k):
    model, x, eps = _setup(likelihood, posterior, hidden, k)
    _, _, cache = iwae_loss_forward(model.params, x, eps, model.config)
    report = _check(model, x, eps, iwae_loss_backward(cache))
    assert report.passed, str(report)


def test_a_planted_error_is_caught():
    model, x, eps = _setup()
    _, _, cache = iwae_loss_forward(model.params, x, eps, model.config)
    grads = iwae_loss_backward(cache)
    grads["log_var.b"] = grads["log_var.b"] - 0.5 / 5  # the -0.5/n term counted twice
    report = _check(model, x, eps, grads)
    assert [c.name for c in report.inputs if not c.passed] == ["log_var.b"]


def test_k1_is_the_single_sample_bound_log_w():
    model, x, eps = _setup(k=1)
    _, terms, _ = iwae_loss_forward(model.params, x, eps, model.config)
    mu, log_var = model.encode(x)
    z = mu + np.exp(0.5 * log_var) * eps[0]
    log_r = -0.5 * (z ** 2).sum(1) - 1.5 * np.log(2 * np.pi)
    log_q = -0.5 * (eps[0] ** 2).sum(1) - 0.5 * log_var.sum(1) - 1.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(terms["iwae"], terms["log_lik"] + log_r - log_q, rtol=1e-12)


def test_the_bound_is_above_the_mean_log_weight_of_the_same_samples():
    model, x, eps = _setup(k=8)
    _, terms, cache = iwae_loss_forward(model.params, x, eps, model.config)
    # log mean w >= mean log w (Jensen), with the same eps
    single = [iwae_loss_forward(model.params, x, eps[i:i + 1], model.config)[1]["iwae"]
              for i in range(8)]
    assert np.all(terms["iwae"] >= np.mean(single, axis=0) - 1e-12)
    np.testing.assert_allclose(cache["w_tilde"].sum(axis=0), 1.0, rtol=1e-12)


def test_matches_the_iwae_estimator_on_the_same_noise():
    model, x, _ = _setup(k=1)
    eps = np.random.default_rng(9).standard_normal((6, 5, 3))
    _, terms, _ = iwae_loss_forward(model.params, x, eps, model.config)
    estimate = iwae_bound(model, x, 6, np.random.default_rng(9), chunk_size=6, batch_size=5)
    np.testing.assert_allclose(terms["iwae"], estimate, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept(dtype):
    model, x, eps = _setup(k=2, dtype=dtype)
    loss, terms, cache = iwae_loss_forward(model.params, x, eps, model.config)
    grads = iwae_loss_backward(cache)
    assert isinstance(loss, float)
    assert {g.dtype for g in grads.values()} == {np.dtype(dtype)}
    assert all(t.dtype == np.dtype(dtype) for t in terms.values())


def test_bad_inputs_name_the_argument():
    model, x, eps = _setup(k=2)
    with pytest.raises(ValueError, match="eps"):
        iwae_loss_forward(model.params, x, eps[:, :3], model.config)
    with pytest.raises(TypeError, match="x"):
        iwae_loss_forward(model.params, x.astype(np.float32), eps, model.config)
    point = VAE(7, 3, hidden=(), posterior="fixed", delta=0.0, dtype="float64")
    with pytest.raises(ValueError, match="delta"):
        iwae_loss_forward(point.params, x, eps, point.config)

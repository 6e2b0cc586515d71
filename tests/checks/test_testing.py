"""Tests for numpyvae/checks/testing.py: the strategies draw what they promise
(shapes, ranges, dtypes, values off the relu kink), every drawn VAE
passes a whole-model gradient check, and assert_grad_close passes true
gradients, catches a planted 0.1% error, reports the worst entry, and
refuses float32."""

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from numpyvae import VAE
from numpyvae.reference.activations import relu_backward, relu_forward
from numpyvae.reference.kl import kl_backward, kl_forward
from numpyvae.reference.layers import dense_backward, dense_forward
from numpyvae.reference.vae import loss_backward, loss_forward
from numpyvae.testing import (
    KINK_MARGIN,
    arrays_for_layer,
    assert_grad_close,
    assert_vjp_close,
    batches,
    make_batch,
    make_layer_arrays,
    relu_margin,
    vae_configs,
    vae_models,
)


def cube(v):
    return float(np.sum(v ** 3))


def dense_relu_sum(x, W, b, dout):
    """f = sum(dout * relu(x W + b)) and its gradients wrt x, W, b."""
    a, dense_cache = dense_forward(x, W, b)
    h, relu_cache = relu_forward(a)
    grads = dense_backward(relu_backward(dout, relu_cache), dense_cache)
    return float(np.sum(dout * h)), grads


# ------------------------------------------------------ arrays_for_layer

@given(arrays_for_layer())
def test_arrays_for_layer_shapes_dtype_and_margin(xWb):
    x, W, b = xWb
    n, d_in = x.shape
    assert 1 <= n <= 8 and 1 <= d_in <= 16 and 1 <= W.shape[1] <= 16
    assert W.shape[0] == d_in and b.shape == (W.shape[1],)
    assert x.dtype == W.dtype == b.dtype == np.float64
    assert np.abs(x).min() >= KINK_MARGIN
    assert np.abs(x @ W + b).min() >= KINK_MARGIN


@given(arrays_for_layer(max_batch=4, max_features=6), st.integers(0, 2**32 - 1))
def test_dense_then_relu_passes_for_every_drawn_layer(xWb, seed):
    x, W, b = xWb
    dout = np.random.default_rng(seed).standard_normal((x.shape[0], W.shape[1]))
    assert_grad_close(lambda *v: dense_relu_sum(*v, dout)[0],
                      lambda *v: dense_relu_sum(*v, dout)[1], x, W, b)


def test_make_layer_arrays_is_reproducible_and_honours_dtype():
    a = make_layer_arrays(np.random.default_rng(3), 2, 3, 4)
    b = make_layer_arrays(np.random.default_rng(3), 2, 3, 4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert {v.dtype for v in make_layer_arrays(np.random.default_rng(3), 2, 3, 4,
                                               dtype="float32")} == {np.dtype(np.float32)}


def test_make_layer_arrays_scales_W_like_an_initializer():
    x, W, b = make_layer_arrays(np.random.default_rng(0), 8, 400, 50)
    assert math.isclose(W.std() * math.sqrt(400), 1.0, rel_tol=0.05)
    assert math.isclose(x.std(), 1.0, rel_tol=0.05)
    assert 0.5 < (x @ W + b).std() < 2.0  # order 1 whatever d_in


def test_make_layer_arrays_gives_up_on_an_impossible_margin():
    with pytest.raises(ValueError, match="margin"):
        make_layer_arrays(np.random.default_rng(0), 8, 16, 16, margin=10.0)


# ------------------------------------------------------ vae_configs, batches

@given(vae_configs())
def test_vae_configs_build_small_float64_models(config):
    model = VAE(**config, rng=0)
    c = model.config
    assert c.dtype == "float64"
    assert 1 <= c.input_dim <= 6 and 1 <= c.latent_dim <= 3
    assert len(c.hidden) <= 2 and all(1 <= h <= 5 for h in c.hidden)
    assert ("sigma" in config) == (c.likelihood == "gaussian")
    assert ("delta" in config) == (c.posterior == "fixed")
    assert c.delta is None or c.delta > 0


def test_vae_configs_reach_the_last_choice_of_every_axis():
    found = find(vae_configs(), lambda c: (c["likelihood"], c["posterior"], c["activation"])
                 == ("gaussian", "fixed", "identity") and len(c["hidden"]) == 2)
    assert found["hidden"] == (1, 1)  # shrunk to the smallest deep model
    assert 0.5 <= found["sigma"] <= 2.0 and 0.25 <= found["delta"] <= 1.5


@given(vae_configs(likelihoods=("gaussian",), posteriors=("diagonal",), activations=("tanh",),
                   max_depth=1, max_width=2, max_input_dim=2, max_latent_dim=1))
def test_vae_configs_respects_restrictions(config):
    assert config["likelihood"] == "gaussian" and config["posterior"] == "diagonal"
    assert config["activation"] == "tanh" and config["latent_dim"] == 1
    assert len(config["hidden"]) <= 1 and max(config["hidden"], default=1) <= 2
    assert config["input_dim"] <= 2


@given(vae_models())
def test_vae_models_have_every_bias_moved_off_zero(model):
    assert model.dtype == np.float64
    for name, p in model.params.items():
        if name.endswith(".b"):
            assert 0.1 <= p.min() and p.max() <= 0.5, name


@given(st.data())
def test_batches_fit_their_model(data):
    model = data.draw(vae_models())
    x, eps = data.draw(batches(model))
    n = x.shape[0]
    assert 1 <= n <= 5
    assert x.shape == (n, model.config.input_dim) and eps.shape == (n, model.config.latent_dim)
    assert x.dtype == eps.dtype == np.float64
    if model.config.likelihood == "bernoulli":
        assert x.min() >= 0 and x.max() <= 1
    model.loss_and_grads(x, eps)  # accepted without error


@given(st.data())
def test_every_drawn_model_passes_the_whole_gradient_check(data):
    model = data.draw(vae_models())  # sigma and delta drawn around 1, not at it
    x, eps = data.draw(batches(model, max_batch=3))
    beta = data.draw(st.sampled_from([0.0, 0.3, 1.0, 2.5]))
    names = list(model.params)

    def loss(*arrays):
        return loss_forward(dict(zip(names, arrays, strict=True)), x, eps, model.config, beta)[0]

    def grads(*arrays):
        _, _, cache = loss_forward(dict(zip(names, arrays, strict=True)), x, eps, model.config, beta)
        g = loss_backward(cache)
        return [g[k] for k in names]

    assert_grad_close(loss, grads, *model.params.values())


def test_batches_for_relu_models_stay_off_the_kink():
    model = VAE(5, 2, hidden=(6, 4), activation="relu", dtype="float64", rng=1)
    for seed in range(5):
        x, eps = make_batch(model, np.random.default_rng(seed), 4)
        p = model.params
        h = np.maximum(x @ p["enc0.W"] + p["enc0.b"], 0.0)
        a1 = h @ p["enc1.W"] + p["enc1.b"]
        assert min(np.abs(x @ p["enc0.W"] + p["enc0.b"]).min(), np.abs(a1).min()) >= KINK_MARGIN
        h = np.maximum(a1, 0.0)
        z = h @ p["mu.W"] + p["mu.b"] + np.exp(0.5 * (h @ p["log_var.W"] + p["log_var.b"])) * eps
        a2 = z @ p["dec0.W"] + p["dec0.b"]
        a3 = np.maximum(a2, 0.0) @ p["dec1.W"] + p["dec1.b"]
        assert min(np.abs(a2).min(), np.abs(a3).min()) >= KINK_MARGIN


def test_relu_margin_covers_every_slab_of_iwae_noise():
    model = VAE(4, 2, hidden=(5,), activation="relu", dtype="float64", rng=2)
    x = np.random.default_rng(0).random((3, 4))
    eps = np.random.default_rng(1).standard_normal((2, 3, 2))
    per_slab = [relu_margin(model, x, e) for e in eps]
    assert relu_margin(model, x, eps) == min(per_slab) > 0
    h = x @ model.params["enc0.W"] + model.params["enc0.b"]
    assert min(per_slab) <= np.abs(h).min()
    assert relu_margin(VAE(4, 2, hidden=(), rng=0), x, eps) == math.inf


def test_make_batch_reports_a_dead_relu_unit():
    model = VAE(3, 2, hidden=(2,), activation="relu", dtype="float64", rng=0)
    model.params["enc0.W"][:, 0] = 0.0  # unit 0 sees only its bias, which is 0
    with pytest.raises(ValueError, match="dead unit"):
        make_batch(model, np.random.default_rng(0), 2)


def test_make_batch_uses_the_model_dtype():
    model = VAE(3, 2, hidden=(), likelihood="gaussian", rng=0)  # float32
    x, eps = make_batch(model, np.random.default_rng(0), 4)
    assert x.dtype == eps.dtype == np.float32
    assert x.min() < 0  # Gaussian data is not confined to [0, 1]


# ------------------------------------------------------ assert_grad_close

def test_passes_the_true_gradient_of_several_arrays():
    rng = np.random.default_rng(0)
    A, v = rng.standard_normal((3, 4)), rng.standard_normal(4)
    assert_grad_close(lambda A, v: float(np.sum(np.tanh(A @ v))),
                      lambda A, v: (np.outer(1 - np.tanh(A @ v) ** 2, v),
                                    A.T @ (1 - np.tanh(A @ v) ** 2)), A, v)


def test_catches_a_planted_error_of_one_tenth_of_a_percent_and_reports_it():
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    wrong = 3 * x ** 2
    wrong[1, 0] *= 1.001
    with pytest.raises(AssertionError) as info:
        assert_grad_close(cube, lambda v: wrong, x)
    message = str(info.value)
    first = message.splitlines()[0]
    assert "arrays[0][1, 0]" in first
    assert "analytic 12.012" in first and "numerical 12," in first
    rel = float(first.split("relative error ")[1].split()[0])
    assert math.isclose(rel, 0.012 / 12.012, rel_tol=1e-3)
    assert "NO" in message  # the gradcheck table follows


def test_names_only_the_failing_array():
    x, y = np.array([1.0, 2.0]), np.array([3.0])
    with pytest.raises(AssertionError) as info:
        assert_grad_close(lambda x, y: float(np.sum(x * y)), lambda x, y: (y * x, np.array([x.sum()])), x, y)
    lines = [line for line in str(info.value).splitlines() if "differs" in line]
    assert len(lines) == 1 and lines[0].startswith("arrays[0]:")


def test_tolerances_are_passed_on():
    x = np.array([1.0, -2.0])
    slightly_wrong = lambda v: 3 * v ** 2 * (1 + 1e-4)  # noqa: E731
    with pytest.raises(AssertionError):
        assert_grad_close(cube, slightly_wrong, x)
    assert_grad_close(cube, slightly_wrong, x, rtol=1e-3, atol=1e-3, normwise_tol=1e-3)
    assert_grad_close(cube, lambda v: 3 * v ** 2, x, fd_step=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_refuses_non_float64_arrays_and_says_why(dtype):
    x = np.array([1.0, 2.0]).astype(dtype)
    with pytest.raises(TypeError, match=r"arrays\[0\]: finite differences need float64") as info:
        assert_grad_close(cube, lambda v: 3 * v ** 2, x)
    assert "rounding" in str(info.value) and "astype(np.float64)" in str(info.value)


def test_argument_errors():
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="arrays: expected at least one"):
        assert_grad_close(lambda: 0.0, lambda: ())
    with pytest.raises(TypeError, match=r"f: expected a scalar, got an array of shape \(2,\)"):
        assert_grad_close(lambda v: v ** 2, lambda v: 2 * v, x)
    with pytest.raises(ValueError, match="grad_f: expected 2 gradients, one per array, got 1"):
        assert_grad_close(lambda u, v: float(u @ v), lambda u, v: [v], x, x)
    with pytest.raises(ValueError, match=r"arrays\[0\]: analytic gradient has shape \(3,\)"):
        assert_grad_close(cube, lambda v: np.zeros(3), x)


def test_leaves_the_arrays_unchanged():
    x = np.array([1.0, 2.0])
    before = x.copy()
    assert_grad_close(cube, lambda v: 3 * v ** 2, x)
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------ assert_vjp_close

def dense_relu_forward(x, W, b):
    a, dense_cache = dense_forward(x, W, b)
    h, relu_cache = relu_forward(a)
    return h, (dense_cache, relu_cache)


def dense_relu_backward(dh, cache):
    dense_cache, relu_cache = cache
    return dense_backward(relu_backward(dh, relu_cache), dense_cache)


@given(arrays_for_layer(max_batch=4, max_features=6), st.integers(0, 2**32 - 1))
def test_vjp_close_passes_every_drawn_layer(xWb, seed):
    assert_vjp_close(dense_relu_forward, list(xWb), dense_relu_backward, seed)


def test_vjp_close_catches_a_planted_error_and_names_input_and_entry():
    x, W, b = make_layer_arrays(np.random.default_rng(0), 3, 4, 2)

    def backward_dW_off(dh, cache):
        dx, dW, db = dense_relu_backward(dh, cache)
        dW = dW.copy()
        dW[2, 1] *= 1.001  # one entry 0.1% off
        return dx, dW, db

    assert_vjp_close(dense_relu_forward, [x, W, b], dense_relu_backward)
    with pytest.raises(AssertionError) as info:
        assert_vjp_close(dense_relu_forward, [x, W, b], backward_dW_off,
                         names=["x", "W", "b"])
    message = str(info.value)
    failing = [line for line in message.splitlines() if "differs" in line]
    assert len(failing) == 1 and failing[0].startswith("W: gradient differs")
    assert "worst entry W[2, 1]" in failing[0]
    assert "NO" in message  # the gradcheck table follows


def test_vjp_close_default_names_and_a_single_array():
    mu = np.random.default_rng(1).standard_normal((2, 3))
    log_var = np.zeros((2, 3))

    def forward(m):
        return kl_forward(m, log_var)

    def wrong(dkl, cache):
        return 2.0 * kl_backward(dkl, cache)[0]

    assert_vjp_close(forward, mu, lambda dkl, cache: kl_backward(dkl, cache)[0])
    with pytest.raises(AssertionError, match=r"^inputs\[0\]: gradient differs"):
        assert_vjp_close(forward, mu, wrong)


def test_vjp_close_draws_dout_from_the_generator():
    # A backward that is right only for dout = 1 passes no random dout.
    x = np.array([[0.5, -1.0, 2.0]])
    forward = lambda v: (np.sin(v), v)  # noqa: E731
    ones_only = lambda dout, v: np.cos(v)  # noqa: E731, forgot dout
    for seed in (0, 1, np.random.default_rng(2)):
        with pytest.raises(AssertionError):
            assert_vjp_close(forward, x, ones_only, seed)
    assert_vjp_close(forward, x, lambda dout, v: dout * np.cos(v), 3)


def test_vjp_close_argument_errors():
    x = np.ones((2, 2))
    forward = lambda u, v: (u * v, (u, v))  # noqa: E731
    with pytest.raises(ValueError, match="backward: expected 2 gradients, one per input"):
        assert_vjp_close(forward, [x, x], lambda dout, cache: dout * cache[1])
    with pytest.raises(TypeError, match=r"^v: finite differences need float64"):
        assert_vjp_close(forward, [x, x.astype(np.float32)],
                         lambda dout, c: (dout * c[1], dout * c[0]), names=["u", "v"])


def test_vjp_close_leaves_the_inputs_unchanged():
    x, W, b = make_layer_arrays(np.random.default_rng(4), 2, 3, 2)
    before = [a.copy() for a in (x, W, b)]
    assert_vjp_close(dense_relu_forward, [x, W, b], dense_relu_backward)
    for a, c in zip((x, W, b), before, strict=True):
        np.testing.assert_array_equal(a, c)


# ------------------------------------------------------ hypothesis is optional

def test_strategies_name_the_package_to_install_when_hypothesis_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # makes the import fail
    for strategy in (arrays_for_layer, vae_configs, vae_models,
                     lambda: batches(VAE(2, 1, rng=0))):
        with pytest.raises(ImportError, match=r"pip install hypothesis") as info:
            strategy()
        assert "\n" not in str(info.value) and "numpyvae[test]" in str(info.value)


def test_importing_numpyvae_testing_does_not_import_hypothesis():
    code = ("import sys, numpyvae.testing; "
            "sys.exit(1 if 'hypothesis' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_gradient_tiny_next_to_f_is_judged_above_its_rounding_noise(monkeypatch):
    # f is about 1e3, so each central difference carries ~1e-9 of rounding
    # noise: a normwise relative error of ~1e-4 on this correct 1e-5 gradient.
    x = np.array([0.3, -1.2, 2.0])
    f = lambda v: 1e3 + 1e-5 * float(np.sum(np.sin(v)))  # noqa: E731
    assert_grad_close(f, lambda v: 1e-5 * np.cos(v), x)
    with pytest.raises(AssertionError, match="normwise relative error 0.2"):
        assert_grad_close(f, lambda v: 1.5e-5 * np.cos(v), x)  # 50% too large
    monkeypatch.setattr(sys.modules["numpyvae.checks.gradcheck"], "NOISE_FLOOR", 0.0)
    with pytest.raises(AssertionError, match="normwise relative error 0.000"):
        assert_grad_close(f, lambda v: 1e-5 * np.cos(v), x)  # noise alone fails it

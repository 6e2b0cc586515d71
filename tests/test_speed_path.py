"""Tests for the fast path of the training step (model.loss_forward /
loss_backward with a workspace, Adam's packed update, Trainer's batch
buffers): float32 stays float32, the fast code equals the slow obvious
one, reusing a workspace is safe, the gradients pass the finite-difference
gate, and a steady-state step allocates no large arrays. No timings."""

import math
import tracemalloc

import numpy as np
import pytest

from numpyvae import VAE
from numpyvae.gradcheck import gradcheck
from numpyvae.model import loss_backward, loss_forward
from numpyvae.optim import Adam
from numpyvae.train import Trainer

CONFIGS = [(likelihood, posterior, hidden, activation)
           for likelihood in ("bernoulli", "gaussian")
           for posterior in ("diagonal", "fixed")
           for hidden, activation in (((), "relu"), ((5, 4), "tanh"), ((5, 4), "relu"))]


def model_and_batch(likelihood="bernoulli", posterior="diagonal", hidden=(5, 4),
                    activation="relu", n=4, d_x=6, d_z=2, dtype="float64", seed=0):
    """A small model with random biases, a batch x and noise eps."""
    model = VAE(d_x, d_z, hidden=hidden, activation=activation, likelihood=likelihood,
                posterior=posterior, delta=0.7 if posterior == "fixed" else None,
                dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():
        if name.endswith(".b"):
            p[...] = 0.3 * rng.standard_normal(p.shape)
    x = rng.random((n, d_x)) if likelihood == "bernoulli" else rng.standard_normal((n, d_x))
    eps = rng.standard_normal((n, d_z))
    return model, x.astype(dtype), eps.astype(dtype)


# ------------------------------------------------ the slow obvious version

def reference_loss_and_grads(params, x, eps, config, beta):
    """The loss and every gradient, written out the plain way (float64)."""
    act = {"relu": lambda a: np.maximum(a, 0.0), "tanh": np.tanh}[config.activation]
    dact = {"relu": lambda a, h: (a > 0).astype(a.dtype),
            "tanh": lambda a, h: 1.0 - h ** 2}[config.activation]
    n, L = x.shape[0], len(config.hidden)

    def mlp(h, prefix):
        inputs, pre = [], []
        for i in range(L):
            inputs.append(h)
            pre.append(h @ params[f"{prefix}{i}.W"] + params[f"{prefix}{i}.b"])
            h = act(pre[-1])
        return h, inputs, pre

    h, enc_in, enc_pre = mlp(x, "enc")
    mu = h @ params["mu.W"] + params["mu.b"]
    if config.posterior == "diagonal":
        log_var = h @ params["log_var.W"] + params["log_var.b"]
        std = np.exp(0.5 * log_var)
        kl = 0.5 * np.sum(mu ** 2 + np.exp(log_var) - log_var - 1.0, axis=1)
    else:
        std = config.delta
        kl = 0.5 * np.sum(mu ** 2 + std ** 2 - np.log(std ** 2) - 1.0, axis=1)
    z = mu + std * eps
    h_dec, dec_in, dec_pre = mlp(z, "dec")
    out = h_dec @ params["out.W"] + params["out.b"]
    if config.likelihood == "bernoulli":
        p = 1.0 / (1.0 + np.exp(-out))
        log_lik = np.sum(x * np.log(p) + (1.0 - x) * np.log(1.0 - p), axis=1)
        dout = (p - x) / n
    else:
        s2 = config.sigma ** 2
        log_lik = np.sum(-0.5 * (x - out) ** 2 / s2 - 0.5 * np.log(2 * np.pi * s2), axis=1)
        dout = -(x - out) / s2 / n
    loss = np.mean(-log_lik + beta * kl)

    grads = {"out.W": h_dec.T @ dout, "out.b": dout.sum(axis=0)}
    dh = dout @ params["out.W"].T

    def mlp_back(dh, prefix, inputs, pre):
        for i in reversed(range(L)):
            da = dh * dact(pre[i], act(pre[i]))
            grads[f"{prefix}{i}.W"] = inputs[i].T @ da
            grads[f"{prefix}{i}.b"] = da.sum(axis=0)
            dh = da @ params[f"{prefix}{i}.W"].T
        return dh

    dz = mlp_back(dh, "dec", dec_in, dec_pre)
    dmu = dz + beta / n * mu
    grads["mu.W"], grads["mu.b"] = h.T @ dmu, dmu.sum(axis=0)
    dh = dmu @ params["mu.W"].T
    if config.posterior == "diagonal":
        dlog_var = dz * eps * 0.5 * std + beta / n * 0.5 * (np.exp(log_var) - 1.0)
        grads["log_var.W"], grads["log_var.b"] = h.T @ dlog_var, dlog_var.sum(axis=0)
        dh = dh + dlog_var @ params["log_var.W"].T
    mlp_back(dh, "enc", enc_in, enc_pre)
    return loss, log_lik, kl, grads


@pytest.mark.parametrize("likelihood,posterior,hidden,activation", CONFIGS)
def test_fast_path_equals_the_reference(likelihood, posterior, hidden, activation):
    model, x, eps = model_and_batch(likelihood, posterior, hidden, activation)
    beta = 1.5
    loss, terms, cache = loss_forward(model.params, x, eps, model.config, beta, {})
    grads = loss_backward(cache)
    ref_loss, log_lik, kl, ref_grads = reference_loss_and_grads(model.params, x, eps,
                                                                model.config, beta)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(terms["log_lik"], log_lik, rtol=1e-12)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-12)
    assert list(grads) == list(model.params)
    for name, g in grads.items():
        np.testing.assert_allclose(g, ref_grads[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_reference_catches_a_wrong_gradient():
    """The comparison above can fail: one perturbed bias gradient is seen."""
    model, x, eps = model_and_batch()
    _, _, cache = loss_forward(model.params, x, eps, model.config, 1.0)
    grads = loss_backward(cache)
    _, _, _, ref = reference_loss_and_grads(model.params, x, eps, model.config, 1.0)
    grads["dec1.b"] = grads["dec1.b"] * (1 + 1e-6)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grads["dec1.b"], ref["dec1.b"], rtol=1e-10, atol=1e-13)


# --------------------------------------------- finite differences, float64

@pytest.mark.parametrize("likelihood,posterior,hidden,activation",
                         [c for c in CONFIGS if c[3] == "tanh" or c[2] == ()])
def test_workspace_gradients_pass_the_finite_difference_gate(likelihood, posterior, hidden,
                                                            activation):
    """Depth 0 and 2, every likelihood and posterior; the workspace is
    reused by every one of gradcheck's hundreds of loss_forward calls."""
    model, x, eps = model_and_batch(likelihood, posterior, hidden, activation)
    names, ws = list(model.params), {}
    _, _, cache = loss_forward(model.params, x, eps, model.config, 1.0, ws)
    grads = {k: g.copy() for k, g in loss_backward(cache).items()}

    def f(*arrays):
        return loss_forward(dict(zip(names, arrays)), x, eps, model.config, 1.0, ws)[0]

    report = gradcheck(f, list(model.params.values()), [grads[k] for k in names], names)
    assert report.passed, f"\n{report}"


# ------------------------------------------------------ float32 throughout

def float_arrays(obj):
    """Every floating-point ndarray inside nested tuples, lists and dicts."""
    if isinstance(obj, np.ndarray):
        return [obj] if obj.dtype.kind == "f" else []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [a for item in obj for a in float_arrays(item)]
    return []


@pytest.mark.parametrize("likelihood,posterior,hidden,activation",
                         [("bernoulli", "diagonal", (5, 4), "relu"),
                          ("gaussian", "fixed", (5,), "tanh")])
def test_every_intermediate_of_a_float32_step_is_float32(likelihood, posterior, hidden,
                                                        activation):
    model, x, eps = model_and_batch(likelihood, posterior, hidden, activation,
                                    dtype="float32")
    trainer = Trainer(model, Adam(), batch_size=4, rng=0)
    trainer.train_step(x)  # the Trainer's workspace and Adam's moments
    _, terms, cache = loss_forward(model.params, x, eps, model.config, 1.0,
                                   trainer.workspace)
    grads = loss_backward(cache)
    everything = {"cache": cache, "terms": terms, "grads": grads, "params": model.params,
                  "workspace": trainer.workspace, "m": trainer.optimizer.m,
                  "v": trainer.optimizer.v}
    arrays = float_arrays(everything)
    assert len(arrays) > 40
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}


# ----------------------------------------------------- reusing a workspace

def pure_result(model, x, eps, beta=1.0):
    """Loss, terms and grads with fresh arrays (no workspace)."""
    loss, terms, cache = loss_forward(model.params, x, eps, model.config, beta)
    return loss, terms, loss_backward(cache)


def assert_same(result, expected):
    loss, terms, grads = result
    assert loss == expected[0]
    for k in ("log_lik", "kl"):
        np.testing.assert_array_equal(terms[k], expected[1][k])
    assert list(grads) == list(expected[2])
    for k in grads:
        np.testing.assert_array_equal(grads[k], expected[2][k], err_msg=k)


def test_alternating_batch_sizes_and_interleaved_models_are_exact():
    """Every call with a workspace gives the bits of the pure call, whatever
    batch sizes and models came before it."""
    a, x_a, eps_a = model_and_batch(hidden=(5, 4), n=6, seed=1)
    b, x_b, eps_b = model_and_batch("gaussian", "fixed", hidden=(3,), n=6, seed=2)
    ws_a, ws_b, shared = {}, {}, {}
    for n in (6, 2, 5, 2, 6, 1):
        for model, x, eps, ws in ((a, x_a, eps_a, ws_a), (b, x_b, eps_b, ws_b),
                                  (a, x_a, eps_a, shared), (b, x_b, eps_b, shared)):
            expected = pure_result(model, x[:n], eps[:n])
            loss, terms, cache = loss_forward(model.params, x[:n], eps[:n], model.config,
                                              1.0, ws)
            assert_same((loss, terms, loss_backward(cache)), expected)


def test_the_cache_contract():
    model, x, eps = model_and_batch()
    first = pure_result(model, x, eps)
    other_eps = eps[::-1].copy()
    second = pure_result(model, x, other_eps)
    # without a workspace a cache never goes stale
    _, _, cache = loss_forward(model.params, x, eps, model.config)
    loss_forward(model.params, x, other_eps, model.config)
    assert_same((first[0], first[1], loss_backward(cache)), first)
    # with one, backward only reads the cache: twice gives the same grads
    ws = {}
    loss, terms, cache = loss_forward(model.params, x, eps, model.config, 1.0, ws)
    once = {k: g.copy() for k, g in loss_backward(cache).items()}
    assert_same((loss, terms, loss_backward(cache)), (first[0], first[1], once))
    # terms stay valid after the next call; the old cache does not (documented)
    loss_forward(model.params, x, other_eps, model.config, 1.0, ws)
    assert_same((loss, terms, once), first)
    stale = loss_backward(cache)
    assert any(not np.array_equal(stale[k], first[2][k]) for k in stale)
    assert_same(pure_result(model, x, other_eps), second)


def test_trainer_fast_path_changes_no_bits():
    """Trainer (workspace, batch buffers, packed Adam) against the plain loop:
    fresh arrays, x[idx], Adam over separate per-name arrays."""
    x = np.random.default_rng(3).random((50, 6)).astype(np.float32)
    fast = Trainer(VAE(6, 2, hidden=(5,), rng=0), Adam(lr=0.01), batch_size=16, rng=7)
    for _ in range(2):
        fast.run_epoch(x)
        fast.end_epoch()
    model = VAE(6, 2, hidden=(5,), rng=0)
    model.params = {k: p.copy() for k, p in model.params.items()}  # not packed
    opt, rng = Adam(lr=0.01), np.random.default_rng(7)
    for _ in range(2):
        perm = rng.permutation(50)
        for start in range(0, 50, 16):
            xb = x[perm[start:start + 16]]
            eps = rng.standard_normal((xb.shape[0], 2), dtype=np.float32)
            _, _, cache = loss_forward(model.params, xb, eps, model.config, 1.0)
            opt.step(model.params, loss_backward(cache))
    for k, p in model.params.items():
        np.testing.assert_array_equal(fast.model.params[k], p, err_msg=k)
    for k in opt.m:
        np.testing.assert_array_equal(fast.optimizer.m[k], opt.m[k], err_msg=k)
        np.testing.assert_array_equal(fast.optimizer.v[k], opt.v[k], err_msg=k)


def test_params_are_separate_arrays_over_one_buffer():
    model = VAE(6, 2, hidden=(5,), rng=0)
    params = list(model.params.values())
    assert [p.shape for p in params] == list(model.config.param_shapes().values())
    assert all(p.base is params[0].base for p in params)
    assert sum(p.size for p in params) == params[0].base.size


# ----------------------------------------------------------- allocations

def test_a_steady_state_step_allocates_no_large_array():
    """After warm-up, a whole Trainer step (batch gathering included)
    allocates only small arrays: (n, d_z) ones and NumPy's fixed 8192-entry
    ufunc buffers, never anything of the size of an activation."""
    n, d_x, d_h, d_z = 256, 784, 512, 8
    x = np.random.default_rng(0).random((4 * n, d_x)).astype(np.float32)
    trainer = Trainer(VAE(d_x, d_z, hidden=(d_h,), rng=0), batch_size=n, rng=0)
    trainer.run_epoch(x)  # warm-up: workspace, batch buffer, Adam moments
    trainer.end_epoch()
    peaks = []

    def measure(_):
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.reset_peak()

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        trainer.run_epoch(x, on_step=measure)
    finally:
        tracemalloc.stop()
    activation = n * d_h * 4  # one (n, d_h) float32 array: 512 KiB
    assert len(peaks) == 4
    assert max(peaks) < activation / 4, peaks
    assert math.isfinite(trainer.sums[0])

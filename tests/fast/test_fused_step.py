"""Tests for numpyvae/fast/fused_step.py: the training step's fast form equals
the reference (model.py, iwae.py, optim.Adam) in every configuration,
each fused piece passes its own finite-difference check, reusing a
workspace is safe, float32 stays float32, and a steady-state step
allocates no large array. No timings."""

import itertools
import math
import tracemalloc
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from numpyvae import VAE
from numpyvae.fast import fused_step, threads
from numpyvae.fast.fused_layers import (
    dense_backward_into,
    dense_into,
    heads_backward,
    heads_forward,
    hidden_backward,
    hidden_forward,
    log_lik_backward_into,
    log_lik_into,
)
from numpyvae.fast.fused_step import adam_step
from numpyvae.reference import vae as model
from numpyvae.reference.optim import Adam
from numpyvae.testing import assert_grad_close
from numpyvae.train import Trainer

ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "identity")
EVERY_CONFIGURATION = list(itertools.product(
    ("bernoulli", "gaussian"), ("diagonal", "fixed"), ACTIVATIONS, ((), (5,), (5, 4)),
    ("elbo", "iwae"), ("float64", "float32")))
BETA, K, STEPS, LR = 1.7, 3, 3, 0.01

# How close the fused step must come to the reference, as a normwise
# relative error ||fused - reference|| / ||reference|| per array.
# float64 against float64: the two differ only in the order of roundings
# (joined heads, sums as products with ones, the tanh form of the sigmoid,
# Adam's folded bias correction): a few units of 2.2e-16 per operation
# along a path of ~30 operations, far below 1e-12.
# float32 against the float64 reference: every operation of the float32
# step rounds to u = 6.0e-8; a gradient entry here is reached through at
# most ~40 operations (7 dense layers of inner size <= 6, activations, the
# likelihood, the sample, and the IWAE softmax), each adding at most about
# (inner size) * u relative error, so 40 * 6 * u = 1.4e-5 bounds it
# before any cancellation; 1e-4 leaves room for the cancellation in the
# sums of gradient terms, and a real bug (a lost factor, a wrong sign, a
# transposed matrix) moves the result by 1e-2 or more.
TOL = {"float64": 1e-12, "float32": 1e-4}
# Adam against Adam in the same dtype, given the same gradients: the
# folded form rounds differently, by a few u of the update lr * O(1),
# and the new parameter may then round one unit apart (rtol of 4 u).
ADAM_ATOL = {"float64": 1e-13 * LR, "float32": 1e-5 * LR}
ADAM_RTOL = {"float64": 4 * 2.2e-16, "float32": 4 * 1.2e-7}


def normwise(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def setup_case(likelihood, posterior, activation, hidden, dtype, seed=0, n=4, d_x=6, d_z=2):
    """A model with random biases, a batch and noise: float32-representable
    values, so the float32 run and the float64 reference see the same inputs."""
    vae = VAE(d_x, d_z, hidden=hidden, activation=activation, likelihood=likelihood,
              sigma=0.6 if likelihood == "gaussian" else None, posterior=posterior,
              delta=0.7 if posterior == "fixed" else None, dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in vae.params.items():
        if name.endswith(".b"):
            p[...] = rng.uniform(0.1, 0.5, p.shape)
    x = rng.random((n, d_x)) if likelihood == "bernoulli" else rng.standard_normal((n, d_x))
    eps = rng.standard_normal((STEPS, K, n, d_z))
    return vae, x.astype(np.float32).astype(dtype), eps.astype(np.float32).astype(dtype)


def reference(params, x, eps, config, objective):
    """Loss, terms and grads of the reference, in float64."""
    params = {k: v.astype(np.float64) for k, v in params.items()}
    config64 = model.VAEConfig(**{**config.to_dict(), "hidden": config.hidden,
                                  "dtype": "float64"})
    x, eps = x.astype(np.float64), eps.astype(np.float64)
    if objective == "iwae":
        loss, terms, cache = model.bound_loss_forward(params, x, eps, config64, "iwae")
        return loss, terms, model.bound_loss_backward(cache)
    loss, terms, cache = model.loss_forward(params, x, eps[0], config64, BETA)
    return loss, terms, model.loss_backward(cache)


def fused(params, x, eps, config, objective, ws, ws_2=None, helper=None):
    """The fused step's loss, terms and grads: whole, or with a second
    workspace as two halves of the batch (fused_step.forward_backward)."""
    if ws_2 is not None:
        e = eps if objective == "iwae" else eps[0]
        return fused_step.forward_backward(params, x, e, config, objective, BETA,
                                           (ws, ws_2), helper)
    if objective == "iwae":
        loss, terms, cache = fused_step.iwae_loss_forward(params, x, eps, config, ws)
        return loss, terms, fused_step.iwae_loss_backward(cache)
    loss, terms, cache = fused_step.loss_forward(params, x, eps[0], config, BETA, ws)
    return loss, terms, fused_step.loss_backward(cache)


@pytest.fixture
def helper():
    with ThreadPoolExecutor(1) as executor:
        yield executor


@pytest.mark.parametrize("split", [False, True], ids=["whole", "halves"])
@pytest.mark.parametrize("likelihood,posterior,activation,hidden,objective,dtype",
                         EVERY_CONFIGURATION)
def test_fused_step_equals_the_reference(likelihood, posterior, activation, hidden,
                                         objective, dtype, split, helper, monkeypatch):
    """STEPS training steps: at each, the fused loss, terms and every
    gradient against the reference at the same parameters (in float64),
    then the fused Adam against optim.Adam given the same gradients.
    "halves": the step of a large batch, two unequal halves (2 and 3
    examples) on two threads, Adam's slices split between them too."""
    vae, x, eps = setup_case(likelihood, posterior, activation, hidden, dtype,
                             n=5 if split else 4)
    params, config, ws, tol = vae.params, vae.config, {}, TOL[dtype]
    ws_2, helper = ({}, helper) if split else (None, None)
    monkeypatch.setattr(fused_step, "SPLIT_ROWS", 1)  # any batch of 2 or more splits
    monkeypatch.setattr(fused_step, "ADAM_CHUNK", 7)  # slices on both threads
    plain_params = {k: p.copy() for k, p in params.items()}
    fused_adam, plain_adam = Adam(lr=LR), Adam(lr=LR)
    for step in range(STEPS):
        loss, terms, grads = fused(params, x, eps[step], config, objective, ws, ws_2, helper)
        ref_loss, ref_terms, ref_grads = reference(params, x, eps[step], config, objective)
        assert abs(loss - ref_loss) <= tol * max(1.0, abs(ref_loss)), (step, loss, ref_loss)
        assert list(terms) == list(ref_terms)
        for key in terms:
            assert terms[key].dtype == np.dtype(dtype), key
            assert normwise(terms[key], ref_terms[key]) <= tol, (step, key)
        assert list(grads) == list(ref_grads) == list(params)
        for name, g in grads.items():
            assert g.dtype == np.dtype(dtype), name
            assert normwise(g, ref_grads[name]) <= tol, (step, name,
                                                        normwise(g, ref_grads[name]))
        same_grads = {k: g.copy() for k, g in grads.items()}
        adam_step(fused_adam, params, grads, ws, helper)
        plain_adam.step(plain_params, same_grads)
        assert fused_adam.t == plain_adam.t == step + 1
        for name in params:
            np.testing.assert_allclose(params[name], plain_params[name], rtol=ADAM_RTOL[dtype],
                                       atol=ADAM_ATOL[dtype], err_msg=name)
            np.testing.assert_allclose(fused_adam.v[name], plain_adam.v[name], rtol=1e-5,
                                       err_msg=name)


def test_the_equality_test_sees_a_small_error():
    """The bound of the float64 comparison fails for a 1e-9 change."""
    vae, x, eps = setup_case("bernoulli", "diagonal", "tanh", (5,), "float64")
    _, _, grads = fused(vae.params, x, eps[0], vae.config, "elbo", {})
    _, _, ref = reference(vae.params, x, eps[0], vae.config, "elbo")
    assert normwise(grads["dec0.b"], ref["dec0.b"]) <= TOL["float64"]
    assert normwise(grads["dec0.b"] * (1 + 1e-9), ref["dec0.b"]) > TOL["float64"]


def test_every_configuration_is_covered():
    """likelihood x posterior x activation x depth 0/1/2 x objective x dtype."""
    assert len(EVERY_CONFIGURATION) == 2 * 2 * 5 * 3 * 2 * 2
    assert BETA != 1 and K > 1


# ------------------------------------------- each fused piece, by name

def _close(name, analytic, f, v, dout):
    """`analytic` is the gradient of sum(dout * f(v)) wrt `v` (`name`)."""
    assert_grad_close(lambda u: float(np.sum(dout * f(u))), lambda u: analytic, v)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def biased_model(rng, hidden=(5, 4), activation="tanh", posterior="diagonal", seed=0,
                 likelihood="bernoulli"):
    vae = VAE(6, 3, hidden=hidden, activation=activation, posterior=posterior,
              likelihood=likelihood, dtype="float64", rng=seed)
    for name in vae.params:
        if name.endswith(".b"):
            vae.params[name][...] = rng.uniform(0.2, 0.6, vae.params[name].shape)
    return vae


def test_dense_backward_into(rng):
    h, W, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    da = rng.standard_normal((4, 3))
    grads = {"L.W": np.empty((5, 3)), "L.b": np.empty(3)}
    dh = dense_backward_into(da, h, W, grads, "L", {}, need_dx=True)
    _close("h", dh, lambda v: dense_into(v, W, b, {}, "L").copy(), h, da)
    _close("W", grads["L.W"], lambda v: dense_into(h, v, b, {}, "L").copy(), W, da)
    _close("b", grads["L.b"], lambda v: dense_into(h, W, v, {}, "L").copy(), b, da)
    assert dense_backward_into(da, h, W, grads, "L", {}, need_dx=False) is None


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_hidden_backward(rng, activation):
    vae = biased_model(rng, activation=activation, seed=1)
    x = rng.random((4, 6))
    h, layers = hidden_forward(vae.params, x, "enc", vae.config, {})
    dh = rng.standard_normal(h.shape)
    grads = {k: np.empty_like(v) for k, v in vae.params.items()}
    dx = hidden_backward(dh.copy(), layers, vae.config, grads, {}, need_dx=True)

    def forward_x(v):
        return hidden_forward(vae.params, v, "enc", vae.config, {})[0].copy()

    _close("x", dx, forward_x, x, dh)
    for name in ("enc0.W", "enc0.b", "enc1.W", "enc1.b"):
        def forward_p(v, name=name):
            params = dict(vae.params, **{name: v})
            return hidden_forward(params, x, "enc", vae.config, {})[0].copy()
        _close(name, grads[name], forward_p, vae.params[name].copy(), dh)


@pytest.mark.parametrize("posterior", ["diagonal", "fixed"])
def test_heads_backward(rng, posterior):
    vae = biased_model(rng, hidden=(5,), posterior=posterior, seed=2)
    h = rng.standard_normal((4, 5))
    mu, log_var, W = heads_forward(vae.params, h, vae.config, {})
    width = 6 if posterior == "diagonal" else 3
    dheads = rng.standard_normal((4, width))
    grads = {k: np.empty_like(v) for k, v in vae.params.items()}
    dh = heads_backward(dheads, h, W, vae.config, grads, {}, need_dx=True)

    def heads(params, v):
        mu, log_var, _ = heads_forward(params, v, vae.config, {})
        return np.hstack([mu, log_var]) if log_var is not None else mu.copy()

    _close("h", dh, lambda v: heads(vae.params, v), h, dheads)
    for name in ("mu.W", "mu.b") + (("log_var.W", "log_var.b") if width == 6 else ()):
        _close(name, grads[name], lambda v, n=name: heads(dict(vae.params, **{n: v}), h),
               vae.params[name].copy(), dheads)


@pytest.mark.parametrize("posterior,delta", [("diagonal", None), ("fixed", 0.7)])
@pytest.mark.parametrize("dkl", [0.0, 0.35])
def test_sample_and_kl_backward(rng, posterior, delta, dkl):
    """[dmu | dlog_var] of f = sum(dz_up * z) + dkl * sum(kl), the sample and
    the KL of `_sample_and_kl` together, against central differences."""
    vae = VAE(6, 3, hidden=(), posterior=posterior, delta=delta, dtype="float64", rng=0)
    mu, log_var = rng.standard_normal((4, 3)), rng.uniform(-1, 1, (4, 3))
    eps, dz_up = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    lv = log_var if posterior == "diagonal" else None
    z, kl, cache = fused_step._sample_and_kl(mu, lv, eps, vae.config)
    dheads = np.empty((4, 6 if posterior == "diagonal" else 3))
    fused_step._sample_and_kl_backward(dz_up, dkl, cache, vae.config, dheads)

    def f(m, v):
        z, kl, _ = fused_step._sample_and_kl(m, v, eps, vae.config)
        return float(np.sum(dz_up * z) + dkl * np.sum(kl))
    _close("mu", dheads[:, :3], lambda m: np.array([f(m, lv)]), mu.copy(), np.ones(1))
    if posterior == "diagonal":
        _close("log_var", dheads[:, 3:], lambda v: np.array([f(mu, v)]), log_var.copy(),
               np.ones(1))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("per_row", [False, True], ids=["elbo-scale", "iwae-weights"])
def test_log_lik_backward_into(rng, likelihood, per_row):
    """dout for dlog_lik = -scale: 1/n for the ELBO, one weight per row
    (w~ / n) for the IWAE objective."""
    vae = VAE(6, 3, hidden=(), likelihood=likelihood, sigma=0.6 if likelihood == "gaussian"
              else None, dtype="float64", rng=3)
    x, out = rng.random((4, 6)), rng.standard_normal((4, 6))
    scale = rng.uniform(0.1, 1.0, (4, 1)) if per_row else 1.0 / 4
    _, cache = log_lik_into(x, out, vae.config, {})
    dout = log_lik_backward_into(cache, scale, vae.config, {})
    dlog_lik = -np.broadcast_to(scale, (4, 1))[:, 0]
    _close("out", dout, lambda v: log_lik_into(x, v, vae.config, {})[0].copy(), out,
           dlog_lik)


# ------------------------------------------------- reusing a workspace

def pure_result(vae, x, eps, beta=1.0):
    loss, terms, cache = fused_step.loss_forward(vae.params, x, eps, vae.config, beta, {})
    return loss, terms, {k: g.copy() for k, g in fused_step.loss_backward(cache).items()}


def assert_same(result, expected):
    loss, terms, grads = result
    assert loss == expected[0]
    for k in ("log_lik", "kl"):
        np.testing.assert_array_equal(terms[k], expected[1][k])
    assert list(grads) == list(expected[2])
    for k in grads:
        np.testing.assert_array_equal(grads[k], expected[2][k], err_msg=k)


def test_alternating_batch_sizes_and_interleaved_models_are_exact(rng):
    """Every call through a shared workspace gives the bits of a call with
    a fresh one, whatever batch sizes and models came before it."""
    a, x_a, eps_a = setup_case("bernoulli", "diagonal", "relu", (5, 4), "float64", seed=1,
                               n=6)
    b, x_b, eps_b = setup_case("gaussian", "fixed", "tanh", (3,), "float64", seed=2, n=6)
    ws_a, ws_b = {}, {}
    for n in (6, 2, 5, 2, 6, 1):
        for vae, x, eps, ws in ((a, x_a, eps_a[0, 0], ws_a), (b, x_b, eps_b[0, 0], ws_b)):
            expected = pure_result(vae, x[:n], eps[:n])
            loss, terms, cache = fused_step.loss_forward(vae.params, x[:n], eps[:n],
                                                         vae.config, 1.0, ws)
            assert_same((loss, terms, fused_step.loss_backward(cache)), expected)


def test_the_cache_contract():
    vae, x, eps = setup_case("bernoulli", "diagonal", "tanh", (5, 4), "float64")
    eps, other_eps = eps[0, 0], eps[1, 0]
    first, second = pure_result(vae, x, eps), pure_result(vae, x, other_eps)
    ws = {}
    loss, terms, cache = fused_step.loss_forward(vae.params, x, eps, vae.config, 1.0, ws)
    once = {k: g.copy() for k, g in fused_step.loss_backward(cache).items()}
    # backward only reads the cache: twice gives the same grads
    assert_same((loss, terms, fused_step.loss_backward(cache)), (first[0], first[1], once))
    # terms stay valid after the next call; the old cache does not (documented)
    fused_step.loss_forward(vae.params, x, other_eps, vae.config, 1.0, ws)
    assert_same((loss, terms, once), first)
    stale = fused_step.loss_backward(cache)
    assert any(not np.array_equal(stale[k], first[2][k]) for k in stale)
    assert_same(pure_result(vae, x, other_eps), second)


# ------------------------------------------------------------ packing

def test_adam_step_packs_params_and_moments_and_repacks_a_replaced_entry():
    vae, x, eps = setup_case("bernoulli", "diagonal", "tanh", (5,), "float64")
    before = {k: p.copy() for k, p in vae.params.items()}
    ws, adam = {}, Adam(lr=LR)
    _, _, grads = fused(vae.params, x, eps[0], vae.config, "elbo", ws)
    adam_step(adam, vae.params, grads, ws)
    arrays = list(vae.params.values())
    assert all(p.base is arrays[0].base for p in arrays)  # one buffer
    assert sum(p.size for p in arrays) == arrays[0].base.size
    assert all(m.base is next(iter(adam.m.values())).base for m in adam.m.values())
    plain, plain_adam = dict(before), Adam(lr=LR)
    plain_adam.step(plain, {k: g.copy() for k, g in grads.items()})
    # a replaced entry (a loaded array, say) is copied in, not lost
    vae.params["out.b"] = vae.params["out.b"] + 1.0
    plain["out.b"] = plain["out.b"] + 1.0
    _, _, grads = fused(vae.params, x, eps[1], vae.config, "elbo", ws)
    plain_adam.step(plain, {k: g.copy() for k, g in grads.items()})
    adam_step(adam, vae.params, grads, ws)
    for name in plain:
        np.testing.assert_allclose(vae.params[name], plain[name], rtol=0,
                                   atol=ADAM_ATOL["float64"], err_msg=name)


def test_trainer_runs_the_reference_math():
    """Two epochs of the Trainer (fused step, batch buffers, packed Adam)
    against the plain loop: the reference loss and optim.Adam, x[idx]."""
    x = np.random.default_rng(3).random((50, 6))
    trainer = Trainer(VAE(6, 2, hidden=(5,), dtype="float64", rng=0), Adam(lr=LR),
                      batch_size=16, rng=7, beta=BETA)
    for _ in range(2):
        trainer.run_epoch(x)
        trainer.end_epoch()
    vae, adam, rng = VAE(6, 2, hidden=(5,), dtype="float64", rng=0), Adam(lr=LR), \
        np.random.default_rng(7)
    for _ in range(2):
        perm = rng.permutation(50)
        for start in range(0, 50, 16):
            xb = x[perm[start:start + 16]]
            eps = rng.standard_normal((xb.shape[0], 2))
            _, _, cache = model.loss_forward(vae.params, xb, eps, vae.config, BETA)
            adam.step(vae.params, model.loss_backward(cache))
    for k, p in vae.params.items():
        np.testing.assert_allclose(trainer.model.params[k], p, rtol=1e-10, atol=1e-13,
                                   err_msg=k)


class InlineExecutor:
    """An executor that runs each task at once, on the calling thread."""

    def submit(self, fn, *args):
        done = Future()
        done.set_result(fn(*args))
        return done


@pytest.mark.parametrize("split", [False, True], ids=["whole", "halves"])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_forward_backward_gradients_by_finite_differences(objective, split, monkeypatch):
    """fused_step.forward_backward (one `_forward_backward` pass, or two
    halves joined as (h/n) g_0 + ((n-h)/n) g_1): every parameter's gradient
    against central differences of the loss it returns, at fixed eps."""
    vae, x, eps = setup_case("bernoulli", "diagonal", "tanh", (5,), "float64", n=5)
    monkeypatch.setattr(fused_step, "SPLIT_ROWS", 1)  # a batch of 5 splits 2 + 3
    e = eps[0] if objective == "iwae" else eps[0, 0]
    helper = InlineExecutor() if split else None

    def loss_at(params):
        return fused_step.forward_backward(params, x, e, vae.config, objective, BETA,
                                           ({}, {}), helper)[0]

    _, _, grads = fused_step.forward_backward(vae.params, x, e, vae.config, objective, BETA,
                                              ({}, {}), helper)
    for name, g in grads.items():
        g_kept = g.copy()  # the workspace's buffer is reused by the next call
        assert_grad_close(lambda v, n=name: loss_at(dict(vae.params, **{n: v})),
                          lambda v, g=g_kept: g, vae.params[name].copy())


def test_a_split_step_gives_the_same_bits_however_its_halves_are_run(monkeypatch):
    """Trainer steps that split the batch (two cores, fused_step.SPLIT_ROWS)
    give the same parameters to the bit whether the second half and half
    of Adam's slices run on the helper thread or, one after the other, on
    the calling thread; BLAS's threads are restored after each step. One
    core (no split) rounds differently, and stays close."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = (np.random.default_rng(3).random((64, 30)) < 0.3).astype(np.float32)
    monkeypatch.setattr(fused_step, "ADAM_CHUNK", 64)
    monkeypatch.setattr(fused_step, "SPLIT_ROWS", 2)

    def train(cores: int, executor, objective: str) -> dict:
        monkeypatch.setattr(threads, "two_cores", lambda: cores == 2)
        monkeypatch.setattr(threads, "helper", lambda: executor)
        trainer = Trainer(VAE(30, 3, hidden=(20, 10), rng=0), Adam(lr=LR), batch_size=21,
                          rng=7, objective=objective, k=3 if objective == "iwae" else 1)
        trainer.run_epoch(x)  # batches of 21, 21, 21 and 1 (too small to split)
        return trainer.model.params

    with ThreadPoolExecutor(1) as pool:
        for objective in ("elbo", "iwae"):
            blas = [d["num_threads"] for d in threadpoolctl.threadpool_info()]
            threaded, inline = train(2, pool, objective), train(2, InlineExecutor(), objective)
            assert [d["num_threads"] for d in threadpoolctl.threadpool_info()] == blas
            for name in threaded:
                np.testing.assert_array_equal(threaded[name], inline[name], err_msg=name)
            whole = train(1, None, objective)
            assert any(not np.array_equal(whole[k], inline[k]) for k in whole)
            for name in whole:
                np.testing.assert_allclose(inline[name], whole[name], rtol=1e-4, atol=1e-5)


def test_split_rows_counts_decoder_rows():
    assert not fused_step.splits(1, 10**6)  # one example cannot be halved
    assert fused_step.splits(fused_step.SPLIT_ROWS, 1)
    assert not fused_step.splits(fused_step.SPLIT_ROWS - 1, 1)
    assert fused_step.splits(20, 50) and not fused_step.splits(20, 1)  # the IWAE k = 50 step


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


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("likelihood,posterior,hidden,activation",
                         [("bernoulli", "diagonal", (5, 4), "relu"),
                          ("gaussian", "fixed", (5,), "tanh")])
def test_every_intermediate_of_a_float32_step_is_float32(likelihood, posterior, hidden,
                                                        activation, objective):
    vae, x, eps = setup_case(likelihood, posterior, activation, hidden, "float32")
    trainer = Trainer(vae, Adam(), batch_size=4, rng=0, objective=objective,
                      k=K if objective == "iwae" else 1)
    trainer.train_step(x)  # the Trainer's workspace and Adam's moments
    loss, terms, grads = fused(vae.params, x, eps[0], vae.config, objective,
                               trainer.workspace)
    everything = {"terms": terms, "grads": grads, "params": vae.params,
                  "workspace": trainer.workspace, "m": trainer.optimizer.m,
                  "v": trainer.optimizer.v}
    arrays = float_arrays(everything)
    assert len(arrays) > 40
    assert {a.dtype for a in arrays} == {np.dtype(np.float32)}


# ----------------------------------------------------------- allocations

def test_a_steady_state_step_allocates_no_large_array():
    """After warm-up, a whole Trainer step (batch gathering included)
    allocates only small arrays: (n, d_z) ones and NumPy's fixed 8192-entry
    ufunc buffers, never anything of the size of an activation."""
    n, d_x, d_h, d_z = 256, 784, 512, 8
    x = np.random.default_rng(0).random((4 * n, d_x)).astype(np.float32)
    trainer = Trainer(VAE(d_x, d_z, hidden=(d_h,), rng=0), batch_size=n, rng=0)
    trainer.run_epoch(x)  # warm-up: workspace, batch buffer, Adam moments, packing
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


def test_the_iwae_backward_makes_no_subnormal_numbers():
    # An untrained MNIST-sized model with k = 50: most normalized weights
    # are far below 1e-19, and their products with the network would be
    # subnormal floats (a hundred times slower to multiply). The backward
    # counts them as 0, and still equals the reference.
    vae = VAE(784, 20, hidden=(100,), activation="tanh", rng=0)
    rng = np.random.default_rng(1)
    x = (rng.random((4, 784)) < 0.3).astype(np.float32)
    eps = rng.standard_normal((50, 4, 20), dtype=np.float32) * 3
    ws = {}
    _, _, cache = fused_step.iwae_loss_forward(vae.params, x, eps, vae.config, ws)
    w_tilde = cache["head"][1]  # the IWAE head's softmax weights
    assert (w_tilde < 1e-19).mean() > 0.3  # the case this test is about
    grads = fused_step.iwae_loss_backward(cache)
    tiny = np.finfo(np.float32).tiny
    for key, buf in ws.items():
        if isinstance(key, tuple) and key[0] in ("dout", "out.dx", "dec0.dx"):
            assert not ((buf != 0) & (np.abs(buf) < tiny)).any(), key
    config64 = vae.config.__class__(**{**vae.config.__dict__, "dtype": "float64"})
    params64 = {k: v.astype(np.float64) for k, v in vae.params.items()}
    _, _, cache64 = model.bound_loss_forward(params64, x.astype(np.float64),
                                             eps.astype(np.float64), config64, "iwae")
    reference = model.bound_loss_backward(cache64)
    for name in reference:
        assert normwise(grads[name], reference[name]) < TOL["float32"], name

"""Tests for numpyvae/reference/optim.py: Adam and SGD against their update rules
written out by hand, convergence on a quadratic, dtype discipline, the
state round trip, and hyperparameter/grads errors."""

import io
import math

import numpy as np
import pytest

from numpyvae.reference.optim import SGD, Adam

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

# Three gradients for a 4-vector: varying sizes, a sign change, a zero entry.
GRADS = [np.array([0.5, -2.0, 1e-3, 0.0]),
         np.array([-1.5, -1.0, 4.0, 0.0]),
         np.array([0.25, 3.0, -2.0, 1.0])]
THETA0 = np.array([1.0, -0.5, 0.0, 2.0])


def adam_by_hand(theta, grads, lr, beta1, beta2, epsilon):
    """Kingma & Ba (2015), Algorithm 1, literally; returns every iterate."""
    m, v, iterates = np.zeros_like(theta), np.zeros_like(theta), []
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        m_hat = m / (1.0 - beta1 ** t)
        v_hat = v / (1.0 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + epsilon)
        iterates.append(theta)
    return iterates


def quadratic_grad(theta):
    """Gradient of 0.5 * sum(a * (theta - c)^2): minimum at c, curvatures a."""
    a, c = np.array([1.0, 4.0, 0.25]), np.array([1.0, -2.0, 3.0])
    return a * (theta - c), c


# ------------------------------------------------------------------- Adam

@pytest.mark.parametrize("lr, beta1, beta2, epsilon", [
    (1e-3, 0.9, 0.999, 1e-8),  # the defaults
    (0.1, 0.8, 0.99, 0.1),  # a large epsilon exposes how it is bias-corrected
    (0.05, 0.0, 0.5, 1e-3),
])
def test_adam_first_three_steps_match_algorithm_1(lr, beta1, beta2, epsilon):
    params = {"w": THETA0.copy()}
    opt = Adam(lr=lr, beta1=beta1, beta2=beta2, epsilon=epsilon)
    expected = adam_by_hand(THETA0, GRADS, lr, beta1, beta2, epsilon)
    for g, theta in zip(GRADS, expected, strict=True):
        opt.step(params, {"w": g.copy()})
        np.testing.assert_allclose(params["w"], theta, **TOL)
    assert opt.t == 3


def test_adam_scalar_steps_written_out():
    # lr = 0.1, beta1 = 0.9, beta2 = 0.999, epsilon = 1 (large, so it matters).
    params = {"w": np.array([1.0])}
    opt = Adam(lr=0.1, epsilon=1.0)
    opt.step(params, {"w": np.array([3.0])})
    # m_hat = 3, v_hat = 9: w = 1 - 0.1 * 3 / (3 + 1)
    np.testing.assert_allclose(params["w"], [0.925], **TOL)
    opt.step(params, {"w": np.array([-1.0])})
    # m = 0.9 * 0.3 - 0.1 = 0.17, v = 0.999 * 0.009 + 0.001 = 0.009991
    m_hat, v_hat = 0.17 / (1 - 0.9 ** 2), 0.009991 / (1 - 0.999 ** 2)
    np.testing.assert_allclose(params["w"], [0.925 - 0.1 * m_hat / (math.sqrt(v_hat) + 1.0)],
                               **TOL)


def test_adam_first_step_moves_each_entry_by_about_lr():
    params = {"w": THETA0.copy()}
    Adam(lr=0.01).step(params, {"w": GRADS[0].copy()})
    moved = THETA0 - params["w"]
    # m_hat / sqrt(v_hat) = sign(g) on step 1 (up to epsilon); no move where g = 0.
    np.testing.assert_allclose(moved[:2], 0.01 * np.sign(GRADS[0][:2]), rtol=1e-6)
    np.testing.assert_allclose(moved[2], 0.01 * 1e-3 / (1e-3 + 1e-8), rtol=1e-9)
    assert moved[3] == 0.0


def test_adam_updates_every_key_in_place():
    rng = np.random.default_rng(0)
    params = {"enc0.W": rng.standard_normal((2, 3)), "enc0.b": np.zeros(3)}
    grads = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    before = {k: p.copy() for k, p in params.items()}
    arrays = dict(params)
    Adam(lr=0.1).step(params, grads)
    for k in params:
        assert params[k] is arrays[k]
        np.testing.assert_allclose(params[k], before[k] - 0.1 * np.sign(grads[k]), rtol=1e-6)


# -------------------------------------------------------------------- SGD

def test_sgd_three_steps_by_hand():
    params = {"w": THETA0.copy()}
    opt = SGD(lr=0.1)
    theta = THETA0.copy()
    for g in GRADS:
        opt.step(params, {"w": g.copy()})
        theta = theta - 0.1 * g
        np.testing.assert_allclose(params["w"], theta, **TOL)
    # w = THETA0 - 0.1 * (sum of the three gradients)
    np.testing.assert_allclose(params["w"], [1.075, -0.5, -0.2001, 1.9], **TOL)


def test_sgd_momentum_three_steps_by_hand():
    params = {"w": THETA0.copy()}
    opt = SGD(lr=0.1, momentum=0.9)
    theta, velocity = THETA0.copy(), np.zeros(4)
    for g in GRADS:
        opt.step(params, {"w": g.copy()})
        velocity = 0.9 * velocity + g
        theta = theta - 0.1 * velocity
        np.testing.assert_allclose(params["w"], theta, **TOL)
    # First entry: velocities 0.5, -1.05, -0.695, so w = 1 - 0.1 * (0.5 - 1.05 - 0.695).
    np.testing.assert_allclose(params["w"][0], 1.1245, **TOL)


# ------------------------------------------------------------ convergence

@pytest.mark.parametrize("make", [lambda: Adam(lr=0.05), lambda: SGD(lr=0.1),
                                  lambda: SGD(lr=0.05, momentum=0.9)],
                         ids=["adam", "sgd", "sgd-momentum"])
def test_converges_on_a_quadratic(make):
    opt, params = make(), {"w": np.zeros(3)}
    for _ in range(3000):
        g, c = quadratic_grad(params["w"])
        opt.step(params, {"w": g})
    np.testing.assert_allclose(params["w"], c, rtol=0, atol=1e-8)


# ------------------------------------------------------------------ dtype

@pytest.mark.parametrize("make", [lambda: Adam(lr=0.01), lambda: SGD(lr=0.01, momentum=0.5)],
                         ids=["adam", "sgd-momentum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_params_and_state_keep_their_dtype(make, dtype):
    rng = np.random.default_rng(0)
    opt = make()
    params = {"W": rng.standard_normal((3, 2)).astype(dtype), "b": np.zeros(2, dtype)}
    for _ in range(3):
        grads = {k: rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()}
        opt.step(params, grads)
    for p in params.values():
        assert p.dtype == dtype
        assert np.isfinite(p).all()
    moments = [a for key, a in opt.state_dict().items() if key != "t"]
    assert len(moments) == (4 if isinstance(opt, Adam) else 2)
    for a in moments:
        assert a.dtype == dtype


# ------------------------------------------------------------ state dicts

def run(opt, params, grads_list):
    for g in grads_list:
        opt.step(params, {"w": g.copy()})


def through_npz(state):
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("make", [
    lambda: Adam(lr=0.1, beta1=0.8, beta2=0.99),
    lambda: SGD(lr=0.1, momentum=0.9),
], ids=["adam", "sgd-momentum"])
def test_state_round_trip_continues_identically(make):
    rng = np.random.default_rng(0)
    more = [rng.standard_normal(4) for _ in range(3)]
    original, params = make(), {"w": THETA0.copy()}
    run(original, params, GRADS)
    resumed, params_resumed = make(), {"w": params["w"].copy()}
    resumed.load_state_dict(through_npz(original.state_dict()))
    run(original, params, more)
    run(resumed, params_resumed, more)
    np.testing.assert_array_equal(params_resumed["w"], params["w"])  # bit for bit
    assert resumed.t == original.t == 6


@pytest.mark.parametrize("make", [lambda: Adam(lr=0.1), lambda: SGD(lr=0.1, momentum=0.9)],
                         ids=["adam", "sgd-momentum"])
def test_state_dict_is_a_snapshot(make):
    opt, params = make(), {"w": THETA0.copy()}
    run(opt, params, GRADS[:1])
    state = opt.state_dict()
    saved = {k: np.array(v) for k, v in state.items()}
    run(opt, params, GRADS[1:])
    for k in saved:
        np.testing.assert_array_equal(state[k], saved[k])
    # Loading and stepping does not write back into the loaded dict either.
    other = make()
    other.load_state_dict(state)
    run(other, {"w": THETA0.copy()}, GRADS[1:])
    for k in saved:
        np.testing.assert_array_equal(state[k], saved[k])


# -------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=0.0), "lr"), (dict(lr=-1e-3), "lr"), (dict(lr=math.nan), "lr"),
    (dict(beta1=1.0), "beta1"), (dict(beta1=-0.1), "beta1"),
    (dict(beta2=1.5), "beta2"), (dict(epsilon=0.0), "epsilon"),
])
def test_adam_refuses_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        Adam(**kwargs)


@pytest.mark.parametrize("kwargs, name", [
    (dict(lr=0.0), "lr"), (dict(momentum=1.0), "momentum"), (dict(momentum=-0.5), "momentum"),
])
def test_sgd_refuses_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        SGD(**kwargs)


def test_hyperparameters_that_are_not_numbers_are_refused():
    with pytest.raises(TypeError, match="^lr:"):
        Adam(lr="0.1")
    with pytest.raises(TypeError, match="^momentum:"):
        SGD(momentum=None)


@pytest.mark.parametrize("make", [Adam, SGD])
def test_grads_that_do_not_match_params_are_refused(make):
    params = {"w": np.zeros(3), "b": np.zeros(2)}
    good = {"w": np.ones(3), "b": np.ones(2)}
    bad_grads = [
        {"w": np.ones(3)},  # missing key
        dict(good, extra=np.ones(1)),  # extra key
        dict(good, w=np.ones(4)),  # wrong shape
        dict(good, w=np.ones(3, dtype=np.float32)),  # float32 grad, float64 param
    ]
    for grads in bad_grads:
        with pytest.raises(ValueError, match="^grads"):
            make().step(params, grads)
    np.testing.assert_array_equal(params["w"], 0.0)  # nothing was updated

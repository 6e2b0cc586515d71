"""numpyvae.reference.hierarchical_vae: the two-stochastic-layer model's bounds and their
hand-written gradients, checked by central differences in float64."""

import itertools
import math

import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import norm

from numpyvae import HierarchicalVAE, testing
from numpyvae.gradcheck import check_gradients
from numpyvae.protocol import Model
from numpyvae.reference.activations import ACTIVATIONS
from numpyvae.reference.hierarchical_vae import (
    bound_loss_backward,
    bound_loss_forward,
    log_weights_backward,
    log_weights_forward,
    prior_log_weights,
    split_noise,
)

FD_TOL = dict(abs_tol=1e-9, rel_tol=1e-6)  # float64 and a smooth function
KINK_MARGIN = 1e-3  # no relu input this close to 0 (100 finite-difference steps)

# objective x k x (hidden, hidden2) x activation: every configuration of the model
CONFIGS = [("elbo", 1), ("elbo", 3), ("iwae", 1), ("iwae", 4)]
ARCHS = [((5, 4), (4, 3), "tanh"), ((), (), "tanh"), ((5,), (3,), "softplus"),
         ((5, 4), (4, 3), "relu")]


def _model(hidden=(5, 4), hidden2=(4, 3), activation="tanh", dtype="float64", seed=0):
    model = HierarchicalVAE(6, (3, 2), hidden=hidden, hidden2=hidden2, activation=activation,
                            dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for name in model.params:  # nonzero biases, so every term is exercised
        model.params[name] = model.params[name] + 0.1 * rng.standard_normal(
            model.params[name].shape).astype(dtype)
    return model, rng


def hidden_inputs(cache) -> np.ndarray:
    """Every hidden pre-activation of the four networks, flattened (a relu's
    cache is its input)."""
    found = [a.ravel() for net in ("q1", "q2", "p1", "dec") for _, _, a in cache[net][0]]
    return np.concatenate(found) if found else np.zeros(0)


def _setup(objective="iwae", k=3, hidden=(5, 4), hidden2=(4, 3), activation="tanh",
           dtype="float64", seed=0):
    """model, x (4, 6) and eps = [eps1 | eps2] (k, 4, 3 + 2); relu inputs off their kink."""
    for attempt in range(50):
        model, rng = _model(hidden, hidden2, activation, dtype, seed + 1000 * attempt)
        x = rng.random((4, 6)).astype(dtype)
        eps = rng.standard_normal((k, 4, 5)).astype(dtype)
        if activation != "relu":
            return model, x, eps
        a = hidden_inputs(log_weights_forward(model.params, x, eps, model.config)[2])
        if a.size == 0 or np.abs(a).min() > KINK_MARGIN:
            return model, x, eps
    raise AssertionError("no draw keeps every relu input off its kink")


def _check(model, x, eps, objective, grads, **tol):
    names = list(model.params)

    def loss(*arrays):
        return bound_loss_forward(dict(zip(names, arrays, strict=True)), x, eps, model.config, objective)[0]

    return check_gradients(loss, [model.params[n] for n in names], [grads[n] for n in names],
                           names=names, **tol)


def _check_log_weights(model, x, eps, dlog_w, grads):
    return testing.check_log_weights_gradients(model, x, eps, dlog_w, grads, **FD_TOL)


# every objective and k on every architecture with seed 0; the deepest again with seed 1
CASES = ([(*c, *a, 0) for a in ARCHS for c in CONFIGS] + [(*c, *ARCHS[0], 1) for c in CONFIGS])


@pytest.mark.parametrize("objective,k,hidden,hidden2,activation,seed", CASES)
def test_backward_matches_finite_differences(objective, k, hidden, hidden2, activation, seed):
    model, x, eps = _setup(objective, k, hidden, hidden2, activation, seed=seed)
    _, _, cache = bound_loss_forward(model.params, x, eps, model.config, objective)
    report = _check(model, x, eps, objective, bound_loss_backward(cache), **FD_TOL)
    assert report.passed, str(report)


DEPTH1, DEPTH2 = {0: (), 1: (5,), 2: (5, 4)}, {0: (), 1: (4,), 2: (4, 3)}
LOG_W_CASES = list(itertools.product(ACTIVATIONS, sorted(DEPTH1), sorted(DEPTH2), [1, 3]))


@pytest.mark.parametrize("activation,depth,depth2,k", LOG_W_CASES,
                         ids=[f"{a}-h{d}-h2{d2}-k{k}" for a, d, d2, k in LOG_W_CASES])
def test_log_weights_backward_matches_finite_differences(activation, depth, depth2, k):
    model, x, eps = _setup(k=k, hidden=DEPTH1[depth], hidden2=DEPTH2[depth2],
                           activation=activation, seed=depth + 3 * depth2)
    dlog_w = np.random.default_rng(5 + k).standard_normal((k, 4))  # a random upstream grad
    log_w, terms, cache = log_weights_forward(model.params, x, eps, model.config)
    assert log_w.shape == terms["log_lik"].shape == terms["log_ratio"].shape == (k, 4)
    grads = log_weights_backward(dlog_w, cache)
    assert list(grads) == list(model.params)
    report = _check_log_weights(model, x, eps, dlog_w, grads)
    assert report.passed, str(report)


def test_the_relu_cases_really_are_off_their_kinks():
    model, x, eps = _setup(k=3, hidden=(5, 4), hidden2=(4, 3), activation="relu")
    a = hidden_inputs(log_weights_forward(model.params, x, eps, model.config)[2])
    # q1 (n rows) and q2, p1, px (k n rows each), both widths of each
    assert a.size == 4 * (5 + 4) + 3 * 4 * (4 + 3 + 4 + 3 + 4 + 5)
    assert np.abs(a).min() > KINK_MARGIN and (a < 0).any() and (a > 0).any()


def test_a_planted_error_is_caught():
    model, x, eps = _setup()
    _, _, cache = bound_loss_forward(model.params, x, eps, model.config, "iwae")
    grads = bound_loss_backward(cache)
    assert _check(model, x, eps, "iwae", grads, **FD_TOL).passed
    planted = ["q1.mu.W", "q2.log_var.b", "p1.h0.b", "px.h1.W"]  # one array of each network
    for name in planted:
        grads[name] = grads[name] * 1.001  # a 0.1% error
    report = _check(model, x, eps, "iwae", grads, **FD_TOL)
    assert [c.name for c in report.inputs if not c.passed] == planted


@pytest.mark.parametrize("name", ["q1.log_var.W", "q2.mu.b", "p1.log_var.W", "out.b"])
def test_a_planted_error_in_log_weights_backward_is_caught(name):
    model, x, eps = _setup(k=3)
    dlog_w = np.random.default_rng(0).standard_normal((3, 4))
    grads = log_weights_backward(dlog_w, log_weights_forward(model.params, x, eps,
                                                             model.config)[2])
    grads[name] = grads[name] * 1.001
    report = _check_log_weights(model, x, eps, dlog_w, grads)
    assert [c.name for c in report.inputs if not c.passed] == [name]


def test_k_samples_are_k_one_sample_calls():
    model, x, eps = _setup(k=4)
    dlog_w = np.random.default_rng(1).standard_normal((4, 4))
    log_w, terms, cache = log_weights_forward(model.params, x, eps, model.config)
    grads = log_weights_backward(dlog_w, cache)
    summed = {name: 0.0 for name in grads}
    for i in range(4):
        one_w, one_terms, one_cache = log_weights_forward(model.params, x, eps[i:i + 1],
                                                          model.config)
        np.testing.assert_allclose(log_w[i], one_w[0], rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(terms["log_ratio"][i], one_terms["log_ratio"][0],
                                   rtol=1e-13, atol=1e-13)
        for name, g in log_weights_backward(dlog_w[i:i + 1], one_cache).items():
            summed[name] = summed[name] + g
    for name in grads:
        np.testing.assert_allclose(grads[name], summed[name], rtol=1e-11, atol=1e-13,
                                   err_msg=name)


def test_split_noise_is_eps1_then_eps2():
    model, _, eps = _setup(k=2)
    eps1, eps2 = split_noise(eps, model.config)
    assert eps1.shape == (2, 4, 3) and eps2.shape == (2, 4, 2)
    np.testing.assert_array_equal(np.concatenate([eps1, eps2], axis=-1), eps)


def _dense(params, name, h):
    return h @ params[f"{name}.W"] + params[f"{name}.b"]


def test_log_w_of_a_hand_built_case():
    """No hidden layers, identity activation: every density written out."""
    model, x, eps = _setup(k=1, hidden=(), hidden2=())
    eps1, eps2 = eps[..., :3], eps[..., 3:]
    p = model.params
    log_w, terms, _ = log_weights_forward(p, x, eps, model.config)
    mu1, lv1 = _dense(p, "q1.mu", x), _dense(p, "q1.log_var", x)
    z1 = mu1 + np.exp(0.5 * lv1) * eps1[0]
    mu2, lv2 = _dense(p, "q2.mu", z1), _dense(p, "q2.log_var", z1)
    z2 = mu2 + np.exp(0.5 * lv2) * eps2[0]
    mu_p, lv_p = _dense(p, "p1.mu", z2), _dense(p, "p1.log_var", z2)
    probs = expit(_dense(p, "out", z1))
    log_px = (x * np.log(probs) + (1 - x) * np.log1p(-probs)).sum(1)

    def log_n(z, mu, lv):
        return norm.logpdf(z, mu, np.exp(0.5 * lv)).sum(1)

    expected = (log_px + log_n(z1, mu_p, lv_p) + norm.logpdf(z2).sum(1)
                - log_n(z1, mu1, lv1) - log_n(z2, mu2, lv2))
    np.testing.assert_allclose(log_w[0], expected, rtol=1e-12)
    np.testing.assert_allclose(terms["log_lik"][0], log_px, rtol=1e-12)
    np.testing.assert_allclose(terms["log_ratio"][0], expected - log_px, rtol=1e-10)


def test_prior_log_weights_of_a_hand_built_case():
    """z2 = eps2 ~ r(z2), z1 = mu_p1(z2) + std_p1(z2) eps1 ~ p(z1|z2), log p(x|z1)."""
    model, x, eps = _setup(k=3, hidden=(), hidden2=())
    p = model.params
    z2 = eps[..., 3:]
    mu_p, lv_p = _dense(p, "p1.mu", z2), _dense(p, "p1.log_var", z2)
    z1 = mu_p + np.exp(0.5 * lv_p) * eps[..., :3]
    probs = expit(_dense(p, "out", z1))
    expected = (x * np.log(probs) + (1 - x) * np.log1p(-probs)).sum(-1)  # (k, n)
    log_w = prior_log_weights(p, x, eps, model.config)
    assert log_w.shape == (3, 4)
    np.testing.assert_allclose(log_w, expected, rtol=1e-12)
    moved = {**p, "q1.mu.b": p["q1.mu.b"] + 1.0}  # the encoders play no part
    np.testing.assert_array_equal(prior_log_weights(moved, x, eps, model.config), log_w)


def test_log_q_at_the_reparameterized_sample_is_the_noise_density():
    """log q(z1|x) = log N(eps1; 0, I) - 0.5 sum log_var1 at z1 = mu1 + std1 eps1."""
    model, x, eps = _setup(k=2)
    _, _, cache = log_weights_forward(model.params, x, eps, model.config)
    diff, inv_var = cache["log_q1"]
    np.testing.assert_allclose(diff * np.sqrt(inv_var), eps[..., :3], rtol=1e-10)
    diff, inv_var = cache["log_q2"]
    np.testing.assert_allclose(diff * np.sqrt(inv_var), eps[..., 3:], rtol=1e-10)


def test_iwae_is_above_the_elbo_of_the_same_samples():
    model, x, eps = _setup(k=8)
    loss_iwae, terms, cache = bound_loss_forward(model.params, x, eps, model.config, "iwae")
    loss_elbo = bound_loss_forward(model.params, x, eps, model.config, "elbo")[0]
    assert np.all(terms["iwae"] > terms["elbo"])  # unequal weights: Jensen is strict
    assert loss_iwae < loss_elbo
    np.testing.assert_allclose(terms["log_lik"] - terms["kl"], terms["elbo"], rtol=1e-12)
    log_w = log_weights_forward(model.params, x, eps, model.config)[0]
    np.testing.assert_allclose(terms["elbo"], log_w.mean(axis=0), rtol=1e-13)
    # with k = 1 the two objectives are one, gradients included
    one = [bound_loss_forward(model.params, x, eps[:1], model.config, o)
           for o in ("elbo", "iwae")]
    assert one[0][0] == pytest.approx(one[1][0], rel=1e-12)
    np.testing.assert_allclose(one[0][1]["elbo"], one[1][1]["iwae"], rtol=1e-13)
    g_elbo, g_iwae = bound_loss_backward(one[0][2]), bound_loss_backward(one[1][2])
    for name in g_elbo:
        np.testing.assert_allclose(g_iwae[name], g_elbo[name], rtol=1e-12, atol=1e-14)


def test_float32_runs_and_keeps_its_dtype():
    model, x, eps = _setup(dtype="float32")
    loss, terms, cache = bound_loss_forward(model.params, x, eps, model.config, "iwae")
    grads = bound_loss_backward(cache)
    assert math.isfinite(loss) and terms["iwae"].dtype == np.float32
    assert all(grads[n].dtype == np.float32 and grads[n].shape == p.shape
               for n, p in model.params.items())


def test_the_kernels_refuse_mixed_dtypes_and_bad_shapes():
    model, x, eps = _setup()
    with pytest.raises(TypeError, match="^eps:"):
        bound_loss_forward(model.params, x, eps.astype(np.float32), model.config)
    with pytest.raises(ValueError, match="^eps:"):
        bound_loss_forward(model.params, x, eps[..., :4], model.config)  # eps2 too short
    with pytest.raises(ValueError, match="^objective:"):
        bound_loss_forward(model.params, x, eps, model.config, "kl")


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_the_estimators_match_the_objective_on_the_same_noise(fast):
    from numpyvae.estimators import iwae_bound, naive_log_likelihood, sampled_elbo
    model, x, _ = _setup(k=1)
    eps = np.random.default_rng(9).standard_normal((6, 4, 5))  # sample-major, [eps1 | eps2]
    terms = bound_loss_forward(model.params, x, eps, model.config, "iwae")[1]
    prior = prior_log_weights(model.params, x, eps, model.config)
    for chunk, batch in itertools.product([6, 4, 1], [4, 3]):
        rng = np.random.default_rng(9)
        estimate = iwae_bound(model, x, 6, rng, chunk_size=chunk, batch_size=batch, fast=fast)
        np.testing.assert_allclose(estimate, terms["iwae"], rtol=1e-10)
        estimate = sampled_elbo(model, x, 6, np.random.default_rng(9), chunk_size=chunk,
                                batch_size=batch)
        np.testing.assert_allclose(estimate, terms["elbo"], rtol=1e-10)
        estimate = naive_log_likelihood(model, x, 6, np.random.default_rng(9),
                                        chunk_size=chunk, batch_size=batch, fast=fast)
        np.testing.assert_allclose(estimate, logsumexp(prior, axis=0) - math.log(6),
                                   rtol=1e-10)
        assert estimate.shape == (4,)


def test_active_units_per_layer_counts_varying_means():
    from numpyvae.evaluation import active_units_per_layer
    model, _, _ = _setup(k=1)
    x = np.random.default_rng(3).random((50, 6))
    model.params["q1.mu.W"][:, 0] = 0.0  # z1's unit 0 ignores x: E[z1_0|x] is constant
    model.params["q1.mu.W"][:, 1:] *= 20.0
    counts, variances = active_units_per_layer(model, x, rng=0)
    assert variances[0][0] == pytest.approx(0.0, abs=1e-20)
    assert counts[0] == 2 and 0 <= counts[1] <= 2


@pytest.mark.parametrize("objective,k", [("elbo", 1), ("iwae", 3)])
def test_fit_trains_the_two_layer_model_and_is_reproducible(objective, k):
    from numpyvae import Adam, fit
    x = (np.random.default_rng(0).random((40, 6)) < 0.3).astype(np.float32)
    # The trained bound on the whole set with 50 fixed samples: free of the
    # one-sample noise of train_loss, which on 40 examples can rise by chance.
    eps = np.random.default_rng(5).standard_normal((50, 40, 5)).astype(np.float32)
    runs = []
    for _ in range(2):
        model = HierarchicalVAE(6, (3, 2), hidden=(5,), hidden2=(4,), rng=1)
        before = bound_loss_forward(model.params, x, eps, model.config, objective)[0]
        history = fit(model, x, epochs=5, batch_size=10, optimizer=Adam(lr=1e-2),
                      objective=objective, k=k, binarize="dynamic", lr_schedule="iwae", rng=2)
        after = bound_loss_forward(model.params, x, eps, model.config, objective)[0]
        runs.append((history, model.params, before, after))
    history, params, before, after = runs[0]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(row["train_loss"]) for row in history)
    assert after < before - 0.05
    assert all(np.array_equal(params[n], runs[1][1][n]) for n in params)
    timeless = [[{k: v for k, v in row.items() if k != "seconds"} for row in run[0]]
                for run in runs]
    assert timeless[0] == timeless[1]


def test_the_trainer_refuses_a_kl_weight_for_the_two_layer_model():
    from numpyvae import Trainer
    with pytest.raises(ValueError, match="^beta:"):
        Trainer(HierarchicalVAE(6, (3, 2), hidden=(5,), hidden2=(4,)), beta=0.5)


def test_save_load_and_resume_round_trip(tmp_path):
    from numpyvae import Adam, Trainer, load, load_checkpoint, save
    from numpyvae.train import train, trainer_from_checkpoint
    x = (np.random.default_rng(0).random((30, 6)) < 0.4).astype(np.float32)

    def new_trainer():
        model = HierarchicalVAE(6, (3, 2), hidden=(5,), hidden2=(4,), rng=1)
        return Trainer(model, Adam(lr=1e-2), batch_size=10, rng=2, objective="iwae", k=2)

    straight = new_trainer()
    train(straight, x, 2)
    first = new_trainer()
    path = tmp_path / "run.npz"
    train(first, x, 1, checkpoint_path=path)
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt.model, HierarchicalVAE)
    assert ckpt.meta["config"]["model"] == "hierarchical"
    resumed = trainer_from_checkpoint(ckpt)
    train(resumed, x, 2)
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p)
    loaded = load(save(resumed.model, tmp_path / "model"))
    assert loaded.config == resumed.model.config
    np.testing.assert_array_equal(loaded.sample(3, rng=4), resumed.model.sample(3, rng=4))


def test_the_command_line_trains_resumes_and_evaluates_the_two_layer_model(tmp_path, capsys):
    import json

    from numpyvae.app.cli import main
    out = tmp_path / "run"
    flags = ["--data", "digits", "--latent-dims", "4,2", "--hidden", "8", "--hidden2", "3",
             "--activation", "tanh", "--objective", "iwae", "--k", "2", "--no-plots"]
    assert main(["train", *flags, "--epochs", "1", "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-plots"]) == 0
    assert main(["evaluate", str(out), "--k", "5", "--limit", "20"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["model"] == "hierarchical" and metrics["epochs"] == 2
    assert metrics["model"]["hidden2"] == [3]
    assert len(metrics["test_active_units_per_layer"]) == 2
    assert metrics["test_nll"] > 0
    assert main(["train", "--latent-dims", "4", "--out", str(tmp_path / "bad")]) == 2
    assert "--latent-dims" in capsys.readouterr().err


def test_gaussian_layer_backward_and_decoder_backward_match_finite_differences():
    from numpyvae.reference.hierarchical_vae import (
        decoder_backward,
        decoder_forward,
        gaussian_layer_backward,
        gaussian_layer_forward,
    )
    model, x, _ = _setup()
    rng = np.random.default_rng(7)
    h, z1 = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    dmu, dlog_var, dlogits = (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)),
                              rng.standard_normal((4, 6)))
    p1 = {n: v for n, v in model.params.items() if n.startswith("p1.")}
    px = {n: v for n, v in model.params.items() if n.startswith(("px.", "out."))}

    def layer(h, *arrays):
        mu, log_var, _ = gaussian_layer_forward(dict(zip(p1, arrays, strict=True)), h, "p1", 2, "tanh")
        return float(np.sum(dmu * mu) + np.sum(dlog_var * log_var))

    def decoder(z, *arrays):
        return float(np.sum(dlogits * decoder_forward(dict(zip(px, arrays, strict=True)), z,
                                                      model.config)[0]))

    grads: dict = {}
    cache = gaussian_layer_forward(model.params, h, "p1", 2, "tanh")[2]
    dh = gaussian_layer_backward(dmu, dlog_var, cache, "p1", "tanh", grads)
    dz1 = decoder_backward(dlogits, decoder_forward(model.params, z1, model.config)[1],
                           model.config, grads)
    for f, inputs, names, first in ((layer, p1, list(p1), dh), (decoder, px, list(px), dz1)):
        point = [h if f is layer else z1] + [inputs[n] for n in names]
        report = check_gradients(f, point, [first] + [grads[n] for n in names],
                           names=["input"] + names)
        assert report.passed, str(report)


def test_the_constructor_and_loss_and_grads_name_bad_arguments():
    with pytest.raises(ValueError, match="^latent_dims:"):
        HierarchicalVAE(6, (3,))
    with pytest.raises(ValueError, match="^likelihood:"):
        HierarchicalVAE(6, likelihood="gaussian")
    with pytest.raises(TypeError, match="^hidden2:"):
        HierarchicalVAE(6, hidden2=5)
    model, x, eps = _setup(k=1)
    loss, grads = model.loss_and_grads(x, eps[0])  # one sample: (n, d1 + d2) noise
    assert loss == bound_loss_forward(model.params, x, eps, model.config)[0]
    assert list(grads) == list(model.params)
    reference = bound_loss_backward(bound_loss_forward(model.params, x, eps, model.config)[2])
    for name in grads:
        np.testing.assert_array_equal(grads[name], reference[name])
    with pytest.raises(ValueError, match=r"^eps: expected shape \(n, 5\) or \(k, n, 5\)"):
        model.loss_and_grads(x, eps[..., :4])
    with pytest.raises(ValueError, match="^eps: expected 4 rows"):
        model.loss_and_grads(x, eps[:, :3])
    with pytest.raises(ValueError, match="^objective:"):
        model.loss_and_grads(x, eps, objective="kl")
    with pytest.raises(ValueError, match="^beta:"):
        model.loss_and_grads(x, eps, beta=0.5)
    bad = eps.copy()
    bad[0, 1, 4] = np.inf
    with pytest.raises(ValueError, match="^eps: expected finite values"):
        model.loss_and_grads(x, bad)
    with pytest.raises(TypeError, match="^eps:"):
        model.loss_and_grads(x, eps.tolist())
    x_bad = x.copy()
    x_bad[2, 3] = -0.5
    with pytest.raises(ValueError, match=r"^x: expected values in \[0, 1\]"):
        model.loss_and_grads(x_bad, eps)
    x_bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="^x: expected finite values"):
        model.loss_and_grads(x_bad, eps)
    with pytest.raises(ValueError, match=r"^x: expected shape \(n, 6\)"):
        model.loss_and_grads(x[:, :5], eps)


def test_the_model_follows_the_protocol_and_its_methods_are_the_functions():
    model, x, eps = _setup(k=3)
    assert isinstance(model, Model)
    assert model.config.noise_dim == 5 and model.config.latent_dim == 3
    noise = model.as_noise(eps[0].astype(np.float32))  # one sample becomes k = 1
    assert noise.shape == (1, 4, 5) and noise.dtype == np.float64
    log_w, terms, cache = model.log_weights(x, eps)
    np.testing.assert_array_equal(log_w, log_weights_forward(model.params, x, eps,
                                                             model.config)[0])
    dlog_w = np.ones((3, 4))
    grads = model.log_weights_backward(dlog_w, cache)
    reference = log_weights_backward(dlog_w, log_weights_forward(model.params, x, eps,
                                                                 model.config)[2])
    assert all(np.array_equal(grads[n], reference[n]) for n in grads)
    np.testing.assert_array_equal(model.prior_log_weights(x, eps),
                                  prior_log_weights(model.params, x, eps, model.config))
    loss, terms, grads = model.forward_backward(x, eps[0], 1.0, "elbo")  # (n, d) is k = 1
    assert loss == bound_loss_forward(model.params, x, eps[:1], model.config, "elbo")[0]
    model.check_density("anything")  # both posteriors are densities


def test_encode_is_the_first_layer_and_encode_layers_both():
    model, x, _ = _setup()
    mu1, log_var1 = model.encode(x)
    layers = model.encode_layers(x)
    assert len(layers) == 4
    np.testing.assert_array_equal(mu1, layers[0])
    np.testing.assert_array_equal(log_var1, layers[1])
    assert layers[2].shape == layers[3].shape == (4, 2)
    means = model.posterior_means(x, rng=0, n_samples=5)
    assert [m.shape for m in means] == [(4, 3), (4, 2)]
    np.testing.assert_array_equal(means[0], mu1)
    again = model.posterior_means(x, rng=0, n_samples=5)
    np.testing.assert_array_equal(means[1], again[1])  # reproducible from the seed


def test_the_protocol_script_runs_end_to_end_on_a_few_images(mnist_file, monkeypatch, tmp_path):
    import importlib.util
    import json
    from pathlib import Path
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "mnist_hierarchy.py"
    spec = importlib.util.spec_from_file_location("mnist_hierarchy", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("NUMPYVAE_DATA", str(mnist_file.parent))
    out = tmp_path / "h.json"
    assert module.main(["--tiny", "--no-torch", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["objective"], r["k"]) for r in result["rows"]] == [("elbo", 1), ("iwae", 5)]
    assert result["eval"] == {"k": 10, "n_test_images": 50,
                              "binarization": "static_binarize(x_test, 2)"}
    assert all(0 < r["test_nll"] < 800 and len(r["active_units"]) == 2 for r in result["rows"])

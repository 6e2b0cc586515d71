"""numpyvae.hierarchy: the two-stochastic-layer model's bounds and their
hand-written gradients, checked by central differences in float64."""

import itertools
import math

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import norm

from numpyvae import HierarchicalVAE
from numpyvae.gradcheck import check_gradients
from numpyvae.hierarchy import (log_weights_backward, log_weights_forward, loss_backward,
                                loss_forward)

# objective x k x (hidden, hidden2) x activation: every configuration of the model
CONFIGS = [("elbo", 1), ("elbo", 3), ("iwae", 1), ("iwae", 4)]
ARCHS = [((5, 4), (4, 3), "tanh"), ((), (), "tanh"), ((5,), (3,), "softplus")]


def _setup(objective="iwae", k=3, hidden=(5, 4), hidden2=(4, 3), activation="tanh",
           dtype="float64", seed=0):
    model = HierarchicalVAE(6, (3, 2), hidden=hidden, hidden2=hidden2, activation=activation,
                            dtype=dtype, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for name in model.params:  # nonzero biases, so every term is exercised
        model.params[name] = model.params[name] + 0.1 * rng.standard_normal(
            model.params[name].shape).astype(dtype)
    x = rng.random((4, 6)).astype(dtype)
    eps1 = rng.standard_normal((k, 4, 3)).astype(dtype)
    eps2 = rng.standard_normal((k, 4, 2)).astype(dtype)
    return model, x, eps1, eps2


def _check(model, x, eps1, eps2, objective, grads):
    names = list(model.params)

    def loss(*arrays):
        return loss_forward(dict(zip(names, arrays)), x, eps1, eps2, model.config,
                            objective)[0]

    return check_gradients(loss, [model.params[n] for n in names], [grads[n] for n in names],
                     names=names)


# every objective and k on every architecture with seed 0; the deepest again with seed 1
CASES = ([(*c, *a, 0) for a in ARCHS for c in CONFIGS] + [(*c, *ARCHS[0], 1) for c in CONFIGS])


@pytest.mark.parametrize("objective,k,hidden,hidden2,activation,seed", CASES)
def test_backward_matches_finite_differences(objective, k, hidden, hidden2, activation, seed):
    model, x, eps1, eps2 = _setup(objective, k, hidden, hidden2, activation, seed=seed)
    _, _, cache = loss_forward(model.params, x, eps1, eps2, model.config, objective)
    report = _check(model, x, eps1, eps2, objective, loss_backward(cache))
    assert report.passed, str(report)


def test_log_weights_backward_is_the_vjp_of_log_w():
    model, x, eps1, eps2 = _setup(k=2)
    dlog_w = np.random.default_rng(5).standard_normal((2, 4))
    _, _, cache = log_weights_forward(model.params, x, eps1, eps2, model.config)
    grads = log_weights_backward(dlog_w, cache)
    names = list(model.params)

    def f(*arrays):
        log_w = log_weights_forward(dict(zip(names, arrays)), x, eps1, eps2, model.config)[0]
        return float(np.sum(dlog_w * log_w))

    report = check_gradients(f, [model.params[n] for n in names], [grads[n] for n in names],
                       names=names)
    assert report.passed, str(report)


def test_a_planted_error_is_caught():
    model, x, eps1, eps2 = _setup()
    _, _, cache = loss_forward(model.params, x, eps1, eps2, model.config, "iwae")
    grads = loss_backward(cache)
    planted = ["q1.mu.W", "q2.log_var.b", "p1.h0.b"]  # one array of each latent network
    for name in planted:
        grads[name] = grads[name] * 1.001  # a 0.1% error
    report = _check(model, x, eps1, eps2, "iwae", grads)
    assert [c.name for c in report.inputs if not c.passed] == planted


def _dense(params, name, h):
    return h @ params[f"{name}.W"] + params[f"{name}.b"]


def test_log_w_of_a_hand_built_case():
    """No hidden layers, identity activation: every density written out."""
    model, x, eps1, eps2 = _setup(k=1, hidden=(), hidden2=())
    p = model.params
    log_w, terms, _ = log_weights_forward(p, x, eps1, eps2, model.config)
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


def test_log_q_at_the_reparameterized_sample_is_the_noise_density():
    """log q(z1|x) = log N(eps1; 0, I) - 0.5 sum log_var1 at z1 = mu1 + std1 eps1."""
    model, x, eps1, eps2 = _setup(k=1)
    _, _, cache = log_weights_forward(model.params, x, eps1, eps2, model.config)
    diff, inv_var = cache["log_q1"]
    np.testing.assert_allclose(diff * np.sqrt(inv_var), eps1[0], rtol=1e-10)


def test_iwae_is_above_the_elbo_of_the_same_samples():
    model, x, eps1, eps2 = _setup(k=8)
    loss_iwae, terms, cache = loss_forward(model.params, x, eps1, eps2, model.config, "iwae")
    loss_elbo = loss_forward(model.params, x, eps1, eps2, model.config, "elbo")[0]
    assert np.all(terms["iwae"] >= terms["elbo"] - 1e-12)
    assert loss_iwae <= loss_elbo
    np.testing.assert_allclose(terms["log_lik"] - terms["kl"], terms["elbo"], rtol=1e-12)
    # with k = 1 the two objectives are one
    one = [loss_forward(model.params, x, eps1[:1], eps2[:1], model.config, o)[0]
           for o in ("elbo", "iwae")]
    assert one[0] == pytest.approx(one[1], rel=1e-12)


def test_float32_runs_and_keeps_its_dtype():
    model, x, eps1, eps2 = _setup(dtype="float32")
    loss, terms, cache = loss_forward(model.params, x, eps1, eps2, model.config, "iwae")
    grads = loss_backward(cache)
    assert math.isfinite(loss) and terms["iwae"].dtype == np.float32
    assert all(grads[n].dtype == np.float32 and grads[n].shape == p.shape
               for n, p in model.params.items())


def test_mixed_dtypes_and_bad_shapes_name_the_argument():
    model, x, eps1, eps2 = _setup()
    with pytest.raises(TypeError, match="eps1"):
        loss_forward(model.params, x, eps1.astype(np.float32), eps2, model.config)
    with pytest.raises(ValueError, match="^eps2:"):
        loss_forward(model.params, x, eps1, eps2[:2], model.config)
    with pytest.raises(ValueError, match="^objective:"):
        loss_forward(model.params, x, eps1, eps2, model.config, "kl")


def test_the_estimator_matches_the_objective_on_the_same_noise():
    from numpyvae.estimators import hierarchical_iwae_bound
    model, x, _, _ = _setup(k=1)
    rng = np.random.default_rng(9)
    eps1, eps2 = rng.standard_normal((6, 4, 3)), rng.standard_normal((6, 4, 2))
    terms = loss_forward(model.params, x, eps1, eps2, model.config, "iwae")[1]
    for chunk, batch in itertools.product([6, 4], [4, 3]):
        estimate = hierarchical_iwae_bound(model, x, 6, np.random.default_rng(9),
                                           chunk_size=chunk, batch_size=batch)
        if chunk == 6:  # the stream draws eps1 then eps2 per chunk of samples
            np.testing.assert_allclose(estimate, terms["iwae"], rtol=1e-10)
        assert estimate.shape == (4,)


def test_active_units_per_layer_counts_varying_means():
    from numpyvae.evaluation import active_units_per_layer
    model, _, _, _ = _setup(k=1)
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
    runs = []
    for _ in range(2):
        model = HierarchicalVAE(6, (3, 2), hidden=(5,), hidden2=(4,), rng=1)
        history = fit(model, x, epochs=3, batch_size=10, optimizer=Adam(lr=1e-2),
                      objective=objective, k=k, binarize="dynamic", lr_schedule="iwae", rng=2)
        runs.append((history, model.params))
    history, params = runs[0]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(np.array_equal(params[n], runs[1][1][n]) for n in params)


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

    from numpyvae.cli import main
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
    from numpyvae.hierarchy import (decoder_backward, decoder_forward,
                                    gaussian_layer_backward, gaussian_layer_forward)
    model, x, _, _ = _setup()
    rng = np.random.default_rng(7)
    h, z1 = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    dmu, dlog_var, dlogits = (rng.standard_normal((4, 3)), rng.standard_normal((4, 3)),
                              rng.standard_normal((4, 6)))
    p1 = {n: v for n, v in model.params.items() if n.startswith("p1.")}
    px = {n: v for n, v in model.params.items() if n.startswith(("px.", "out."))}

    def layer(h, *arrays):
        mu, log_var, _ = gaussian_layer_forward(dict(zip(p1, arrays)), h, "p1", 2, "tanh")
        return float(np.sum(dmu * mu) + np.sum(dlog_var * log_var))

    def decoder(z, *arrays):
        return float(np.sum(dlogits * decoder_forward(dict(zip(px, arrays)), z,
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
    model, x, eps1, eps2 = _setup(k=1)
    loss, grads = model.loss_and_grads(x, eps1[0], eps2[0])  # one sample: (n, d) noise
    assert loss == loss_forward(model.params, x, eps1, eps2, model.config)[0]
    assert list(grads) == list(model.params)
    with pytest.raises(ValueError, match="^eps2:"):
        model.loss_and_grads(x, eps1, eps2[:, :2])
    with pytest.raises(ValueError, match="^objective:"):
        model.loss_and_grads(x, eps1, eps2, objective="kl")


def test_the_protocol_script_runs_end_to_end_on_a_few_images(mnist_file, monkeypatch, tmp_path):
    import importlib.util
    import json
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mnist_hierarchy.py"
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

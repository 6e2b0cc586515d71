"""Trainer options for the MNIST protocols: IWAE objective, dynamic and
static binarization, the IWAE learning-rate schedule, Adam's epsilon and
the output-bias initialisation."""

import json
from itertools import pairwise

import numpy as np
import pytest

import numpyvae
from numpyvae import VAE, Adam
from numpyvae.app.cli import main
from numpyvae.app.runs import binarized
from numpyvae.reference.optim import iwae_learning_rate
from numpyvae.train import Trainer, train, trainer_from_checkpoint


@pytest.fixture(scope="module")
def grey():
    x = np.random.default_rng(0).random((60, 6)).astype(np.float32)
    return x


def _trainer(**options):
    model = VAE(6, 2, hidden=(5,), rng=0, init="he")  # the scale these tests were tuned at
    return Trainer(model, Adam(1e-2, epsilon=1e-4), batch_size=20, rng=1, **options)


def test_dynamic_binarization_feeds_fresh_binary_batches(grey, monkeypatch):
    seen = []
    trainer = _trainer(binarize="dynamic")
    original = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda xb: (seen.append(xb.copy()),
                                                             original(xb))[1])
    train(trainer, grey, 2)
    batches = np.concatenate(seen)
    assert set(np.unique(batches)) == {0.0, 1.0}
    assert batches.dtype == np.float32
    # each pixel is on with probability equal to its grey level: 120 draws
    assert abs(batches.mean() - grey.mean()) < 0.05
    first, second = np.concatenate(seen[:3]), np.concatenate(seen[3:])
    assert not np.array_equal(np.sort(first, axis=0), np.sort(second, axis=0))


def test_iwae_training_resumes_bit_identically(tmp_path, grey):
    options = dict(objective="iwae", k=4, binarize="dynamic", lr_schedule="iwae")
    straight = _trainer(**options)
    train(straight, grey, 4)
    first = _trainer(**options)
    train(first, grey, 2, checkpoint_path=tmp_path / "c.npz")
    resumed = trainer_from_checkpoint(numpyvae.load_checkpoint(tmp_path / "c.npz"))
    assert (resumed.objective, resumed.k, resumed.binarize, resumed.lr_schedule) == \
        ("iwae", 4, "dynamic", "iwae")
    train(resumed, grey, 4)
    for name, value in straight.model.params.items():
        np.testing.assert_array_equal(value, resumed.model.params[name])
    assert resumed.optimizer.lr == straight.optimizer.lr


def test_iwae_training_improves_its_bound(grey):
    trainer = _trainer(objective="iwae", k=5)
    history = train(trainer, grey, 30)
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.5


def test_the_schedule_sets_the_learning_rate_per_epoch(grey):
    trainer = _trainer(lr_schedule="iwae")
    lrs = []
    original = trainer.run_epoch
    trainer.run_epoch = lambda x, on_step=None: (lrs.append(trainer.optimizer.lr),
                                                 original(x, on_step))[1]
    train(trainer, grey, 40)
    assert lrs == [iwae_learning_rate(e, 40, 1e-2) for e in range(40)]
    assert lrs[-1] == pytest.approx(1e-3)  # the last stage: lr * 10^(-7/7)
    assert all(a >= b for a, b in pairwise(lrs))


def test_the_full_schedule_is_the_papers():
    lrs = [iwae_learning_rate(e, 3280, 1e-3) for e in range(3280)]
    stages = [sum(1 for lr in lrs if lr == pytest.approx(1e-3 * 10 ** (-i / 7)))
              for i in range(8)]
    assert stages == [3 ** i for i in range(8)]


@pytest.mark.parametrize("options, pattern", [
    (dict(objective="vae"), "objective"),
    (dict(k=5), "k: the 'elbo' objective"),
    (dict(objective="iwae", k=0), "k"),
    (dict(binarize="static"), "binarize"),
    (dict(lr_schedule="cosine"), "lr_schedule"),
])
def test_bad_options_name_the_argument(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        _trainer(**options)


def test_iwae_has_no_kl_weight():
    with pytest.raises(ValueError, match="beta"):
        Trainer(VAE(6, 2, hidden=()), beta=2.0, objective="iwae", k=2)


def test_dynamic_binarization_needs_a_bernoulli_decoder():
    with pytest.raises(ValueError, match="bernoulli"):
        Trainer(VAE(6, 2, hidden=(), likelihood="gaussian"), binarize="dynamic")


def test_static_binarization_is_one_seeded_draw_per_split():
    x = np.random.default_rng(0).random((50, 6)).astype(np.float32)
    data = ((x, None), (x[:10], None))
    settings = {"binarize": "static", "seed": 3}
    (a, _), (a_test, _) = binarized(data, settings)
    (b, _), (b_test, _) = binarized(data, settings)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a_test, b_test)
    assert set(np.unique(a)) <= {0.0, 1.0} and not np.array_equal(a[:10], a_test)
    (c, _), (c_test, _) = binarized(data, {"binarize": "dynamic", "seed": 3})
    assert c is x and set(np.unique(c_test)) <= {0.0, 1.0}
    assert binarized(data, {"binarize": "none", "seed": 3}) is data


def test_output_bias_starts_at_the_mean_pixel():
    x = np.random.default_rng(0).random((40, 6)).astype(np.float32) * 0.5
    model = VAE(6, 2, hidden=(4,), rng=0)
    model.init_output_bias(x)
    expected = np.log(x.mean(0)) - np.log1p(-x.mean(0))
    np.testing.assert_allclose(model.params["out.b"], expected, rtol=1e-5)
    gaussian = VAE(6, 2, hidden=(), likelihood="gaussian", rng=0)
    gaussian.init_output_bias(x)
    np.testing.assert_allclose(gaussian.params["out.b"], x.mean(0), rtol=1e-6)


def test_cli_runs_the_iwae_protocol_and_evaluates_it(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["train", "--epochs", "3", "--hidden", "16", "--latent-dim", "3",
             "--activation", "tanh", "--batch-size", "64", "--binarize", "dynamic",
             "--objective", "iwae", "--k", "3", "--lr-schedule", "iwae",
             "--adam-epsilon", "1e-4", "--init-output-bias", "--no-plots", "--out", str(out)]
    assert main(flags) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["objective"], config["k"], config["binarize"]) == ("iwae", 3, "dynamic")
    assert config["adam_epsilon"] == 1e-4 and config["init_output_bias"] is True
    ckpt = numpyvae.load_checkpoint(out / "checkpoint.npz")
    assert ckpt.optimizer.epsilon == 1e-4 and ckpt.trainer_state["k"] == 3
    assert main(["evaluate", str(out), "--k", "5", "--limit", "40"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_n"] == 40


def test_lecun_init_draws_at_pytorchs_linear_scale():
    model = VAE(784, 20, hidden=(400,), init="lecun", rng=0)
    for name in ("enc0.W", "mu.W", "out.W"):
        W = model.params[name]
        limit = 1.0 / np.sqrt(W.shape[0])
        assert np.abs(W).max() <= limit
        assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert not model.params["out.b"].any()
    he = VAE(784, 20, hidden=(400,), rng=0, init="he")
    assert he.params["enc0.W"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)


@pytest.mark.parametrize("activation,same_as", [("relu", "lecun"), ("tanh", "he")])
def test_the_default_init_is_pytorchs_scale_for_relu_and_glorot_otherwise(activation,
                                                                          same_as):
    """init="auto", the default chosen in docs/results.md: the draws of
    "lecun" for a relu network and of "he" (Glorot there) for a tanh one."""
    default = VAE(784, 20, hidden=(400,), activation=activation, rng=0)
    other = VAE(784, 20, hidden=(400,), activation=activation, rng=0, init=same_as)
    for name, p in default.params.items():
        np.testing.assert_array_equal(p, other.params[name], err_msg=name)
    glorot = np.sqrt(2 / (784 + 400))
    assert default.params["enc0.W"].std() == pytest.approx(
        1 / np.sqrt(3 * 784) if activation == "relu" else glorot, rel=0.02)


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="init"):
        VAE(4, 2, init="xavier")


def test_fit_exposes_the_protocol_options(grey):
    model = VAE(6, 2, hidden=(5,), rng=0)
    history = numpyvae.fit(model, grey, epochs=2, batch_size=20, objective="iwae", k=3,
                           binarize="dynamic", lr_schedule="iwae", rng=1)
    assert len(history) == 2 and np.isfinite(history[-1]["train_loss"])

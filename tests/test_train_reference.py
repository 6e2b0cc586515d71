"""The reference loop one argument away: `Trainer(fast=False)` trains any
model through the readable equations (the model's loss and backward,
then `optim.Adam.step`), and several whole training steps of it equal
the fused step's (`fast=True`) to rounding."""

import itertools

import numpy as np
import pytest

from numpyvae import VAE, HierarchicalVAE
from numpyvae.fast import fused_step
from numpyvae.reference.optim import SGD, Adam
from numpyvae.train import Trainer, fit, train

CONFIGURATIONS = list(itertools.product(
    ("bernoulli", "gaussian"), ("diagonal", "fixed"), ("relu", "tanh"), ((), (6,), (6, 5)),
    (("elbo", 1, 1.7), ("iwae", 3, 1.0))))


def normwise(a, b) -> float:
    """||a - b|| / ||b||: how far apart two parameter arrays are."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def make_model(likelihood, posterior, activation, hidden, dtype="float64"):
    return VAE(7, 3, hidden=hidden, activation=activation, likelihood=likelihood,
               sigma=0.8 if likelihood == "gaussian" else None, posterior=posterior,
               delta=0.7 if posterior == "fixed" else None, dtype=dtype, rng=0)


def run(model, x, fast: bool, objective: str, k: int, beta: float, epochs: int = 3,
        batch_size: int = 16, optimizer=None):
    trainer = Trainer(model, optimizer or Adam(lr=3e-3), beta=beta, batch_size=batch_size,
                      rng=4, objective=objective, k=k, fast=fast)
    history = train(trainer, x, epochs)
    return trainer, history


@pytest.mark.parametrize("likelihood,posterior,activation,hidden,objective", CONFIGURATIONS)
def test_several_reference_steps_equal_the_fast_steps(likelihood, posterior, activation,
                                                      hidden, objective):
    # 48 examples in batches of 16: 9 steps of Adam over 3 epochs, the
    # parameters and moments carried from step to step. Both paths draw
    # the same data order and noise from the same generator; in float64
    # they differ in the order of roundings only (fused products, packed
    # Adam), a few units of 1e-16 per step, so 1e-10 normwise after nine
    # steps leaves room while a wrong term anywhere moves them by 1e-3.
    objective, k, beta = objective
    x = np.random.default_rng(1).random((48, 7))
    if likelihood == "bernoulli":
        x = (x < 0.5) * 1.0
    fast, reference = (make_model(likelihood, posterior, activation, hidden) for _ in range(2))
    t_fast, h_fast = run(fast, x, True, objective, k, beta)
    t_ref, h_ref = run(reference, x, False, objective, k, beta)
    for name in reference.params:
        assert normwise(fast.params[name], reference.params[name]) < 1e-10, name
        assert normwise(t_fast.optimizer.v[name], t_ref.optimizer.v[name]) < 1e-10, name
    for row_fast, row_ref in zip(h_fast, h_ref, strict=True):
        for key in ("train_loss", "train_elbo", "train_log_lik", "train_kl"):
            assert row_fast[key] == pytest.approx(row_ref[key], rel=1e-10, abs=1e-10)
    assert t_fast.rng.random() == t_ref.rng.random()  # the same draws, in the same order


def test_the_reference_path_never_calls_the_fused_step(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fused step ran")
    for name in ("forward_backward", "adam_step", "loss_forward", "iwae_loss_forward"):
        monkeypatch.setattr(fused_step, name, refuse)
    x = (np.random.default_rng(1).random((32, 7)) < 0.5) * 1.0
    for objective, k in (("elbo", 1), ("iwae", 4)):
        history = fit(make_model("bernoulli", "diagonal", "relu", (6,)), x, epochs=2,
                      batch_size=16, objective=objective, k=k, fast=False)
        assert len(history) == 2 and np.isfinite(history[-1]["train_elbo"])
    with pytest.raises(AssertionError, match="the fused step ran"):
        fit(make_model("bernoulli", "diagonal", "relu", (6,)), x, epochs=1, batch_size=16)


def test_a_large_step_in_two_halves_equals_the_reference():
    # 256 decoder rows: the fast step may run as two halves on two cores
    # (fused_step.SPLIT_ROWS); its sum of halves rounds differently from the
    # whole batch and still equals the reference to rounding.
    x = (np.random.default_rng(2).random((512, 7)) < 0.5) * 1.0
    fast, reference = (make_model("bernoulli", "diagonal", "tanh", (6,)) for _ in range(2))
    run(fast, x, True, "elbo", 1, 1.0, epochs=2, batch_size=256)
    run(reference, x, False, "elbo", 1, 1.0, epochs=2, batch_size=256)
    for name in reference.params:
        assert normwise(fast.params[name], reference.params[name]) < 1e-10, name


def test_float32_reference_steps_stay_near_the_fast_steps():
    # float32: the two paths round differently at u = 6e-8 per operation;
    # after six Adam steps at lr 1e-3 the parameters move by about 6e-3,
    # and their difference stays below 1e-5 of their size (a slip in a
    # term moves them by 1e-3 or more).
    x = ((np.random.default_rng(3).random((48, 7)) < 0.5) * 1.0).astype(np.float32)
    fast, reference = (make_model("bernoulli", "diagonal", "relu", (6,), "float32")
                       for _ in range(2))
    run(fast, x, True, "iwae", 3, 1.0, epochs=2, optimizer=Adam(lr=1e-3))
    run(reference, x, False, "iwae", 3, 1.0, epochs=2, optimizer=Adam(lr=1e-3))
    for name in reference.params:
        assert fast.params[name].dtype == np.float32
        assert normwise(fast.params[name], reference.params[name]) < 1e-5, name


@pytest.mark.parametrize("objective,k", [("elbo", 1), ("iwae", 3)])
def test_the_two_layer_model_trains_through_the_reference_either_way(objective, k):
    # No fused form for the two-layer model: fast=True runs the reference
    # too, the same bits.
    x = (np.random.default_rng(5).random((32, 7)) < 0.5) * 1.0
    models = [HierarchicalVAE(7, (3, 2), hidden=(6,), hidden2=(4,), dtype="float64", rng=0)
              for _ in range(2)]
    for model, fast in zip(models, (True, False), strict=True):
        fit(model, x, epochs=2, batch_size=16, objective=objective, k=k, fast=fast,
            optimizer=SGD(lr=0.05), rng=7)
    for name in models[0].params:
        np.testing.assert_array_equal(models[0].params[name], models[1].params[name])
    assert not np.array_equal(models[0].params["out.W"],
                              HierarchicalVAE(7, (3, 2), hidden=(6,), hidden2=(4,),
                                              dtype="float64", rng=0).params["out.W"])


def test_fast_is_a_recorded_setting_and_must_be_a_bool():
    model = make_model("bernoulli", "diagonal", "relu", ())
    assert Trainer(model, fast=False).settings()["fast"] is False
    with pytest.raises(TypeError, match="fast: expected True or False"):
        Trainer(model, fast="no")

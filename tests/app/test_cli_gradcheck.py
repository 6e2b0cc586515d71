"""`numpyvae gradcheck` (numpyvae/app/cli_gradcheck.py) and
`numpyvae.gradcheck.check_model`, for the one-layer VAE and
(``--latent-dims``) the two-layer model."""

import re

import numpy as np
import pytest

from numpyvae import VAE, HierarchicalVAE
from numpyvae.app import cli, cli_gradcheck, cli_parser
from numpyvae.app.cli import main
from numpyvae.app.cli_gradcheck import GRADCHECK_CONFIGS, TWO_LAYER_CONFIGS
from numpyvae.gradcheck import check_model, check_model_directional


def test_the_parser_and_the_gradcheck_verb_stay_importable_from_cli():
    assert cli.build_parser is cli_parser.build_parser
    assert (cli.run_gradcheck, cli.GRADCHECK_CONFIGS, cli.TWO_LAYER_CONFIGS) == (
        cli_gradcheck.run_gradcheck, GRADCHECK_CONFIGS, TWO_LAYER_CONFIGS)


def test_gradcheck_command_passes_and_prints_every_parameter(capsys):
    assert main(["gradcheck", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("loss=") == len(GRADCHECK_CONFIGS)
    for name in ("enc0.W", "enc1.b", "mu.W", "log_var.b", "dec1.W", "out.b"):
        assert name in out
    assert " NO " not in out
    assert "all gradients pass (0 failing arrays" in out


def test_float32_analytic_gradients_fail_the_float64_gate(capsys):
    assert main(["gradcheck", "--dtype", "float32"]) == 1
    assert "NO" in capsys.readouterr().out


def test_a_loose_threshold_lets_float32_pass(capsys):
    # float32 round-off gives normwise errors near 1e-7 .. 1e-6 on these sizes
    assert main(["gradcheck", "--dtype", "float32", "--threshold", "1e-3"]) in (0, 1)
    out = capsys.readouterr().out
    assert "failing arrays" in out


def test_bad_step_is_a_usage_error(capsys):
    assert main(["gradcheck", "--h", "0"]) == 2
    assert "--h" in capsys.readouterr().err


def test_check_model_catches_a_planted_error(monkeypatch):
    model = VAE(4, 2, hidden=(3,), activation="tanh", dtype="float64", rng=0)
    rng = np.random.default_rng(1)
    x, eps = rng.random((3, 4)), rng.standard_normal((3, 2))
    assert check_model(model, x, eps).passed
    original = model.loss_and_grads

    def wrong(x, eps, beta=1.0, objective="elbo"):
        loss, grads = original(x, eps, beta, objective)
        grads["dec0.W"] = grads["dec0.W"] * 1.001
        return loss, grads

    monkeypatch.setattr(model, "loss_and_grads", wrong)
    report = check_model(model, x, eps)
    assert not report.passed
    assert [c.name for c in report.inputs if not c.passed] == ["dec0.W"]


def test_check_model_refuses_float32_models():
    with pytest.raises(TypeError, match="float64"):
        check_model(VAE(3, 1, hidden=()), np.zeros((1, 3), np.float32),
                    np.zeros((1, 1), np.float32))


@pytest.mark.parametrize("size, hidden, configs", [("small", "hidden=[6, 5]", 8),
                                                   ("mnist", "hidden=[400]", 4)])
def test_directional_mode_checks_elbo_and_iwae_for_every_configuration(capsys, size,
                                                                       hidden, configs):
    # one direction keeps the MNIST size quick; tests/checks/test_directional.py does 3
    assert main(["gradcheck", "--directional", "--model-size", size, "--beta", "0.4",
                 "--directions", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count(", elbo, loss=") == out.count(", iwae, loss=") == configs
    assert hidden in out and " NO" not in out
    assert f"(0 failing checks over {2 * configs} configurations)" in out


def test_directions_flag_sets_the_rows_per_check(capsys):
    assert main(["gradcheck", "--directional", "--directions", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n4 ") == 16  # directions 0..4 in each of the 16 tables


def test_bugs_mode_prints_the_zoo_and_every_bug_is_caught(capsys):
    assert main(["gradcheck", "--bugs"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["bug", "what", "is"]
    assert "kl-half" in out and "adam-bias" in out and " NO" not in out


# ------------------------------------------------ two stochastic layers

def test_latent_dims_checks_the_two_layer_model_elbo_and_iwae(capsys):
    assert main(["gradcheck", "--latent-dims", "3,2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("two layers, latent_dims=[3, 2], ") == 2 * len(TWO_LAYER_CONFIGS)
    assert out.count(", elbo, loss=") == out.count(", iwae, loss=") == len(TWO_LAYER_CONFIGS)
    for name in ("q1.mu.W", "q2.log_var.b", "p1.mu.W", "px.h1.W", "out.b"):
        assert name in out
    assert " NO " not in out and "likelihood" not in out
    assert "all gradients pass (0 failing arrays over 4 configurations)" in out


@pytest.mark.parametrize("size, configs", [("small", 2), ("mnist", 1)])
def test_latent_dims_directional_at_either_size(capsys, size, configs):
    dims = "100,50" if size == "mnist" else "3,2"
    assert main(["gradcheck", "--directional", "--latent-dims", dims, "--model-size", size,
                 "--directions", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count(", elbo, loss=") == out.count(", iwae, loss=") == configs
    assert (size == "mnist") == ("hidden=[100, 100], hidden2=[50, 50]" in out)
    assert f"(0 failing checks over {2 * configs} configurations)" in out


def test_latent_dims_float32_fails_the_gate(capsys):
    assert main(["gradcheck", "--latent-dims", "3,2", "--dtype", "float32"]) == 1
    assert " NO " in capsys.readouterr().out


@pytest.mark.parametrize("flags, named", [(["--latent-dims", "3"], "--latent-dims"),
                                          (["--latent-dims", "3,0"], "--latent-dims"),
                                          (["--latent-dims", "3,2", "--beta", "0.5"],
                                           "beta: the two-layer model")])
def test_latent_dims_errors_exit_2_naming_the_argument(capsys, flags, named):
    assert main(["gradcheck", *flags]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def two_layer_model():
    return HierarchicalVAE(4, (3, 2), hidden=(5,), hidden2=(4,), activation="tanh",
                           dtype="float64", rng=0)


@pytest.mark.parametrize("objective, k", [("elbo", 1), ("elbo", 3), ("iwae", 3)])
def test_check_model_catches_a_planted_error_of_the_two_layer_model(monkeypatch,
                                                                    objective, k):
    model = two_layer_model()
    rng = np.random.default_rng(2)
    x, eps = rng.random((3, 4)), rng.standard_normal((k, 3, 5))
    assert check_model(model, x, eps, objective=objective).passed
    assert check_model_directional(model, x, eps, objective=objective).passed
    original = model.loss_and_grads

    def wrong(x, eps, beta=1.0, objective="elbo"):
        loss, grads = original(x, eps, beta, objective)
        grads["q2.mu.W"] = grads["q2.mu.W"] * 1.001
        return loss, grads

    monkeypatch.setattr(model, "loss_and_grads", wrong)
    report = check_model(model, x, eps, objective=objective)
    assert [c.name for c in report.inputs if not c.passed] == ["q2.mu.W"]
    assert not check_model_directional(model, x, eps, objective=objective).passed


def test_check_model_float32_analytic_copy_of_the_two_layer_model():
    model = two_layer_model()
    rng = np.random.default_rng(3)
    x, eps = rng.random((3, 4)), rng.standard_normal((3, 5))
    report = check_model(model, x, eps, analytic_dtype="float32")
    worst = max(c.normwise_error for c in report.inputs)
    assert 1e-9 < worst < 1e-3  # float32 round-off: visible, and nothing more


# ------------------------------------------------ flags that would be ignored

def normwise_errors(out):
    """The normwise column of every element-wise table row printed."""
    row = re.compile(r"^\S+ +\([\d, ]*\) +(\S+) +\S+ +(?:yes|NO) ", re.M)
    return [float(error) for error in row.findall(out)]


def test_threshold_tightens_the_gate_as_well_as_loosening_it(capsys):
    """--threshold t passes an array exactly when its normwise error is
    below t, whichever side of the built-in 1e-7 gate t lies."""
    assert main(["gradcheck", "--seed", "3"]) == 0
    errors = normwise_errors(capsys.readouterr().out)
    assert len(errors) >= 4 * len(GRADCHECK_CONFIGS)  # every array's row was read
    worst = max(errors)
    assert 0.0 < worst < 1e-7
    assert main(["gradcheck", "--seed", "3", "--threshold", f"{1.01 * worst:.6e}"]) == 0
    capsys.readouterr()
    assert main(["gradcheck", "--seed", "3", "--threshold", f"{0.99 * worst:.6e}"]) == 1
    out = capsys.readouterr().out
    assert " NO " in out and "NOT all gradients pass (1 failing arrays" in out
    assert main(["gradcheck", "--threshold", "1e-15"]) == 1
    capsys.readouterr()
    assert main(["gradcheck", "--dtype", "float32", "--threshold", "1e-3"]) == 0


def test_a_threshold_left_unset_is_the_built_in_gate(capsys):
    """The parser may give None for a flag not given (its default is then
    the checks' own): None means the built-in gate and step."""
    args = cli_parser.build_parser().parse_args(["gradcheck", "--seed", "3"])
    args.threshold = args.h = args.dtype = args.beta = None
    assert cli_gradcheck.run_gradcheck(args) == 0
    assert "all gradients pass (0 failing arrays over 8" in capsys.readouterr().out


@pytest.mark.parametrize("flags, named", [
    (["--model-size", "mnist"], "--model-size"),
    (["--directions", "5"], "--directions"),
    (["--bugs", "--h", "0"], "--h"),
    (["--bugs", "--h", "1e-3"], "--h"),
    (["--bugs", "--threshold", "1e-3"], "--threshold"),
    (["--bugs", "--dtype", "float32"], "--dtype"),
    (["--bugs", "--beta", "0.5"], "--beta"),
    (["--bugs", "--latent-dims", "3,2"], "--latent-dims"),
    (["--bugs", "--directional"], "--directional"),
    (["--directional", "--h", "1e-3"], "--h"),
    (["--directional", "--threshold", "1e-3"], "--threshold"),
    (["--directional", "--dtype", "float32"], "--dtype"),
    (["--h=-1e-5"], "--h"),
    (["--h", "inf"], "--h"),
    (["--h", "nan"], "--h"),
    (["--threshold", "0"], "--threshold"),
    (["--threshold", "inf"], "--threshold"),
])
def test_meaningless_or_conflicting_flags_exit_2_naming_them(capsys, flags, named):
    assert main(["gradcheck", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("numpyvae: error: ") and named in captured.err
    assert "Traceback" not in captured.err and captured.out == ""  # nothing ran

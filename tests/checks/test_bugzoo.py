"""Tests for numpyvae/checks/bugzoo.py: every planted bug is caught by the
element-wise and by the directional check, every clean kernel passes
both, Adam's copy matches Algorithm 1 (and numpyvae's Adam does), and
the table is what ``numpyvae gradcheck --bugs`` prints."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae import Adam
from numpyvae.app.cli import main
from numpyvae.checks.bugzoo import (
    BETA,
    BUGS,
    Bug,
    adam_algorithm1,
    adam_folded,
    beta_kl_backward,
    beta_kl_backward_forward_only,
    beta_kl_forward,
    dense_backward_db_wrong_axis,
    dense_backward_transposed_dw,
    format_table,
    gaussian_backward_mean_not_sum,
    gaussian_backward_sigma_not_squared,
    iwae_bound_backward,
    iwae_bound_backward_unnormalized,
    iwae_bound_backward_wrong_axis,
    iwae_bound_forward,
    judge,
    judge_adam,
    kl_backward_no_half,
    relu_backward_mask_from_output,
    reparameterize_backward_var_as_std,
    run_zoo,
    sigmoid_backward_s,
    tanh_backward_from_input,
)
from numpyvae.reference.likelihoods import gaussian_log_lik_backward, gaussian_log_lik_forward
from numpyvae.testing import assert_vjp_close

BUGGY_BACKWARDS = [  # each planted bug, named so that a reader finds its test
    kl_backward_no_half, dense_backward_transposed_dw, dense_backward_db_wrong_axis,
    gaussian_backward_mean_not_sum, gaussian_backward_sigma_not_squared,
    reparameterize_backward_var_as_std, relu_backward_mask_from_output,
    sigmoid_backward_s, tanh_backward_from_input, iwae_bound_backward_unnormalized,
    iwae_bound_backward_wrong_axis, beta_kl_backward_forward_only]


def test_the_zoo_holds_at_least_ten_bugs_each_with_its_own_backward():
    assert len(BUGS) >= 10 and len(BUGS) + 1 == len(run_zoo())  # and Adam's
    assert [bug.buggy for bug in BUGS] == BUGGY_BACKWARDS
    assert len({bug.name for bug in BUGS}) == len(BUGS)


@pytest.mark.parametrize("bug", BUGS, ids=[bug.name for bug in BUGS])
@given(seed=st.integers(0, 2**16))
def test_every_planted_bug_is_caught_by_both_checks(bug, seed):
    row = judge(bug, seed)
    assert row.clean_passed, f"{bug.name}: the clean kernel fails a check"
    assert row.elementwise_caught and row.elementwise > 1e-3, row
    assert row.directional_caught and row.directional > 1e-3, row
    assert row.caught


def test_adam_without_bias_correction_is_caught_against_algorithm_1():
    row = judge_adam()
    assert row.caught and row.clean_passed and row.directional is None
    assert row.elementwise > 1.0  # off by more than a whole step
    assert not judge_adam(bias_correction=True).elementwise_caught


def test_adam_first_step_moves_every_parameter_by_lr():
    # Algorithm 1 at t = 1: m_hat = g, v_hat = g^2, a step of lr sign(g).
    theta, g = np.array([1.0, -2.0, 0.5]), np.array([[3.0, -0.2, 0.05]])
    np.testing.assert_allclose(adam_algorithm1(theta, g, lr=0.01), theta - 0.01 * np.sign(g[0]),
                               rtol=1e-12, atol=1e-7)
    moved = theta - adam_folded(theta, g, lr=0.01, bias_correction=False)
    np.testing.assert_allclose(np.abs(moved), 0.01 * 0.1 / np.sqrt(0.001), rtol=1e-4)


def test_numpyvaes_adam_matches_algorithm_1():
    rng = np.random.default_rng(3)
    theta, grads = rng.standard_normal((2, 3)), rng.standard_normal((6, 2, 3))
    params = {"w": theta.copy()}
    opt = Adam(lr=0.01)
    for g in grads:
        opt.step(params, {"w": g})
    np.testing.assert_allclose(params["w"], adam_algorithm1(theta, grads, lr=0.01),
                               rtol=1e-12, atol=1e-14)


def test_sigma_for_sigma_squared_hides_at_sigma_1():
    # Why numpyvae checks away from defaults: at sigma = 1 the bug is exact.
    def setup(sigma):
        def make(rng):
            x = rng.standard_normal((3, 5))
            return (lambda r: gaussian_log_lik_forward(x, r, sigma),
                    [rng.standard_normal((3, 5))])
        return make

    for sigma, caught in ((1.0, False), (0.7, True), (1.3, True)):
        bug = Bug("sigma", "", setup(sigma), gaussian_log_lik_backward,
                  gaussian_backward_sigma_not_squared)
        row = judge(bug)
        assert row.elementwise_caught == caught and row.directional_caught == caught


def test_beta_forward_only_hides_at_beta_1():
    rng = np.random.default_rng(0)
    mu, log_var = rng.standard_normal((2, 3)), rng.uniform(-2, 2, (2, 3))
    forward = lambda m, lv: beta_kl_forward(m, lv, 1.0)  # noqa: E731
    assert_vjp_close(forward, [mu, log_var], beta_kl_backward_forward_only)
    forward = lambda m, lv: beta_kl_forward(m, lv, BETA)  # noqa: E731
    assert_vjp_close(forward, [mu, log_var], beta_kl_backward)
    with pytest.raises(AssertionError):
        assert_vjp_close(forward, [mu, log_var], beta_kl_backward_forward_only)


@given(k=st.integers(1, 6), n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_iwae_bound_kernel_gradient_and_known_value(k, n, seed):
    rng = np.random.default_rng(seed)
    log_w = rng.uniform(-30.0, 5.0, (k, n))
    assert_vjp_close(iwae_bound_forward, log_w, iwae_bound_backward, rng)
    same = np.repeat(log_w[:1], k, axis=0)  # k identical weights: L = log w
    np.testing.assert_allclose(iwae_bound_forward(same)[0], log_w[0], rtol=1e-13)
    weights = iwae_bound_backward(np.ones(n), iwae_bound_forward(log_w)[1])
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=1e-13)


def test_table_and_command(capsys):
    rows = run_zoo()
    table = format_table(rows)
    for row in rows:
        line = next(line for line in table.splitlines() if line.startswith(row.name + " "))
        assert line.split()[-1] == "yes" and line.split()[-2] == "pass"
    assert main(["gradcheck", "--bugs"]) == 0
    assert capsys.readouterr().out.strip() == table


def test_the_table_in_the_docs_is_the_commands_output():
    from pathlib import Path
    page = Path(__file__).resolve().parents[2] / "docs" / "gradient-checking.md"
    assert format_table(run_zoo()) in page.read_text()

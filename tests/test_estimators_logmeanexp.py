"""Tests for log_mean_exp in numpyvae/estimators.py: the naive formula
for moderate values, stability where the naive one under/overflows,
dtype preservation and the empty-input error."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numpyvae.estimators import log_mean_exp

TOL = dict(rtol=1e-6, atol=1e-9)  # float64 and a smooth function

batch = st.integers(1, 8)
features = st.integers(1, 16)
seeds = st.integers(0, 2**32 - 1)


@given(m=batch, d=features, seed=seeds)
def test_matches_the_naive_formula_for_moderate_values(m, d, seed):
    a = np.random.default_rng(seed).uniform(-30.0, 30.0, (m, d))
    np.testing.assert_allclose(log_mean_exp(a), np.log(np.mean(np.exp(a), axis=0)), **TOL)
    np.testing.assert_allclose(log_mean_exp(a, axis=1), np.log(np.mean(np.exp(a), axis=1)),
                               **TOL)


def test_integer_input_is_not_truncated():
    """log((e + e^3) / 2) = 2.31..., not the integer 2."""
    out = log_mean_exp([1, 3])
    assert out.dtype == np.float64
    assert float(out) == pytest.approx(math.log((math.e + math.e ** 3) / 2), rel=1e-15)
    assert float(log_mean_exp(np.array([True, False]))) == pytest.approx(
        math.log((math.e + 1) / 2), rel=1e-15)
    with pytest.raises(TypeError, match="a: expected real numbers"):
        log_mean_exp(np.array([1 + 1j]))


def test_known_values():
    np.testing.assert_allclose(log_mean_exp(np.array([0.0, math.log(3.0)])), math.log(2.0),
                               **TOL)
    assert log_mean_exp(np.array([2.5])) == 2.5  # one sample: the value itself


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_far_below_and_above_zero(dtype):
    # Naively exp(-1000) underflows to 0 and exp(1000) overflows (warnings are errors).
    a = np.full(5, -1000.0, dtype=dtype)
    assert log_mean_exp(a) == -1000.0
    a = np.array([-1000.0, -1001.0], dtype=dtype)
    np.testing.assert_allclose(log_mean_exp(a), -1000.0 + math.log((1 + math.exp(-1)) / 2),
                               rtol=1e-6)
    a = np.array([1000.0, 1000.0, 1000.0], dtype=dtype)
    np.testing.assert_allclose(log_mean_exp(a), 1000.0, rtol=1e-6)


@given(m=batch, d=features, seed=seeds, shift=st.floats(-1e4, 1e4))
def test_shifting_every_entry_shifts_the_result(m, d, seed, shift):
    a = np.random.default_rng(seed).uniform(-5.0, 5.0, (m, d))
    np.testing.assert_allclose(log_mean_exp(a + shift), log_mean_exp(a) + shift,
                               rtol=1e-6, atol=1e-9 * max(1.0, abs(shift)))


@given(m=batch, d=features, seed=seeds)
def test_lies_between_the_mean_and_the_max(m, d, seed):
    # Jensen: mean(a) <= log mean exp(a) <= max(a).
    a = np.random.default_rng(seed).uniform(-5.0, 5.0, (m, d))
    out = log_mean_exp(a)
    assert (a.mean(axis=0) <= out + 1e-12).all() and (out <= a.max(axis=0) + 1e-12).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    a = np.random.default_rng(0).standard_normal((4, 3)).astype(dtype)
    assert log_mean_exp(a).dtype == dtype
    assert log_mean_exp(a, axis=1).dtype == dtype
    assert log_mean_exp(a[:, 0]).dtype == dtype


def test_empty_input_raises():
    with pytest.raises(ValueError, match="^a:"):
        log_mean_exp(np.array([]))
    with pytest.raises(ValueError, match="^a:"):
        log_mean_exp(np.zeros((3, 0)), axis=1)

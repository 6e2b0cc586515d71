"""Tests of numpyvae/reference/measures.py: bits per dimension and the
IWAE paper's active-unit count."""

import math

import numpy as np
import pytest

from numpyvae.reference.measures import ACTIVE_THRESHOLD, bits_per_dim, count_active_units


def test_bits_per_dim_is_nats_over_pixels_and_log_2():
    assert bits_per_dim(784 * math.log(2.0), 784) == pytest.approx(1.0)
    assert bits_per_dim(86.76, 784) == pytest.approx(86.76 / 784 / math.log(2.0))


def test_a_unit_counts_when_its_mean_varies_more_than_the_threshold():
    spread = np.array([1.0, 2 * math.sqrt(ACTIVE_THRESHOLD), 0.5 * math.sqrt(ACTIVE_THRESHOLD), 0.0])
    means = np.array([[1.0], [-1.0]] * 50) * spread  # half +spread, half -spread: Var = spread^2
    count, variances = count_active_units(means)
    np.testing.assert_allclose(variances, spread ** 2)
    assert count == 2  # variances 1 and 4 * 0.01 pass; 0.25 * 0.01 and 0 do not


def test_the_variance_is_over_the_data_not_the_units():
    means = np.array([[0.0, 5.0], [0.0, 5.0]])  # unit 1 is far from 0 but never moves
    assert count_active_units(means)[0] == 0

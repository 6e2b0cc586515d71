"""Elementwise nonlinearities of the encoder and decoder networks.

Each activation is a pair: ``<name>_forward(a) -> (h, cache)`` and
``<name>_backward(dh, cache) -> da``, where ``dh = dloss/dh`` and the
backward multiplies it by the derivative h'(a) entry by entry. Output
dtype equals input dtype; constants are Python floats so float32 stays
float32.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "identity")


def relu_forward(a: Array) -> tuple[Array, Array]:
    """Rectified linear unit.

    Parameters
    ----------
    a : ndarray
        Pre-activations, any shape, float32 or float64.

    Returns
    -------
    h : ndarray, like `a`
    cache : ndarray
        `a` itself.

    Notes
    -----
    Forward:   h = max(a, 0)
    Backward:  da = dh * [a > 0]   (the subgradient 0 is used at a = 0)

    Examples
    --------
    >>> relu_forward(np.array([-1.0, 0.0, 2.0]))[0]
    array([0., 0., 2.])
    """
    return np.maximum(a, 0), a


def relu_backward(dh: Array, cache: Array) -> Array:
    """Gradient of `relu_forward`; relu'(0) is taken to be 0.

    Examples
    --------
    >>> relu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 1.])
    """
    a = cache
    return dh * (a > 0)


def tanh_forward(a: Array) -> tuple[Array, Array]:
    """Hyperbolic tangent.

    Notes
    -----
    Forward:   h = tanh(a)
    Backward:  da = dh * (1 - h^2)

    Examples
    --------
    >>> tanh_forward(np.array([0.0]))[0]
    array([0.])
    """
    h = np.tanh(a)
    return h, h


def tanh_backward(dh: Array, cache: Array) -> Array:
    """Gradient of `tanh_forward`, from the saved output h.

    Examples
    --------
    >>> h, cache = tanh_forward(np.array([0.0, 1.0]))
    >>> da = tanh_backward(np.ones(2), cache)
    >>> np.round(da, 6)  # 1 - tanh(a)^2
    array([1.      , 0.419974])
    """
    h = cache
    return dh * (1.0 - h * h)


def sigmoid(a: Array) -> Array:
    """Logistic function 1 / (1 + exp(-a)), without overflow.

    Uses sigmoid(a) = 0.5 * (1 + tanh(a / 2)): no exp of a large positive
    number is ever formed, so nothing overflows for any finite `a`. The
    absolute error stays near machine epsilon; far in the negative tail
    (a < -30 in float64) the tiny result loses relative precision and
    reaches exactly 0, which no gradient in numpyvae is sensitive to.

    Examples
    --------
    >>> sigmoid(np.array([0.0, 1e4, -1e4]))
    array([0.5, 1. , 0. ])
    """
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def sigmoid_forward(a: Array) -> tuple[Array, Array]:
    """Logistic sigmoid.

    Notes
    -----
    Forward:   h = 1 / (1 + exp(-a))
    Backward:  da = dh * h * (1 - h)

    Examples
    --------
    >>> sigmoid_forward(np.array([0.0]))[0]
    array([0.5])
    """
    h = sigmoid(a)
    return h, h


def sigmoid_backward(dh: Array, cache: Array) -> Array:
    """Gradient of `sigmoid_forward`, from the saved output h.

    Examples
    --------
    >>> _, cache = sigmoid_forward(np.array([0.0]))
    >>> sigmoid_backward(np.array([1.0]), cache)
    array([0.25])
    """
    h = cache
    return dh * h * (1.0 - h)


def softplus(a: Array) -> Array:
    """log(1 + exp(a)), stable for any finite `a`.

    Written as max(a, 0) + log1p(exp(-|a|)): the exponent is never
    positive, so nothing overflows.

    Examples
    --------
    >>> softplus(np.array([0.0, 1e4, -1e4]))
    array([6.93147181e-01, 1.00000000e+04, 0.00000000e+00])
    """
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def softplus_forward(a: Array) -> tuple[Array, Array]:
    """Softplus, the smooth relu.

    Notes
    -----
    Forward:   h = log(1 + exp(a))
    Backward:  da = dh * sigmoid(a)

    Examples
    --------
    >>> softplus_forward(np.array([0.0]))[0]  # log 2
    array([0.69314718])
    """
    return softplus(a), a


def softplus_backward(dh: Array, cache: Array) -> Array:
    """Gradient of `softplus_forward`: dh * sigmoid(a).

    Examples
    --------
    >>> _, cache = softplus_forward(np.array([0.0]))
    >>> softplus_backward(np.array([1.0]), cache)
    array([0.5])
    """
    a = cache
    return dh * sigmoid(a)


def identity_forward(a: Array) -> tuple[Array, None]:
    """No nonlinearity: h = a, da = dh. Gives linear encoders/decoders.

    Examples
    --------
    >>> identity_forward(np.array([1.0, -2.0]))
    (array([ 1., -2.]), None)
    """
    return a, None


def identity_backward(dh: Array, cache: None) -> Array:
    """Gradient of `identity_forward`: da = dh.

    Examples
    --------
    >>> identity_backward(np.array([3.0]), None)
    array([3.])
    """
    return dh


def activation_forward(name: str, a: Array):
    """Apply the activation called `name` (one of ACTIVATIONS).

    Examples
    --------
    >>> h, cache = activation_forward("relu", np.array([-1.0, 2.0]))
    >>> h
    array([0., 2.])
    """
    if name == "relu":
        return relu_forward(a)
    elif name == "tanh":
        return tanh_forward(a)
    elif name == "sigmoid":
        return sigmoid_forward(a)
    elif name == "softplus":
        return softplus_forward(a)
    elif name == "identity":
        return identity_forward(a)
    raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {name!r}")


def activation_backward(name: str, dh: Array, cache) -> Array:
    """Backward of the activation called `name`.

    Examples
    --------
    >>> from numpyvae.gradcheck import numerical_vjp
    >>> a = np.array([-1.0, 0.5, 2.0])
    >>> h, cache = activation_forward("softplus", a)
    >>> da = activation_backward("softplus", np.ones(3), cache)
    >>> np.allclose(da, numerical_vjp(softplus, a, np.ones(3)))
    True
    """
    if name == "relu":
        return relu_backward(dh, cache)
    elif name == "tanh":
        return tanh_backward(dh, cache)
    elif name == "sigmoid":
        return sigmoid_backward(dh, cache)
    elif name == "softplus":
        return softplus_backward(dh, cache)
    elif name == "identity":
        return identity_backward(dh, cache)
    raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {name!r}")

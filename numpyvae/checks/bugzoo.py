"""A zoo of classic backprop bugs, each planted in a copy of a kernel.

Every bug below is one line changed in a copy of a backward pass that
numpyvae gets right. `run_zoo` judges each buggy copy, and the clean
kernel beside it, with both checkers of `numpyvae.gradcheck`:

* element-wise: central differences of f = sum(dout * out) entry by
  entry (`check_gradients`), reported as the worst normwise relative error;
* directional: <v, J u> both ways along random u and v
  (`check_vjp_jvp`), reported as the worst relative error.

Adam's bias correction has no gradient to check: its copy is judged
against Algorithm 1 of Kingma and Ba (2015) written out literally.

The inputs are chosen where each bug shows: sigma, delta and beta away
from 1, log variances away from 0, relu inputs of both signs, a square
W for the transposed weight gradient, n = d_out for the bias summed
over the wrong axis. At sigma = 1 a sigma-for-sigma^2 bug is invisible
to any checker; that is why numpyvae's checks run away from defaults.
``numpyvae gradcheck --bugs`` prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..reference.activations import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from ..reference.kl import kl_backward, kl_forward
from ..reference.layers import dense_backward, dense_forward
from ..reference.likelihoods import gaussian_log_lik_backward, gaussian_log_lik_forward
from ..reference.sampling import reparameterize_backward, reparameterize_forward
from .directional import check_vjp_jvp
from .gradcheck import check_gradients

SIGMA, BETA = 0.7, 0.3  # away from 1, where some bugs vanish


# ---------------------------------------------------------------- bugs
# Each takes the cache of the real forward. The bug is on the marked line.

def kl_backward_no_half(dkl, cache):
    mu, var = cache
    dkl = dkl[:, None]
    return dkl * mu, dkl * (var - 1.0)  # BUG: 0.5 * (var - 1) lost its 0.5


def dense_backward_transposed_dw(dh, cache):
    x, W = cache
    return dh @ W.T, dh.T @ x, dh.sum(axis=0)  # BUG: dW = (x^T dh)^T


def dense_backward_db_wrong_axis(dh, cache):
    x, W = cache
    return dh @ W.T, x.T @ dh, dh.sum(axis=1)  # BUG: summed over outputs


def gaussian_backward_mean_not_sum(dlog_lik, cache):
    diff, sigma = cache
    d_x = diff.shape[1]
    return dlog_lik[:, None] * diff / (sigma * sigma) / d_x  # BUG: the loss sums


def gaussian_backward_sigma_not_squared(dlog_lik, cache):
    diff, sigma = cache
    return dlog_lik[:, None] * diff / sigma  # BUG: sigma for sigma^2


def reparameterize_backward_var_as_std(dz, cache):
    std, eps = cache
    return dz, dz * eps * (0.5 * std * std)  # BUG: exp(log_var), not std


def relu_backward_mask_from_output(dh, cache):
    h = np.maximum(cache, 0)  # the output, where the copy took its mask
    return dh * (h >= 0)  # BUG: h >= 0 is true everywhere


def sigmoid_backward_s(dh, cache):
    s = cache
    return dh * s  # BUG: s' = s (1 - s), not s


def tanh_backward_from_input(dh, cache):
    t = cache
    a = np.arctanh(t)  # the input, which the copy used instead of t
    return dh * (1.0 - a * a)  # BUG: 1 - a^2, not 1 - tanh(a)^2


# --------------------------------------------- the IWAE weighting step

def iwae_bound_forward(log_w):
    """L_k = log (1/k) sum_i w_i per column of log_w (k, n).

    Notes
    -----
    Forward:   L = logsumexp_i(log w_i) - log k
    Backward:  dlog w_i = dL * w~_i,   w~_i = w_i / sum_l w_l (over i)
    """
    top = log_w.max(axis=0)  # (n,)
    k = log_w.shape[0]
    bound = top + np.log(np.exp(log_w - top).sum(axis=0)) - np.log(float(k))
    return bound, log_w


def iwae_bound_backward(dbound, cache):
    """Gradient of `iwae_bound_forward`: the self-normalized weights."""
    w = np.exp(cache - cache.max(axis=0))  # (k, n), rescaled weights
    return dbound[None, :] * w / w.sum(axis=0)


def iwae_bound_backward_unnormalized(dbound, cache):
    return dbound[None, :] * np.exp(cache)  # BUG: w_i, not w_i / sum_l w_l


def iwae_bound_backward_wrong_axis(dbound, cache):
    w = np.exp(cache - cache.max(axis=1, keepdims=True))
    return dbound[None, :] * w / w.sum(axis=1, keepdims=True)  # BUG: over examples


# ------------------------------------------------------ beta-weighted KL

def beta_kl_forward(mu, log_var, beta):
    """beta * KL per example (the ELBO's weighted KL term)."""
    kl, cache = kl_forward(mu, log_var)
    return beta * kl, (cache, beta)


def beta_kl_backward(dout, cache):
    """Gradient of `beta_kl_forward`: beta times the KL's."""
    kl_cache, beta = cache
    return kl_backward(beta * dout, kl_cache)


def beta_kl_backward_forward_only(dout, cache):
    kl_cache, beta = cache
    return kl_backward(dout, kl_cache)  # BUG: beta applied in the forward only


# ---------------------------------------------------------------- Adam

def adam_algorithm1(theta, grads, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Parameters after Adam steps on `grads`, as Algorithm 1 writes them.

    Notes
    -----
    m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t);     v_hat = v / (1 - beta2^t)
    theta = theta - lr m_hat / (sqrt(v_hat) + epsilon)
    """
    theta, m, v = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + epsilon)
    return theta


def adam_folded(theta, grads, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                bias_correction=True):
    """The same steps with the corrections folded into lr and epsilon;
    ``bias_correction=False`` is the bug.

    This is the training step's form (`fused_step.adam_step`):
        lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)
        eps_t = epsilon sqrt(1 - beta2^t)
        theta = theta - lr_t m / (sqrt(v) + eps_t)
    `optim.Adam.step` writes Algorithm 1 as it stands, as
    `adam_algorithm1` does.
    """
    theta, m, v = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        c2 = np.sqrt(1 - beta2 ** t)
        lr_t, eps_t = lr * c2 / (1 - beta1 ** t), epsilon * c2
        if not bias_correction:
            lr_t, eps_t = lr, epsilon  # BUG: bias correction dropped
        theta = theta - lr_t * m / (np.sqrt(v) + eps_t)
    return theta


# ------------------------------------------------------------ the zoo

@dataclass(frozen=True)
class Bug:
    """One planted bug: the kernel, its clean and its buggy backward."""

    name: str
    wrong: str
    setup: Callable  # rng -> (forward, inputs)
    clean: Callable
    buggy: Callable


def _dense(rng, n, d_in, d_out):
    x, W, b = rng.standard_normal((n, d_in)), rng.standard_normal((d_in, d_out)), \
        rng.standard_normal(d_out)
    return dense_forward, [x, W / np.sqrt(d_in), b]


def _gaussian(rng):
    x = rng.standard_normal((3, 5))
    return (lambda recon: gaussian_log_lik_forward(x, recon, SIGMA),
            [rng.standard_normal((3, 5))])


def _reparameterize(rng):
    eps = rng.standard_normal((3, 4))
    return (lambda mu, lv: reparameterize_forward(mu, lv, eps),
            [rng.standard_normal((3, 4)), rng.uniform(-2.0, 2.0, (3, 4))])


def _relu(rng):  # both signs, every input at least 0.1 from the kink
    a = rng.uniform(0.1, 2.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))
    return relu_forward, [a]


BUGS = [
    Bug("kl-half", "KL dlog_var lost its factor 0.5",
        lambda rng: (kl_forward, [rng.standard_normal((3, 4)),
                                  rng.uniform(-2.0, 2.0, (3, 4))]),
        kl_backward, kl_backward_no_half),
    Bug("dense-dW-T", "dense dW transposed (square W)",
        lambda rng: _dense(rng, 3, 4, 4), dense_backward, dense_backward_transposed_dw),
    Bug("dense-db-axis", "dense db summed over outputs (n = d_out)",
        lambda rng: _dense(rng, 4, 3, 4), dense_backward, dense_backward_db_wrong_axis),
    Bug("mean-not-sum", "Gaussian gradient a mean over pixels",
        _gaussian, gaussian_log_lik_backward, gaussian_backward_mean_not_sum),
    Bug("sigma-not-sq", "Gaussian gradient divided by sigma (0.7)",
        _gaussian, gaussian_log_lik_backward, gaussian_backward_sigma_not_squared),
    Bug("var-as-std", "reparameterization uses variance as std",
        _reparameterize, reparameterize_backward, reparameterize_backward_var_as_std),
    Bug("relu-mask", "relu mask from the output with >=",
        _relu, relu_backward, relu_backward_mask_from_output),
    Bug("sigmoid-s", "sigmoid derivative written as s",
        lambda rng: (sigmoid_forward, [rng.uniform(-3.0, 3.0, (3, 4))]),
        sigmoid_backward, sigmoid_backward_s),
    Bug("tanh-input", "tanh derivative from the input: 1 - a^2",
        lambda rng: (tanh_forward, [rng.uniform(-2.0, 2.0, (3, 4))]),
        tanh_backward, tanh_backward_from_input),
    Bug("iwae-unnorm", "IWAE weights not normalized",
        lambda rng: (iwae_bound_forward, [rng.uniform(-3.0, 1.0, (4, 3))]),
        iwae_bound_backward, iwae_bound_backward_unnormalized),
    Bug("iwae-axis", "IWAE weights normalized over examples",
        lambda rng: (iwae_bound_forward, [rng.uniform(-3.0, 1.0, (4, 3))]),
        iwae_bound_backward, iwae_bound_backward_wrong_axis),
    Bug("beta-forward", "beta (0.3) in the forward only",
        lambda rng: (lambda mu, lv: beta_kl_forward(mu, lv, BETA),
                     [rng.standard_normal((3, 4)), rng.uniform(-2.0, 2.0, (3, 4))]),
        beta_kl_backward, beta_kl_backward_forward_only),
]


@dataclass
class ZooRow:
    """How the two checkers judged one bug and its clean kernel.

    Errors: element-wise, the worst normwise relative error over the
    inputs; directional, the worst relative error over the directions
    (None where a check does not apply). ``caught``: both checkers fail
    the bug and pass the clean kernel.
    """

    name: str
    wrong: str
    elementwise: float
    directional: float | None
    elementwise_caught: bool
    directional_caught: bool | None
    clean_passed: bool

    @property
    def caught(self) -> bool:
        return (self.elementwise_caught and self.directional_caught is not False
                and self.clean_passed)


def _elementwise(forward, inputs, backward, rng) -> tuple[float, bool]:
    """Worst normwise error of `backward`, and whether gradcheck passed."""
    out, cache = forward(*inputs)
    dout = rng.standard_normal(np.shape(out))
    grads = backward(dout, cache)
    grads = [grads] if isinstance(grads, np.ndarray) else list(grads)

    def f(*arrays):
        return float(np.sum(dout * forward(*arrays)[0]))

    report = check_gradients(f, inputs, grads)
    return max(c.normwise_error for c in report.inputs), report.passed


def judge(bug: Bug, seed: int = 0) -> ZooRow:
    """Run both checkers on `bug`'s buggy and clean backward."""
    forward, inputs = bug.setup(np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    clean_e, clean_e_ok = _elementwise(forward, inputs, bug.clean, rng)
    clean_d = check_vjp_jvp(forward, inputs, bug.clean, rng)
    bug_e, bug_e_ok = _elementwise(forward, inputs, bug.buggy, rng)
    bug_d = check_vjp_jvp(forward, inputs, bug.buggy, rng)
    return ZooRow(bug.name, bug.wrong, bug_e, bug_d.max_error, not bug_e_ok,
                  not bug_d.passed, clean_e_ok and clean_d.passed)


def judge_adam(seed: int = 0, bias_correction: bool = False) -> ZooRow:
    """Adam's copy against Algorithm 1 over 5 steps (no gradient involved).

    The error is max |theta_copy - theta_alg1| / lr: in units of one
    step, since Adam moves each parameter by about lr per step.
    """
    rng = np.random.default_rng(seed)
    theta, grads, lr = rng.standard_normal(6), rng.standard_normal((5, 6)), 1e-3
    reference = adam_algorithm1(theta, grads, lr)
    clean = float(np.abs(adam_folded(theta, grads, lr) - reference).max()) / lr
    error = float(np.abs(adam_folded(theta, grads, lr, bias_correction=bias_correction)
                         - reference).max()) / lr
    return ZooRow("adam-bias", "Adam bias correction dropped", error, None,
                  error > 1e-6, None, clean < 1e-6)


def run_zoo(seed: int = 0) -> list[ZooRow]:
    """Judge every planted bug; one row each, Adam's last.

    Examples
    --------
    >>> rows = run_zoo()
    >>> len(rows) >= 10, all(row.caught for row in rows)
    (True, True)
    """
    return [judge(bug, seed) for bug in BUGS] + [judge_adam(seed)]


def format_table(rows: list[ZooRow]) -> str:
    """The table ``numpyvae gradcheck --bugs`` prints."""
    def yes(flag):
        return "n/a" if flag is None else ("yes" if flag else "NO")

    lines = [f"{'bug':<14} {'what is wrong':<42} {'elementwise':>11} {'directional':>11} "
             f"{'clean':>5} {'caught':>6}"]
    for r in rows:
        directional = "n/a" if r.directional is None else f"{r.directional:.1e}"
        lines.append(f"{r.name:<14} {r.wrong:<42} {r.elementwise:11.1e} {directional:>11} "
                     f"{'pass' if r.clean_passed else 'FAIL':>5} {yes(r.caught):>6}")
    lines.append("elementwise: worst normwise relative error of the buggy gradient, "
                 "gate 1e-7")
    lines.append("  (adam-bias: max |theta - Algorithm 1| after 5 steps, in units of lr)")
    lines.append("directional: worst relative error of <v, J u> against "
                 "<backward(v), u>, gate 1e-8")
    lines.append("clean: both checks pass the correct kernel")
    return "\n".join(lines)

"""The sampled estimators made fast: the same log-weights, fewer passes.

`log_mean_weight` equals `estimators.log_mean_weight(..., fast=False)`,
the reference streaming loop over `model.log_weights_forward` that
`iwae_bound` and `naive_log_likelihood` are defined by: same model, same
x, same noise stream, same result to rounding (tests/fast/test_fused_eval.py
holds them equal for every configuration and dtype). It handles the
one-layer model (`supports`). Read the reference first (estimators.py,
model.py); this module is the same sum rearranged for speed. For one example x and
one sample z the log-weight is

    log w = log p(x|z) + log r(z) - log q(z|x)      ("posterior")
    log w = log p(x|z)                              ("prior": z ~ r)

and the estimate is log (1/k) sum_i w_i, a running log-sum-exp per
example. What changes (measurements in docs/performance.md):

* the encoder runs once per example, not once per chunk of samples;
* every layer's input carries a trailing column of ones, so the layer
  a = h W + b is one product with the stacked matrix [W; b], and no pass
  adds the bias;
* Bernoulli: log p(x|z) = sum_j x_j l_j - sum_j softplus(l_j). With
  l = h_aug W_aug the first sum is h_aug . (W_aug x): a product with a
  vector per example, so x is never copied per sample; the second is
  sum_j log1p(exp(l_j)), two passes. A row whose exp overflows (a logit
  above about 88 in float32) is redone by the model's reference
  log-weights;
* the decoder works on blocks of about `BLOCK_ROWS` rows (samples x
  examples), small enough that its arrays stay near the core's cache;
* the noise is drawn in the reference's order, (chunk, n, d_z) sample-
  major, so the stream, and the result up to rounding, is the same;
* with threadpoolctl installed (``pip install numpyvae[threads]``; it
  comes with scikit-learn), two cores or more, and BLAS allowed two
  threads (`threads.two_cores`), two threads share the
  blocks of images, each taking the next block when it is free, with
  BLAS pinned to one thread for the duration of the call: the
  elementwise passes then run on both cores too, and the calling thread
  draws the next chunk of noise while the other scores. Each image's
  blocks are still summed in the same order, so the result is the same
  to the bit.

Memory: a chunk of noise holds at most `NOISE_VALUES` normals and an
eighth of `estimators.MEMORY_BUDGET` (two chunks are alive at a time:
this one and the next); the blocks take a few MiB.
"""

from __future__ import annotations

import copy
import math
import threading

import numpy as np
from numpy.typing import NDArray

from ..reference.activations import ACTIVATIONS
from ..reference.kl import log_ratio_forward
from ..reference.vae import VAEConfig, encoder_forward, posterior_log_var
from . import threads

Array = NDArray[np.floating]

SHIFT = 10.0  # softplus(l) = SHIFT + log(e^-SHIFT + e^(l - SHIFT)): see _sum_softplus
BLOCK_ROWS = 1024  # decoder rows per block: its largest array, 784 wide, is 3 MiB in float32
PARALLEL_ROWS = 100_000  # samples x images below which one thread does it all
NOISE_VALUES = 2**20  # normals per chunk of noise: drawn in about 20 ms, 4 MiB in float32


def supports(config) -> bool:
    """Whether this module has a fast form of the model of `config`: the
    one-layer VAE's (the two-layer model runs the reference).

    Examples
    --------
    >>> supports(VAEConfig(784, 20))
    True
    """
    return isinstance(config, VAEConfig)


def block_plan(config: VAEConfig, n: int, k: int, budget: int,
               chunk_size: int | None = None,
               batch_size: int | None = None) -> tuple[int, int]:
    """``(chunk_size, batch_size)``: samples per noise draw, and examples
    per decoder block.

    A chunk of noise holds about `NOISE_VALUES` normals (at least one
    sample) and fits an eighth of `budget`; a block is about
    `BLOCK_ROWS` rows. Given sizes are kept
    (capped at k and n); a chunk of samples larger than a block is cut
    into blocks of samples.

    Examples
    --------
    >>> block_plan(VAEConfig(784, 20, hidden=(400,)), n=10_000, k=5000, budget=2**28)
    (5, 204)
    """
    itemsize = np.dtype(config.dtype).itemsize
    if chunk_size is None:
        per_sample = n * config.latent_dim
        eps_cap = (budget // 8) // (itemsize * per_sample)
        chunk_size = max(1, min(eps_cap, NOISE_VALUES // per_sample))
    chunk_size = min(chunk_size, k)
    if batch_size is None:
        batch_size = max(1, block_rows(config, budget) // chunk_size)
    return chunk_size, min(batch_size, n)


def block_rows(config: VAEConfig, budget: int) -> int:
    """Rows per decoder block (and per encoder pass): `BLOCK_ROWS`, or
    fewer if a block's arrays would pass half of `budget`.

    One row costs at most ``itemsize * (2 d_x + 3 sum(hidden) + 6 d_z)``
    bytes plus 48 for its float64 scalars: the output and the sums over
    it, each hidden layer's input, output and a temporary, and z, eps and
    the float64 sums over them.

    Examples
    --------
    >>> block_rows(VAEConfig(784, 20, hidden=(400,)), budget=2**28)
    1024
    >>> block_rows(VAEConfig(784, 20, hidden=(400,)), budget=2**22)
    180
    """
    itemsize = np.dtype(config.dtype).itemsize
    row_bytes = itemsize * (2 * config.input_dim + 3 * sum(config.hidden)
                            + 6 * config.latent_dim) + 48
    return max(1, min(BLOCK_ROWS, (budget // 2) // row_bytes))


def log_mean_weight(model, x: Array, k: int, rng: np.random.Generator, proposal: str,
                    budget: int, chunk_size: int | None = None,
                    batch_size: int | None = None) -> Array:
    """log (1/k) sum_i w_i per example, as `estimators.log_mean_weight`.

    Parameters
    ----------
    model : VAE
    x : ndarray, shape (n, d_x)
        Already validated and in the model's dtype.
    k : int
        Samples per example.
    rng : numpy.random.Generator
        Drawn from in chunks of (chunk, n, d_z), sample-major: the
        reference's stream, whatever the chunk and block sizes.
    proposal : {"posterior", "prior"}
    budget : int
        Bytes; see `block_plan`.
    chunk_size, batch_size : int, optional
        As in `block_plan`.

    A block whose fast log-weights are not all finite is redone by the
    model's reference (`model.log_weights`, `model.prior_log_weights`).

    Returns
    -------
    ndarray, shape (n,), in the model's dtype (the sums are float64).
    """
    config = model.config
    n, d_z = x.shape[0], config.latent_dim
    chunk, batch = block_plan(config, n, k, budget, chunk_size, batch_size)
    rows = block_rows(config, budget)
    mu, std, log_var = _encode(model.params, x, config, proposal, rows)
    blocks = [(lo, min(lo + batch, n)) for lo in range(0, n, batch)]
    workers = worker_threads(len(blocks), n * k)
    decoders = [_Decoder(model.params, config, x)]
    decoders += [decoders[0].sibling() for _ in range(1, workers)]
    total = np.full(n, -np.inf)  # running log sum_i w_i, float64

    def score(worker: int, eps: Array, todo) -> None:
        """Blocks of images taken from `todo` until none is left, all
        samples of this chunk for each."""
        for lo, hi in todo:
            step = max(1, rows // (hi - lo))  # samples per block
            for s0 in range(0, eps.shape[0], step):
                e = eps[s0:s0 + step, lo:hi]  # (s, b, d_z)
                log_w = _block(decoders[worker], e, lo, hi, mu, std, log_var)  # (b, s)
                if not np.isfinite(log_w).all():  # an overflow: the reference redoes it
                    redo = (model.prior_log_weights(x[lo:hi], e) if proposal == "prior"
                            else model.log_weights(x[lo:hi], e)[0])
                    log_w = redo.T.astype(np.float64)
                total[lo:hi] = np.logaddexp(total[lo:hi], _log_sum_exp_rows(log_w))

    def draw(start: int) -> Array | None:
        """The chunk of noise that starts at sample `start`, in the
        reference's order; None past k."""
        if start >= k:
            return None
        return rng.standard_normal((min(chunk, k - start), n, d_z), dtype=model.dtype)

    with threads.one_blas_thread(workers > 1):
        eps = draw(0)
        for start in range(0, k, chunk):
            assert eps is not None  # drawn for every start < k
            todo = _SharedIterator(blocks)
            other = threads.helper().submit(score, 1, eps, todo) if workers > 1 else None
            eps_next = draw(start + chunk)  # while the helper scores this chunk
            score(0, eps, todo)
            if other is not None:
                other.result()
            eps = eps_next
    return (total - math.log(k)).astype(model.dtype)


class _SharedIterator:
    """The blocks of one chunk, handed out one at a time to whichever
    worker asks first. Each image is in one block, scored by one worker,
    and the chunks run one after the other, so every image's running sum
    sees its samples in the same order whoever scores them: the same
    bits with one worker or two."""

    def __init__(self, items):
        self._items = iter(items)
        self._lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        with self._lock:
            return next(self._items)


def worker_threads(n_blocks: int, n_rows: int) -> int:
    """Threads for one call: 2 when the work is large enough
    (`PARALLEL_ROWS`) and a second core can take half of it
    (`threads.two_cores`: two cores, threadpoolctl installed, BLAS
    allowed two threads), else 1."""
    if n_blocks < 2 or n_rows < PARALLEL_ROWS:
        return 1
    return 2 if threads.two_cores() else 1


def _encode(params, x: Array, config: VAEConfig, proposal: str, rows: int):
    """mu, std and log_var (n, d_z) of q(z|x), by passes of `rows`
    examples; None for the prior proposal (z = eps)."""
    n, d_z = x.shape[0], config.latent_dim
    if proposal == "prior":
        return None, None, None
    mu = np.empty((n, d_z), x.dtype)
    log_var = np.empty((n, d_z), x.dtype)
    for lo in range(0, n, rows):
        m, lv, _ = encoder_forward(params, x[lo:lo + rows], config)
        mu[lo:lo + rows] = m
        log_var[lo:lo + rows] = posterior_log_var(m, lv, config)
    return mu, np.exp(0.5 * log_var), log_var


class _Decoder:
    """The decoder's stacked matrices, and the per-example vectors of the
    Bernoulli cross term, for one call.

    Layer i's input buffer is (rows, width + 1): the previous layer's
    output and a last column of ones, so h_aug [W; b] = h W + b. The
    activation runs over the whole buffer (one contiguous pass, twice as
    fast as over the strided view without the column) and the column is
    set back to 1 after it.
    """

    def __init__(self, params, config: VAEConfig, x: Array):
        names = [f"dec{i}" for i in range(len(config.hidden))] + ["out"]
        self.config = config
        self.x = x
        self.W = [np.vstack([params[f"{name}.W"], params[f"{name}.b"][None, :]])
                  for name in names]  # (d_in + 1, d_out) each
        self.widths = [W.shape[0] - 1 for W in self.W]  # each layer's input width
        self.buffers: dict = {}  # "rows" and the arrays of that many rows
        if config.likelihood == "bernoulli":
            # The output layer computes l - SHIFT (see _sum_softplus): its
            # bias row less SHIFT. Then sum_j x_j l_j
            #   = h_aug . (W_aug x) + SHIFT sum_j x_j,
            # one vector per example, (n, d_h + 1), and a number.
            self.W[-1][-1] -= SHIFT
            self.Wx = x @ self.W[-1].T
            self.x_sum = SHIFT * x.sum(axis=1, dtype=np.float64)
            self.groups = next(g for g in (8, 4, 2, 1) if config.input_dim % g == 0)
        else:
            sigma = config.gaussian_sigma
            self.scale = -0.5 / (sigma * sigma)
            self.const = -0.5 * config.input_dim * math.log(2.0 * math.pi * sigma * sigma)

    def sibling(self) -> "_Decoder":
        """A decoder for another thread: this one's matrices and
        per-example vectors (read only, shared), buffers of its own."""
        other = copy.copy(self)
        other.buffers = {}
        return other

    def inputs(self, rows: int) -> list[Array]:
        """Each layer's input buffer (rows, width + 1), last column 1."""
        if self.buffers.get("rows", 0) < rows:
            dtype = self.x.dtype
            self.buffers = {"rows": rows,
                            "h": [np.ones((rows, w + 1), dtype) for w in self.widths],
                            "out": np.empty((rows, self.config.input_dim), dtype),
                            "sums": np.empty(rows, dtype)}
        return self.buffers["h"]

    def log_lik(self, b: int, s: int, lo: int, hi: int) -> Array:
        """log p(x|z) (b, s) for the rows in the first buffer, z written
        example-major: row = example * s + sample; float64."""
        rows = b * s
        h = self.inputs(rows)
        for i, W in enumerate(self.W[:-1]):
            h_next = h[i + 1][:rows]
            np.matmul(h[i][:rows], W, out=h_next[:, :-1])
            _activate(self.config.activation, h_next)  # the column too: f(1)
            h_next[:, -1] = 1.0
        h_last = h[-1][:rows]
        out = self.buffers["out"][:rows]
        if self.config.likelihood == "bernoulli":
            np.matmul(h_last, self.W[-1], out=out)  # l - SHIFT
            h3 = h_last.reshape(b, s, -1)
            sum_xl = np.matmul(h3, self.Wx[lo:hi, :, None])[..., 0] + self.x_sum[lo:hi, None]
            sum_softplus = _sum_softplus(out, self.groups)
            return sum_xl - sum_softplus.reshape(b, s)  # -inf where a product overflowed
        np.matmul(h_last, self.W[-1], out=out)
        diff = out.reshape(b, s, -1)
        diff -= self.x[lo:hi, None, :]
        sums = np.einsum("ij,ij->i", out, out, out=self.buffers["sums"][:rows])
        return self.scale * sums.reshape(b, s).astype(np.float64) + self.const


def _sum_softplus(shifted: Array, groups: int) -> Array:
    """sum_j softplus(l_j) per row, float64, from `shifted` = l - SHIFT,
    which it overwrites; +inf where a product overflows.

    softplus(l) = log(1 + e^l) = SHIFT + log(e^-SHIFT + e^(l - SHIFT)), so
    with the d_x columns cut into `groups` slabs of m = d_x / groups,

        sum_j softplus(l_j) = d_x SHIFT + sum_{j < m} log prod_g t_(g m + j),
        t = e^-SHIFT + e^(l - SHIFT):

    two passes (exp, add) and a product over the slabs, then a logarithm
    of a `groups`-th of the entries: cheaper than a log per entry. A
    factor t lies in [e^-SHIFT, e^(l - SHIFT)], so a product of 8 never
    underflows a float32 (e^-80 > 1e-38) and overflows only when the 8
    logits it joins sum past about 88 + 8 SHIFT = 168; its row is then
    +inf, and redone by the reference. The logarithms are summed in
    float64, so the large constant d_x SHIFT costs no precision.
    """
    with np.errstate(over="ignore"):
        np.exp(shifted, out=shifted)
    shifted += math.exp(-SHIFT)
    rows, d_x = shifted.shape
    products = np.multiply.reduce(shifted.reshape(rows, groups, d_x // groups), axis=1)
    with np.errstate(divide="ignore"):
        return np.log(products, dtype=np.float64).sum(axis=1) + d_x * SHIFT


def _block(decoder: _Decoder, eps: Array, lo: int, hi: int, mu, std, log_var) -> Array:
    """log w (b, s), float64, for examples lo:hi and eps (s, b, d_z).

    z = mu + std * eps, written straight into the decoder's input buffer,
    and log r(z) - log q(z|x) by its kernel (`kl.log_ratio_forward`).
    """
    s, b, d_z = eps.shape
    h0 = decoder.inputs(b * s)[0]
    z = h0[:b * s, :d_z].reshape(b, s, d_z)  # example-major rows
    e = eps.transpose(1, 0, 2)  # (b, s, d_z)
    if mu is None:  # prior: z = eps, log w = log p(x|z)
        z[...] = e
        return decoder.log_lik(b, s, lo, hi)
    np.multiply(std[lo:hi, None, :], e, out=z)
    z += mu[lo:hi, None, :]
    log_ratio, _ = log_ratio_forward(z, e, np.broadcast_to(log_var[lo:hi, None, :], z.shape))
    return decoder.log_lik(b, s, lo, hi) + log_ratio


def _activate(name: str, a: Array) -> None:
    """The hidden activation in place (activations.py has each one's
    definition and its reference form)."""
    if name == "relu":
        np.maximum(a, 0, out=a)
    elif name == "tanh":
        np.tanh(a, out=a)
    elif name == "sigmoid":  # sigmoid(a) = (1 + tanh(a / 2)) / 2
        a *= 0.5
        np.tanh(a, out=a)
        a += 1.0
        a *= 0.5
    elif name == "softplus":  # max(a, 0) + log1p(exp(-|a|))
        t = np.abs(a)
        np.negative(t, out=t)
        np.exp(t, out=t)
        np.log1p(t, out=t)
        np.maximum(a, 0, out=a)
        a += t
    elif name != "identity":
        raise ValueError(f"activation: expected one of {ACTIVATIONS}, got {name!r}")


def _log_sum_exp_rows(a: Array) -> Array:
    """log sum_j exp(a_ij) per row, float64; -inf for a row of -inf."""
    m = a.max(axis=1)
    shift = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf for a row of -inf
        return np.log(np.exp(a - shift[:, None]).sum(axis=1)) + shift

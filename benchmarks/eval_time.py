"""Time numpyvae's IWAE-k evaluation against its matrix-multiply floor.

Contenders, each scoring the same MNIST test images with the same k:

fast        ``numpyvae.estimators.iwae_bound``: the fast form of the sum
            (numpyvae/fast/fused_eval.py), what ``numpyvae evaluate`` runs; with
            threadpoolctl installed, on two threads sharing the blocks with
            BLAS at one thread each (printed below the table).
floor       only the matrix products that call makes, same shapes, into
            preallocated outputs: the encoder once over the images, then
            the decoder's layers (each with its bias row stacked under W)
            over all k x n rows in the same blocks. No elementwise work, no
            noise, no log-sum-exp: no implementation on the same BLAS that
            evaluates every sample does less.
reference   (--reference) ``estimators.log_mean_weight(..., fast=False)``:
            the reference sum that fused_eval is tested equal to, as the
            notes write it (the model's log-weights, then the IWAE head).

Method. One process; BLAS threads pinned to --threads (threadpoolctl if
installed, else OPENBLAS/OMP/MKL_NUM_THREADS set before NumPy is
imported). --rounds rounds, each contender in turn per round; reported:
the median seconds, and the paired ratio fast / floor (per round, then
the median). The model is untrained (seeded); the weights do not change
the work. The default, 1,000 images, is a tenth of the test set; --n
10000 scores all of it.

Usage:
    python benchmarks/eval_time.py                      # 784-400-20, 1,000 images
    python benchmarks/eval_time.py --n 10000 --rounds 1 --reference --json out.json
    python benchmarks/eval_time.py --model iwae         # 784-200-200-50 tanh
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

MODELS = {  # as benchmarks/step_time.py: protocol 1 and protocols 2-3 of docs/results.md
    "pytorch-examples": {"hidden": (400,), "d_z": 20, "activation": "relu"},
    "iwae": {"hidden": (200, 200), "d_z": 50, "activation": "tanh"},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="pytorch-examples")
    p.add_argument("--n", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--k", type=int, default=5000, help="importance samples (default 5000)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reference", action="store_true", help="also time the reference sum")
    p.add_argument("--mnist", help="mnist.npz (default $NUMPYVAE_DATA/mnist.npz)")
    p.add_argument("--json", help="also write the results to this file")
    return p.parse_args(argv)


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))  # machine_info
from machine_info import cpu_name, pin_blas_threads  # noqa: E402

threadpoolctl = pin_blas_threads(ARGS.threads)  # before NumPy is imported

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from numpyvae import VAE, estimators  # noqa: E402
from numpyvae.datasets import load_mnist  # noqa: E402
from numpyvae.fast import fused_eval
from numpyvae.reference.vae import encoder_forward  # noqa: E402


def test_images() -> np.ndarray:
    try:
        _, (x_test, _) = load_mnist(ARGS.mnist)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"eval_time: {err}")
    return x_test[:ARGS.n]


def floor(model: VAE, x: np.ndarray, k: int) -> None:
    """The products of `fused_eval.log_mean_weight`, same blocks, nothing else.

    As fused_eval does: the encoder over the images, a block at a time;
    each decoder layer as one product with its bias row stacked under W,
    [W; b], its input buffer carrying a last column of ones; and for the
    Bernoulli cross term the per-example vectors [W; b] x.
    """
    config = model.config
    n = x.shape[0]
    chunk, batch = fused_eval.block_plan(config, n, k, estimators.MEMORY_BUDGET)
    rows_cap = fused_eval.block_rows(config, estimators.MEMORY_BUDGET)
    for lo in range(0, n, rows_cap):
        encoder_forward(model.params, x[lo:lo + rows_cap], config)
    names = [f"dec{i}" for i in range(len(config.hidden))] + ["out"]
    W = [np.vstack([model.params[f"{name}.W"], model.params[f"{name}.b"][None, :]])
         for name in names]  # (d_in + 1, d_out) each
    if config.likelihood == "bernoulli":
        np.matmul(x, W[-1].T)  # (n, d_h + 1)
    blocks = []  # (rows of one block) for every block the estimator visits
    for start in range(0, k, chunk):
        s_chunk = min(chunk, k - start)
        for lo in range(0, n, batch):
            b = min(lo + batch, n) - lo
            step = max(1, rows_cap // b)
            blocks += [b * min(step, s_chunk - s0) for s0 in range(0, s_chunk, step)]
    h = [np.ones((max(blocks), w.shape[0]), x.dtype) for w in W]  # inputs, last column 1
    out = np.empty((max(blocks), config.input_dim), x.dtype)
    for rows in blocks:
        for i, w in enumerate(W[:-1]):
            np.matmul(h[i][:rows], w, out=h[i + 1][:rows, :-1])
        np.matmul(h[-1][:rows], W[-1], out=out[:rows])


def contenders(model: VAE, x: np.ndarray) -> dict:
    k = ARGS.k
    out = {"fast": lambda: estimators.iwae_bound(model, x, k, np.random.default_rng(0)),
           "floor": lambda: floor(model, x, k)}
    if ARGS.reference:
        out["reference"] = lambda: estimators.log_mean_weight(
            model, x, k, np.random.default_rng(0), fast=False)
    return out


def machine() -> dict:
    cpu = cpu_name()
    blas = threadpoolctl.threadpool_info() if threadpoolctl else "threadpoolctl not installed"
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "threads": ARGS.threads, "blas": blas, "load": [round(v, 2) for v in os.getloadavg()]}


def main() -> None:
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(ARGS.threads)
    spec = MODELS[ARGS.model]
    model = VAE(784, spec["d_z"], hidden=spec["hidden"], activation=spec["activation"], rng=0)
    x = test_images()
    runs = contenders(model, x)
    seconds = {name: [] for name in runs}
    for _ in range(ARGS.rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - t0)
    ratio = {name: statistics.median(a / b for a, b in zip(seconds[name], seconds["floor"], strict=True))
             for name in runs}
    arch = f"784-{'-'.join(map(str, spec['hidden']))}-{spec['d_z']} {spec['activation']}"
    info = machine()
    print(f"IWAE-{ARGS.k} over {len(x):,} MNIST test images, {arch}, float32, "
          f"{ARGS.threads} threads, median of {ARGS.rounds} rounds")
    print(f"machine: {info['cpu']}, {info['cores']} cores, python {info['python']}, "
          f"numpy {info['numpy']}, load {info['load']}")
    workers = fused_eval.worker_threads(2, len(x) * ARGS.k)
    print(f"fast: {workers} worker thread{'s' if workers > 1 else ''}"
          + (", BLAS at one thread each" if workers > 1 else ""))
    print(f"{'contender':<12}{'seconds':>10}{'per 10,000 images':>20}{'/floor':>8}")
    for name in runs:
        median = statistics.median(seconds[name])
        print(f"{name:<12}{median:10.1f}{median * 10_000 / len(x):20.0f}{ratio[name]:8.2f}")
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(
            {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv),
             "model": arch, "k": ARGS.k, "images": len(x), "seconds": seconds,
             "ratio_to_floor": ratio, "fast_workers": workers, "machine": info}, indent=2))


if __name__ == "__main__":
    main()

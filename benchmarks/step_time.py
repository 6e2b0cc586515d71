"""Time numpyvae's float32 training step against the matrix-multiply floor
and PyTorch, for the pytorch/examples MNIST VAE (784-400-20-400-784, relu,
Bernoulli decoder from logits, Adam with lr 1e-3).

Contenders, per step, on one fixed float32 batch:

numpyvae        ``Trainer.train_step``: eps drawn from the trainer's
                generator, fused_step.loss_forward + loss_backward (with
                the trainer's workspace), the finiteness check of loss and
                grads, and fused_step.adam_step: what every step of
                ``numpyvae.train`` does.
floor           only the matrix products of that step, same shapes and
                transposes, into preallocated outputs, in NumPy: no bias
                sums, no elementwise work, no optimizer. No implementation
                on the same BLAS does less.
torch default   the same model in PyTorch eager (pytorch/examples'
                vae/main.py), its loss in the stable with-logits form and
                divided by n like numpyvae's: eps drawn with torch.randn in
                the step, zero_grad, forward, backward, torch.optim.Adam
                (default implementation), loss.item().
torch fused     the same with Adam(fused=True).
torch.compile   the same with the loss function compiled by torch.compile
                (forward and backward) and Adam(fused=True); a column only
                where compiling works (a note says why not otherwise).

Method. One process; BLAS threads pinned to --threads for NumPy
(threadpoolctl if installed, else OPENBLAS/OMP/MKL_NUM_THREADS set before
NumPy is imported) and for PyTorch (torch.set_num_threads). Per batch
size, --rounds rounds; in each round every contender in turn (A B C A B C
...) runs 3 untimed warm-up steps and then timed steps for ~40 ms; the
reported time is the median over all timed steps of all rounds. Ratios
are paired: in each round, one contender's median over the other's,
then the median of those per-round ratios (load that changes more slowly
than a round, ~0.5 s, slows both and cancels). After
each contender's block the script sleeps --pause seconds (0.15 by
default), longer than OpenBLAS's and OpenMP's busy-wait before their
worker threads sleep, so no library's spinning threads steal a core from
the next one; OPENBLAS_THREAD_TIMEOUT is left alone. The garbage
collector is off while timing.

Second table (needs MNIST: --mnist PATH or $NUMPYVAE_DATA/mnist.npz): one
epoch of ``numpyvae.train`` (60,000 images, batch 128) in a fresh
process: wall time, that process's peak resident memory (ru_maxrss), and
in steady state the tracemalloc peak of one step and the minor page
faults per step. With --iwae, the same fresh-process measurement of
``numpyvae.estimators.iwae_bound`` on MNIST test images (defaults k=5000
on the first 1,000 images, ~10x shorter than the full --iwae-n 10000).

Usage:
    python benchmarks/step_time.py                     # everything, ~3 min
    python benchmarks/step_time.py --batch 128 --breakdown
    python benchmarks/step_time.py --iwae --iwae-n 10000 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

MODELS = {  # the two benchmark models: protocol 1 and protocols 2-3 of docs/results.md
    "pytorch-examples": {"hidden": (400,), "d_z": 20, "activation": "relu", "epsilon": 1e-8,
                         "batch": [32, 128, 1024], "epoch_batch": 128, "binarize": "none"},
    "iwae": {"hidden": (200, 200), "d_z": 50, "activation": "tanh", "epsilon": 1e-4,
             "batch": [20], "epoch_batch": 20, "binarize": "dynamic"},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="pytorch-examples",
                   help="pytorch-examples: 784-400-20 relu, Adam eps 1e-8 (default); "
                        "iwae: the IWAE paper's 784-200-200-50 tanh, Adam eps 1e-4")
    p.add_argument("--batch", type=int, nargs="+",
                   help="batch sizes (default 32 128 1024; 20 for --model iwae)")
    p.add_argument("--k", type=int, default=1,
                   help="k > 1: the IWAE objective with k samples per example "
                        "(numpyvae and PyTorch; the floor's decoder then has k x batch rows)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="BLAS/torch threads for every library (default: all cores)")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time the CPU time of the calling thread instead of wall time "
                        "(needs --threads 1; far less disturbed by other jobs)")
    p.add_argument("--pause", type=float, default=0.15,
                   help="seconds of sleep between two contenders' blocks (default 0.15)")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    p.add_argument("--breakdown", action="store_true",
                   help="print where numpyvae's step time goes, per phase")
    p.add_argument("--variants", action="store_true",
                   help="time whole steps of candidate designs against today's step "
                        "(Adam unchunked; BLAS at one thread; the batch whole or in "
                        "two halves, on one thread or two)")
    p.add_argument("--adam-threads", action="store_true",
                   help="time Adam's passes on one thread against two (a design check)")
    p.add_argument("--mnist", help="mnist.npz for the epoch table "
                   "(default $NUMPYVAE_DATA/mnist.npz)")
    p.add_argument("--no-epoch", action="store_true", help="skip the epoch table")
    p.add_argument("--iwae", action="store_true", help="also time iwae_bound on MNIST test")
    p.add_argument("--iwae-k", type=int, default=5000, help="importance samples (default 5000)")
    p.add_argument("--iwae-n", type=int, default=1000,
                   help="test images (default 1000; the full test set is 10000)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--child", choices=["epoch", "iwae"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch is None:
        args.batch = MODELS[args.model]["batch"]
    if args.cpu_time and args.threads != 1:
        p.error("--cpu-time measures one thread: use it with --threads 1")
    if args.k > 1 and (args.breakdown or args.adam_threads):
        p.error("--breakdown and --adam-threads time the ELBO step: use them without --k")
    return args


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))  # machine_info, torch_reference
from machine_info import cpu_name, pin_blas_threads  # noqa: E402

threadpoolctl = pin_blas_threads(ARGS.threads)  # before NumPy is imported

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from numpyvae import VAE  # noqa: E402
from numpyvae.fast import fused_step, threads
from numpyvae.fast.fused_step import adam_step, loss_backward, loss_forward  # noqa: E402
from numpyvae.reference.optim import Adam  # noqa: E402
from numpyvae.train import Trainer, first_nonfinite, train  # noqa: E402

SPEC = MODELS[ARGS.model]
D_X, HIDDEN, D_Z, ACTIVATION = 784, SPEC["hidden"], SPEC["d_z"], SPEC["activation"]
LR, ADAM_EPSILON = 1e-3, SPEC["epsilon"]
N_PARAMS = sum(a * b + b for a, b in zip([D_X, *HIDDEN], [*HIDDEN, 2 * D_Z], strict=True)) + sum(
    a * b + b for a, b in zip([D_Z, *HIDDEN[::-1]], [*HIDDEN[::-1], D_X], strict=True))
ARCH = "-".join(str(d) for d in (D_X, *HIDDEN, D_Z)) + f" {ACTIVATION}"
OBJECTIVE = f"IWAE k={ARGS.k}" if ARGS.k > 1 else "ELBO"


def new_model() -> VAE:
    return VAE(D_X, D_Z, hidden=HIDDEN, activation=ACTIVATION, rng=0)


def new_trainer(n: int, rng: int = 1, binarize: str = "none") -> Trainer:
    objective = {"objective": "iwae", "k": ARGS.k} if ARGS.k > 1 else {}
    return Trainer(new_model(), Adam(lr=LR, epsilon=ADAM_EPSILON), batch_size=n, rng=rng,
                   binarize=binarize, **objective)


def pin_threads() -> None:
    """Limit NumPy's BLAS to ARGS.threads (torch: torch.set_num_threads)."""
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(ARGS.threads)


def fixed_batch(n: int) -> np.ndarray:
    """A float32 batch like binarized MNIST (its values do not change timings)."""
    rng = np.random.default_rng(n)
    return (rng.random((n, D_X)) < 0.13).astype(np.float32)


# ------------------------------------------------------------ contenders

def numpyvae_step(n: int):
    trainer = new_trainer(n)
    x = fixed_batch(n)
    return lambda: trainer.train_step(x)


def dense_layers() -> list[tuple[int, int, int]]:
    """(rows per example, d_in, d_out) of every dense layer, in forward
    order; the two encoder heads are one (d_h, 2 d_z) product, as numpyvae
    computes them; the decoder sees k rows per example."""
    enc, dec = [D_X, *HIDDEN, 2 * D_Z], [D_Z, *HIDDEN[::-1], D_X]
    return ([(1, a, b) for a, b in pairwise(enc)]
            + [(ARGS.k, a, b) for a, b in pairwise(dec)])


def floor_products(n: int):
    """(forward, backward): callables doing exactly the step's matrix products.

    The shapes and transposes are those of numpyvae's fused step: forward
    h_i W_i for every dense layer (the heads as one product h [W_mu | W_lv]);
    backward h_i^T dh_{i+1} for every layer and dh_{i+1} W_i^T for every
    layer but the first (the gradient wrt x is never formed). The bias
    sums (vector products with ones) are left out.
    """
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    layers = [(a(r * n, d_in), a(d_in, d_out), a(r * n, d_out), a(r * n, d_out),
               a(d_in, d_out), a(r * n, d_in))
              for r, d_in, d_out in dense_layers()]  # h, W, out, dout, dW, dh
    mm = np.matmul

    def forward():
        for h, W, out, _, _, _ in layers:
            mm(h, W, out=out)

    def backward():
        for i, (h, W, _, dout, dW, dh) in reversed(list(enumerate(layers))):
            mm(h.T, dout, out=dW)
            if i > 0:
                mm(dout, W.T, out=dh)

    return forward, backward


def floor_step(n: int):
    forward, backward = floor_products(n)

    def step():
        forward()
        backward()
    return step


def torch_step(n: int, fused: bool, compiled: bool = False):
    """The PyTorch step, or raise (the caller turns that into a note)."""
    import torch
    from torch_reference import torch_vae  # pytorch/examples vae/main.py, any depth
    torch.manual_seed(0)
    model = torch_vae(HIDDEN, D_Z, ACTIVATION, D_X, k=ARGS.k)
    opt = torch.optim.Adam(model.parameters(), lr=LR, eps=ADAM_EPSILON, fused=fused)
    loss_fn = torch.compile(model) if compiled else model
    x = torch.from_numpy(fixed_batch(n))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # compiles, when compiled; raises here if that fails
    return step


# --------------------------------------------------------------- timing

def clock() -> float:
    """Wall time, or with --cpu-time the CPU time of this thread (with one
    thread everything runs in it: NumPy's BLAS, and PyTorch's kernels and
    autograd on the CPU)."""
    return time.thread_time() if ARGS.cpu_time else time.perf_counter()


def time_interleaved(steps: dict, rounds: int, pause: float) -> dict:
    """Median seconds per call of each callable, timed in turn (A B A B ...)."""
    per_block = {}
    for name, step in steps.items():  # size each block to ~40 ms
        for _ in range(3):
            step()
        t0 = clock()
        step()
        per_block[name] = max(2, min(200, int(0.04 / max(clock() - t0, 1e-6))))
    times = {name: [] for name in steps}  # one list of samples per round
    gc.disable()
    try:
        for _ in range(rounds):
            for name, step in steps.items():
                for _ in range(3):
                    step()
                block = []
                for _ in range(per_block[name]):
                    t0 = clock()
                    step()
                    block.append(clock() - t0)
                times[name].append(block)
                time.sleep(pause)
    finally:
        gc.enable()
    return {name: _summary(blocks) for name, blocks in times.items()}


def _summary(blocks: list) -> dict:
    t = [s for block in blocks for s in block]
    q = statistics.quantiles(t, n=4)
    return {"median_s": statistics.median(t), "q1_s": q[0], "q3_s": q[2], "samples": len(t),
            "round_medians_s": [statistics.median(block) for block in blocks]}


def step_table(notes: list) -> list[dict]:
    """One row per (batch size, contender)."""
    have_torch = False
    if not ARGS.no_torch:
        try:
            import torch
            torch.set_num_threads(ARGS.threads)
            have_torch = True
        except ImportError:
            notes.append("PyTorch is not installed: its columns are skipped "
                         "(pip install torch to compare).")
    rows = []
    for n in ARGS.batch:
        steps = {"numpyvae": numpyvae_step(n), "floor (GEMMs only)": floor_step(n)}
        if have_torch:
            steps["torch default Adam"] = torch_step(n, fused=False)
            steps["torch fused Adam"] = torch_step(n, fused=True)
            if not ARGS.no_compile:
                try:
                    steps["torch.compile fused"] = torch_step(n, fused=True, compiled=True)
                except Exception as e:  # noqa: BLE001 - any failure becomes a note
                    notes.append(f"torch.compile failed at batch {n}: "
                                 f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        result = time_interleaved(steps, ARGS.rounds, ARGS.pause)
        for name, r in result.items():
            rows.append({"batch": n, "contender": name, **r})
    _add_ratios(rows)
    return rows


def _add_ratios(rows: list) -> None:
    """Paired ratios: per round, this row's median over the reference's
    median in the same round; then the median over rounds. The two blocks
    of a round run within a fraction of a second of each other, so a
    change of machine load that lasts longer slows both and cancels."""
    by = {(r["batch"], r["contender"]): r["round_medians_s"] for r in rows}
    for r in rows:
        n, t = r["batch"], r["median_s"]
        r["ms_per_step"] = 1e3 * t
        r["examples_per_s"] = n / t
        for key, ref in (("vs_torch_fused", "torch fused Adam"),
                         ("vs_torch_default", "torch default Adam"),
                         ("vs_floor", "floor (GEMMs only)")):
            ref_rounds = by.get((n, ref))
            r[key] = None if ref_rounds is None else statistics.median(
                a / b for a, b in zip(r["round_medians_s"], ref_rounds, strict=True))


def print_step_table(rows: list) -> None:
    what = "CPU time of the calling thread" if ARGS.cpu_time else "wall time"
    print(f"\nPer-step {what}, float32, {ARCH}, {OBJECTIVE}, Adam epsilon {ADAM_EPSILON:g} "
          "(median of interleaved steps)")
    head = (f"{'batch':>5}  {'contender':<20} {'ms/step':>8} {'IQR ms':>13} "
            f"{'examples/s':>11} {'/torch fused':>12} {'/torch dflt':>11} {'/floor':>7}")
    print(head)
    print("-" * len(head))

    def ratio(v):
        return f"{v:.2f}" if v is not None else "-"
    for r in rows:
        iqr = f"{1e3 * r['q1_s']:.2f}-{1e3 * r['q3_s']:.2f}"
        print(f"{r['batch']:>5}  {r['contender']:<20} {r['ms_per_step']:8.3f} {iqr:>13} "
              f"{r['examples_per_s']:11,.0f} {ratio(r['vs_torch_fused']):>12} "
              f"{ratio(r['vs_torch_default']):>11} {ratio(r['vs_floor']):>7}")


# ------------------------------------------------------------ breakdown

def breakdown(n: int) -> dict:
    """Milliseconds per phase of numpyvae's step at batch n.

    Timed directly, interleaved like the main table: the whole step, the
    forward (loss_forward), the backward (loss_backward on that cache),
    the finiteness check of the loss and grads, adam_step, and the
    floor's forward and backward products. Elementwise time is a
    difference: phase time minus its products.

    What the whole step costs beyond its phases ("rest") is split three
    ways, each measured: drawing eps (the trainer's draw, alone); the
    phases run back to back in one call with a fixed eps, less the sum of
    the phases timed alone ("phases together": what a phase loses when
    the one before it has filled the caches, or left OpenBLAS's worker
    spinning); and the step less that back-to-back call and the draw
    ("step's own calls": Trainer.train_step's checks, attribute lookups
    and calls).

    A batch that the package splits over two threads (fused_step.splits)
    is broken down as one thread runs it, the whole batch in one pass (the
    phases are the one-thread ones); "split" says so, and the main table
    times the split step.
    """
    trainer = new_trainer(n)
    model = trainer.model
    x = fixed_batch(n)
    trainer.train_step(x)  # makes the workspace and Adam's moments
    eps = np.random.default_rng(0).standard_normal((n, D_Z), dtype=np.float32)
    ws, config = trainer.workspace, model.config
    loss, _, cache = loss_forward(model.params, x, eps, config, 1.0, ws)
    grads = loss_backward(cache)
    fwd_mm, bwd_mm = floor_products(n)
    draw_rng = np.random.default_rng(1)

    inside = []  # per call of in_sequence: each phase's own time inside it

    def in_sequence():
        t0 = clock()
        loss, _, cache = loss_forward(model.params, x, eps, config, 1.0, ws)
        t1 = clock()
        grads = loss_backward(cache)
        t2 = clock()
        first_nonfinite(loss, grads)
        t3 = clock()
        adam_step(trainer.optimizer, model.params, grads, ws)
        inside.append((t1 - t0, t2 - t1, t3 - t2, clock() - t3))

    split = fused_step.splits(n)
    step = lambda: trainer.train_step(x)  # noqa: E731
    if split:
        step = with_settings(step, SPLIT_ROWS=2 ** 62)
    t = time_interleaved({
        "step": step,
        "in sequence": in_sequence,
        "eps": lambda: draw_rng.standard_normal((n, D_Z), dtype=np.float32),
        "forward": lambda: loss_forward(model.params, x, eps, config, 1.0, ws),
        "backward": lambda: loss_backward(cache),
        "finite check": lambda: first_nonfinite(loss, grads),
        "adam": lambda: adam_step(trainer.optimizer, model.params, grads, ws),
        "forward GEMMs": fwd_mm, "backward GEMMs": bwd_mm,
    }, ARGS.rounds, ARGS.pause)
    ms = {k: 1e3 * v["median_s"] for k, v in t.items()}
    phases = ms["forward"] + ms["backward"] + ms["finite check"] + ms["adam"]
    return {"batch": n, "split": split, "step": ms["step"],
            "forward GEMMs": ms["forward GEMMs"],
            "forward elementwise": ms["forward"] - ms["forward GEMMs"],
            "backward GEMMs": ms["backward GEMMs"],
            "backward elementwise": ms["backward"] - ms["backward GEMMs"],
            "finite check": ms["finite check"], "Adam": ms["adam"],
            "rest": ms["step"] - phases,
            "eps draw": ms["eps"],
            "phases together": ms["in sequence"] - phases,
            "step's own calls": ms["step"] - ms["in sequence"] - ms["eps"],
            "inside a step": {name: 1e3 * statistics.median(c[i] for c in inside)
                              for i, name in enumerate(("forward", "backward", "finite check",
                                                        "adam"))},
            "alone": {name: ms[name] for name in ("forward", "backward", "finite check",
                                                  "adam")}}


def print_breakdown(rows: list) -> None:
    print("\nWhere numpyvae's step goes (ms; elementwise = phase - its GEMMs, "
          "rest = step - phases = eps draw + phases together + step's own calls)")
    keys = [k for k in rows[0] if k not in ("batch", "split", "step", "inside a step",
                                            "alone")]
    print(f"{'batch':>5} {'step':>7} " + " ".join(f"{k:>{max(8, len(k))}}" for k in keys))
    for r in rows:
        print(f"{r['batch']:>5} {r['step']:7.3f} "
              + " ".join(f"{r[k]:>{max(8, len(k))}.3f}" for k in keys)
              + (" *" if r["split"] else ""))
    if any(r["split"] for r in rows):
        print(f"* the whole batch on one thread, as without threadpoolctl; the package "
              f"runs a step of {fused_step.SPLIT_ROWS} rows or more in two halves on two "
              "threads (the table above)")
    print("\nEach phase timed alone (back to back) and inside the phases' sequence (ms)")
    names = list(rows[0]["alone"])
    print(f"{'batch':>5} " + " ".join(f"{name + ' alone':>18} {'inside':>8}" for name in names))
    for r in rows:
        print(f"{r['batch']:>5} " + " ".join(f"{r['alone'][name]:18.3f} "
                                             f"{r['inside a step'][name]:8.3f}"
                                             for name in names))


def adam_threads() -> list[dict]:
    """Adam's update at batch 128 (fused_step.adam_step) on one thread
    against the same passes split in two halves over two threads (its
    `helper`, as a step that splits the batch runs it), wall time: back
    to back, and right after the forward's matrix products (whose
    OpenBLAS worker threads then busy-wait)."""
    from concurrent.futures import ThreadPoolExecutor
    trainer = new_trainer(128)
    model = trainer.model
    x = fixed_batch(128)
    trainer.train_step(x)
    eps = np.zeros((128, D_Z), np.float32)
    grads = loss_backward(loss_forward(model.params, x, eps, model.config, 1.0,
                                       trainer.workspace)[2])
    ws, opt = trainer.workspace, trainer.optimizer
    pool = ThreadPoolExecutor(max_workers=1)

    def one():
        adam_step(opt, model.params, grads, ws)

    def two():
        adam_step(opt, model.params, grads, ws, pool)

    forward = floor_products(128)[0]
    times = {(case, k): [] for case in ("back to back", "right after the forward products")
             for k in ("1 thread", "2 threads")}
    gc.disable()
    try:
        for _ in range(ARGS.rounds):
            for (case, k), samples in times.items():
                update = one if k == "1 thread" else two
                for _ in range(20):
                    if case != "back to back":
                        forward()  # untimed: leaves OpenBLAS's workers busy-waiting
                    t0 = time.perf_counter()  # wall time even with --cpu-time:
                    update()                  # two threads' work is the point here
                    samples.append(time.perf_counter() - t0)
                time.sleep(ARGS.pause)
    finally:
        gc.enable()
    pool.shutdown()
    return [{"case": case, **{k: 1e3 * statistics.median(times[(case, k)])
                              for k in ("1 thread", "2 threads")}}
            for case in ("back to back", "right after the forward products")]


def with_settings(step, **settings):
    """`step` run with module attributes set for its duration: ("SPLIT_ROWS",
    value) of fused_step, ("two_cores", bool) of numpyvae.fast.threads."""
    def run():
        saved = {}
        for name, value in settings.items():
            module = threads if name == "two_cores" else fused_step
            saved[name] = (module, getattr(module, name))
            setattr(module, name, (lambda v=value: v) if name == "two_cores" else value)
        try:
            step()
        finally:
            for name, (module, value) in saved.items():
                setattr(module, name, value)
    return run


def variants() -> list[dict]:
    """Whole steps per batch size, wall time: today's step (as
    `Trainer.train_step` runs it: from fused_step.SPLIT_ROWS decoder rows
    on, the batch in two halves on two threads, when threadpoolctl is
    installed); today's with each of Adam's passes over all parameters at
    once instead of in cache-sized slices; today's with BLAS at one
    thread; the whole batch in one pass, at every size; and the batch in
    two halves on two threads (BLAS at one thread each), at every size."""
    rows = []
    for n in ARGS.batch:
        steps = {"today": numpyvae_step(n)}
        steps["Adam unchunked"] = with_settings(numpyvae_step(n), ADAM_CHUNK=2 ** 62)
        steps["whole batch"] = with_settings(numpyvae_step(n), SPLIT_ROWS=2 ** 62)
        if threadpoolctl is not None:
            one_blas = numpyvae_step(n)

            def pinned(one_blas=one_blas):
                with threadpoolctl.threadpool_limits(1, user_api="blas"):
                    one_blas()
            steps["BLAS 1 thread"] = pinned
            steps["halves, two threads"] = with_settings(numpyvae_step(n), SPLIT_ROWS=2,
                                                         two_cores=True)
        t = time_interleaved(steps, ARGS.rounds, ARGS.pause)
        ref = t["today"]["round_medians_s"]
        for name, r in t.items():
            ratio = statistics.median(a / b for a, b in zip(r["round_medians_s"], ref, strict=True))
            rows.append({"batch": n, "variant": name, "ms_per_step": 1e3 * r["median_s"],
                         "vs_today": ratio})
    return rows


def print_variants(rows: list) -> None:
    print("\nCandidate designs, whole steps (ms of wall time; ratio paired round by round)")
    for r in rows:
        print(f"  batch {r['batch']:>5}  {r['variant']:<26} {r['ms_per_step']:8.3f} ms  "
              f"{r['vs_today']:5.2f} x today")


def print_adam_threads(rows: list) -> None:
    print(f"\nAdam's 12 passes over all {N_PARAMS:,} parameters (ms of wall time), batch 128")
    for r in rows:
        print(f"  {r['case']:<34} 1 thread {r['1 thread']:6.3f}   "
              f"2 threads {r['2 threads']:6.3f}")


# ------------------------------------------------------- fresh processes

def mnist_path() -> Path | None:
    if ARGS.mnist:
        return Path(ARGS.mnist)
    root = os.environ.get("NUMPYVAE_DATA")
    if root and (Path(root) / "mnist.npz").is_file():
        return Path(root) / "mnist.npz"
    return None


def load_mnist_arrays(path: Path):
    from numpyvae.datasets import load_mnist
    return load_mnist(path)


def child_epoch() -> dict:
    """In a fresh process: one epoch of numpyvae.train, then a second one
    under tracemalloc for the steady-state allocation per step."""
    import tracemalloc
    (x, _), _ = load_mnist_arrays(mnist_path())
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batch = SPEC["epoch_batch"]
    trainer = new_trainer(batch, rng=0, binarize=SPEC["binarize"])
    faults = []

    def count_faults(_):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
    t0 = time.perf_counter()
    train(trainer, x, 1)  # the timed epoch, exactly as a user runs it
    seconds = time.perf_counter() - t0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    trainer.run_epoch(x, on_step=count_faults)  # page faults per step, 2nd epoch
    trainer.end_epoch()
    steady = np.diff(faults[10:])
    peaks = []

    def trace(_):
        current, peak = tracemalloc.get_traced_memory()
        peaks.append(peak - current)
        tracemalloc.reset_peak()
    tracemalloc.start()
    trainer.run_epoch(x[:batch * 60], on_step=trace)  # 60 steps under tracemalloc
    tracemalloc.stop()
    return {"images": int(x.shape[0]), "batch": batch, "binarize": SPEC["binarize"],
            "epoch_s": seconds,
            "maxrss_MiB": rss_peak / 1024, "maxrss_after_loading_data_MiB": rss_data / 1024,
            "step_alloc_peak_KiB_median": float(np.median(peaks[10:])) / 1024,
            "step_alloc_peak_KiB_max": float(np.max(peaks[10:])) / 1024,
            "minor_faults_per_step_median": float(np.median(steady)),
            "minor_faults_per_step_mean": float(np.mean(steady))}


def child_iwae() -> dict:
    from numpyvae.estimators import iwae_bound
    _, (x_test, _) = load_mnist_arrays(mnist_path())
    x = x_test[:ARGS.iwae_n]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = new_model()
    t0 = time.perf_counter()
    bound = iwae_bound(model, x, ARGS.iwae_k, np.random.default_rng(0))
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"k": ARGS.iwae_k, "images": int(x.shape[0]), "seconds": seconds,
            "maxrss_MiB": rss / 1024, "maxrss_before_MiB": rss0 / 1024,
            "mean_bound_untrained_model": float(np.mean(bound))}


def run_child(kind: str, notes: list) -> dict | None:
    """Run this script with --child KIND in a fresh process; its JSON result."""
    cmd = [sys.executable, __file__, "--child", kind, "--threads", str(ARGS.threads),
           "--model", ARGS.model, "--k", str(ARGS.k),
           "--mnist", str(mnist_path()), "--iwae-k", str(ARGS.iwae_k),
           "--iwae-n", str(ARGS.iwae_n)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        notes.append(f"the {kind} measurement failed: {proc.stderr.strip()[-300:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_epoch(e: dict) -> None:
    print(f"\nOne epoch of numpyvae.train on MNIST ({e['images']:,} images, batch "
          f"{e['batch']}, binarize {e.get('binarize', 'none')}, {OBJECTIVE}), fresh process")
    print(f"  wall time                      {e['epoch_s']:8.2f} s "
          f"({e['images'] / e['epoch_s']:,.0f} images/s)")
    print(f"  peak resident memory (maxrss)  {e['maxrss_MiB']:8.1f} MiB "
          f"({e['maxrss_after_loading_data_MiB']:.1f} MiB after loading the data)")
    print(f"  per-step tracemalloc peak      {e['step_alloc_peak_KiB_median']:8.1f} KiB "
          f"median, {e['step_alloc_peak_KiB_max']:.1f} KiB max (steady state)")
    print(f"  minor page faults per step     {e['minor_faults_per_step_median']:8.1f} "
          f"median, {e['minor_faults_per_step_mean']:.2f} mean")


def print_iwae(r: dict) -> None:
    print(f"\niwae_bound, k = {r['k']}, {r['images']:,} MNIST test images, fresh process")
    print(f"  wall time             {r['seconds']:8.1f} s")
    print(f"  peak resident memory  {r['maxrss_MiB']:8.1f} MiB "
          f"({'under' if r['maxrss_MiB'] < 1024 else 'OVER'} 1 GiB)")


# ---------------------------------------------------------------- machine

def machine() -> dict:
    cpu = cpu_name(platform.processor() or "unknown")
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "cpu": cpu, "cores": os.cpu_count(),
            "threads": ARGS.threads, "clock": "thread CPU time" if ARGS.cpu_time else "wall",
            "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                 "OPENBLAS_THREAD_TIMEOUT") if k in os.environ}}
    if threadpoolctl is not None:
        info["blas"] = [{"library": Path(d["filepath"]).name,
                         **{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                                  "num_threads")}}
                        for d in threadpoolctl.threadpool_info()]
    else:
        config = np.show_config(mode="dicts") if np.lib.NumpyVersion(np.__version__) >= "1.26.0" \
            else {}
        blas = config.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = (f"numpy's BLAS: {blas.get('name')} {blas.get('version')} "
                        "(threadpoolctl not installed: threads set by environment variables)")
    torch = sys.modules.get("torch")
    info["torch"] = torch.__version__ if torch is not None else None
    timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    info["between_contenders"] = (
        f"sleep {ARGS.pause} s after each contender's block; OPENBLAS_THREAD_TIMEOUT "
        + (f"set to {timeout} in the environment" if timeout else "not set (OpenBLAS default)"))
    return info


def print_machine(info: dict) -> None:
    print(f"machine: {info['platform']}, {info['cpu']}, {info['cores']} cores")
    print(f"python {info['python']}, numpy {info['numpy']}, torch {info['torch']}, "
          f"threads per library: {info['threads']}")
    if isinstance(info["blas"], list):
        for d in info["blas"]:  # numpy's OpenBLAS is the libscipy_openblas64_ one
            print(f"  thread pool: {d['library']}: {d['internal_api']} {d['version']} "
                  f"({d['architecture']} kernels), {d['num_threads']} threads")
    else:
        print(f"  {info['blas']}")
    if info["env"]:
        print(f"  environment: {info['env']}")
    print(f"between contenders: {info['between_contenders']}")
    print(f"load average at start: {info['load_start']}, at end: {info['load_end']}")


def main() -> None:
    pin_threads()
    if ARGS.child:
        result = child_epoch() if ARGS.child == "epoch" else child_iwae()
        print(json.dumps(result))
        return
    notes: list[str] = []
    load_start = os.getloadavg()
    rows = step_table(notes)
    parts = [breakdown(n) for n in ARGS.batch] if ARGS.breakdown else None
    threads = adam_threads() if ARGS.adam_threads else None
    designs = variants() if ARGS.variants else None
    epoch = iwae = None
    if not ARGS.no_epoch or ARGS.iwae:
        if mnist_path() is None or not mnist_path().is_file():
            notes.append("MNIST not found (--mnist PATH or $NUMPYVAE_DATA/mnist.npz): "
                         "the epoch and IWAE measurements are skipped.")
        else:
            epoch = None if ARGS.no_epoch else run_child("epoch", notes)
            iwae = run_child("iwae", notes) if ARGS.iwae else None
    info = machine()
    info["load_start"] = [round(v, 2) for v in load_start]
    info["load_end"] = [round(v, 2) for v in os.getloadavg()]
    print_machine(info)
    print_step_table(rows)
    if parts:
        print_breakdown(parts)
    if threads:
        print_adam_threads(threads)
    if designs:
        print_variants(designs)
    if epoch:
        print_epoch(epoch)
    if iwae:
        print_iwae(iwae)
    for note in notes:
        print(f"note: {note}")
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(
            {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv),
             "model": {"name": ARGS.model, "architecture": ARCH, "objective": OBJECTIVE,
                       "adam_epsilon": ADAM_EPSILON, "parameters": N_PARAMS},
             "machine": info, "steps": rows, "breakdown": parts, "adam_threads": threads,
             "variants": designs,
             "epoch": epoch,
             "iwae": iwae, "notes": notes}, indent=2))


if __name__ == "__main__":
    main()

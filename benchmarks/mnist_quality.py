"""numpyvae's held-out MNIST numbers beside the published ones.

Protocols (see docs/results.md):

1. ``pytorch-examples``: grey-level MNIST, 784-400-20-400-784 relu,
   Bernoulli decoder, Adam 1e-3, batch 128, 10 epochs, numpyvae's default
   weights (for a relu network PyTorch's nn.Linear scale); the published
   figure is the test loss (-ELBO with a sampled z) of about 105.6 nats.
   With PyTorch installed the same model is trained in PyTorch in the
   same run and its test loss printed beside numpyvae's.
2. ``iwae-dynamic``: the IWAE paper's one-stochastic-layer model
   (784-200-200-50 tanh), dynamic binarization, batch 20, Adam with
   epsilon 1e-4, the 3^i-epoch learning-rate stages; trained as a VAE
   (k = 1) and scored with IWAE k = 5000: published test NLL 86.76.
   ``--objective iwae --k 50`` trains the IWAE instead (published 84.78;
   85.54 with k = 5).
3. ``iwae-static``: the same with one fixed binarization: VAE 88.71.

With PyTorch installed, every protocol also trains the same architecture
in PyTorch in the same run, at equal epochs, on the same (binarized)
training data, with the protocol's batch size, Adam epsilon, schedule and
(protocols 2-3) output-bias start (benchmarks/torch_reference.py), and
scores it with numpyvae's estimator on the same test images: the test
loss for protocol 1, IWAE with --eval-k samples for protocols 2-3.

``--budget EPOCHS`` compresses the 3280-epoch schedule into that many
epochs (same stages, proportionally shorter). The evaluation is never
shortened unless ``--eval-k`` is given (the final numbers use 5000).

Usage::

    python benchmarks/mnist_quality.py pytorch-examples --out runs/p1
    python benchmarks/mnist_quality.py iwae-dynamic --budget 60 --out runs/p2
    python benchmarks/mnist_quality.py pytorch-examples --tiny --out /tmp/t

``--tiny`` (a few hundred images, one epoch, k = 10) checks the pipeline
end to end in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # torch_reference, machine_info
from machine_info import cpu_name  # noqa: E402

PUBLISHED = {
    "pytorch-examples": ("test loss, sampled z (pytorch/examples vae)", 105.6),
    "iwae-dynamic": ("test NLL, IWAE k=5000 (Burda et al. 2016, VAE k=1)", 86.76),
    "iwae-static": ("test NLL, IWAE k=5000 (Burda et al. 2016, fixed binarization)", 88.71),
}
# IWAE training, test NLL by IWAE-5000 after 3280 epochs, by (protocol, k)
PUBLISHED_IWAE = {("iwae-dynamic", 5): 85.54, ("iwae-dynamic", 50): 84.78,
                  ("iwae-static", 50): 87.10}


def train_args(protocol: str, args) -> list[str]:
    """The `numpyvae train` command line of a protocol."""
    if protocol == "pytorch-examples":
        cmd = ["--hidden", "400", "--latent-dim", "20", "--activation", "relu",
               "--batch-size", "128", "--lr", "1e-3", "--epochs", str(args.epochs or 10),
               "--binarize", "none"]
    else:
        epochs = args.budget or 3280
        cmd = ["--hidden", "200,200", "--latent-dim", "50", "--activation", "tanh",
               "--batch-size", "20", "--lr", "1e-3", "--adam-epsilon", "1e-4",
               "--lr-schedule", "iwae", "--epochs", str(epochs),
               "--binarize", "dynamic" if protocol == "iwae-dynamic" else "static"]
        if args.objective == "iwae":
            cmd += ["--objective", "iwae", "--k", str(args.k)]
    data = ["--data", args.tiny_data] if args.tiny else ["--data", "mnist"]
    return ["train", *cmd, *data, "--seed", str(args.seed), "--out", str(args.out),
            "--no-plots"]


def torch_reference_row(protocol: str, args, metrics: dict) -> tuple | None:
    """PyTorch trained in the same run on the same data, scored by numpyvae's
    estimator on the same test images: a row of the table, or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    import torch_reference

    from numpyvae.app.run_trainer import read_settings
    from numpyvae.app.runs import load_run_data
    settings = read_settings(args.out / "config.json")
    (x_train, _), (x_test, _) = load_run_data(settings)  # binarized as the run's
    t0 = time.perf_counter()
    if protocol == "pytorch-examples":  # as pytorch/examples has it: no bias start
        arch = dict(hidden=(400,), latent_dim=20, activation="relu")
        model = torch_reference.train_torch_vae(x_train, **arch, epochs=metrics["epochs"],
                                                batch_size=128, seed=args.seed)
    else:
        arch = dict(hidden=(200, 200), latent_dim=50, activation="tanh")
        model = torch_reference.train_torch_vae(
            x_train, **arch, epochs=metrics["epochs"], batch_size=20, seed=args.seed,
            adam_epsilon=1e-4, dynamic=protocol == "iwae-dynamic", init_output_bias=True,
            lr_schedule="iwae")
    seconds = time.perf_counter() - t0
    vae = torch_reference.to_numpyvae(model, **arch, d_x=x_train.shape[1])
    if protocol == "pytorch-examples":
        value = torch_reference.mean_test_loss(vae, x_test, args.seed)
    else:
        value = torch_reference.mean_iwae_nll(vae, x_test, args.eval_k, args.seed)[0]
    return ("pytorch (same run)", value, metrics["epochs"], seconds)


def _tiny_data(folder: Path) -> str:
    """A few hundred MNIST images in the mnist.npz layout, for --tiny."""
    from numpyvae.datasets import load_mnist
    (x_train, y_train), (x_test, y_test) = load_mnist()
    path = folder / "mnist-tiny.npz"
    to_u8 = lambda a: np.round(a * 255).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    np.savez(path, x_train=to_u8(x_train[:300]), y_train=y_train[:300],
             x_test=to_u8(x_test[:100]), y_test=y_test[:100])
    return str(path)


def machine() -> dict:
    """Where the numbers were made: CPU, cores, Python, NumPy, threads."""
    cpu = cpu_name()
    env = {k: v for k, v in os.environ.items()
           if k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "env": env}


def main(argv=None) -> int:
    from numpyvae.app.cli import main as numpyvae_main
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("protocol", choices=sorted(PUBLISHED))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, help="protocol 1 only (default 10)")
    parser.add_argument("--budget", type=int, help="protocols 2-3: epochs for the schedule")
    parser.add_argument("--objective", choices=("elbo", "iwae"), default="elbo")
    parser.add_argument("--k", type=int, default=50, help="IWAE training samples")
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="pipeline check in seconds")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.tiny_data = _tiny_data(args.out) if args.tiny else None
    if args.tiny:
        args.epochs, args.budget, args.eval_k = 1, 1, 10
    t0 = time.perf_counter()
    if numpyvae_main(train_args(args.protocol, args)) != 0:
        return 1
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    if numpyvae_main(["evaluate", str(args.out), "--k", str(args.eval_k),
                      "--seed", str(args.seed)]) != 0:
        return 1
    eval_seconds = time.perf_counter() - t0
    metrics = json.loads((args.out / "metrics.json").read_text())
    what, published = PUBLISHED[args.protocol]
    if args.protocol == "pytorch-examples":
        ours = -metrics["val_elbo"]
    else:
        ours = metrics["test_nll"]
        if args.objective == "iwae":
            published = PUBLISHED_IWAE.get((args.protocol, args.k), "none for this k")
    rows = [("numpyvae", ours, metrics["epochs"], train_seconds)]
    if not args.no_torch and args.objective == "elbo":
        row = torch_reference_row(args.protocol, args, metrics)
        if row is not None:
            rows.append(row)
    print(f"\nprotocol {args.protocol}: {what}; published {published}")
    print(f"{'implementation':<20} {'nats':>8} {'epochs':>7} {'train s':>9}")
    for name, value, epochs, seconds in rows:
        print(f"{name:<20} {value:8.2f} {epochs:7d} {seconds:9.0f}")
    print(f"numpyvae test ELBO {metrics['test_elbo']:.2f} ± {metrics['test_elbo_se']:.2f}, "
          f"IWAE-{args.eval_k} {metrics['test_iwae_k']:.2f} ± {metrics['test_iwae_se']:.2f}, "
          f"active units {metrics['test_active_units']}; machine: {platform.machine()}, "
          f"{platform.python_version()}")
    result = {"protocol": args.protocol, "published": published, "rows": rows,
              "metrics": metrics, "command": " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "eval_seconds": eval_seconds, "machine": machine()}
    (args.out / "quality.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

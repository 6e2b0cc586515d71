"""The defaults table of docs/results.md: each weight initialisation over
several seeds on the main job, protocol 1 and a shortened protocol 2, with
PyTorch trained in the same run as the reference.

For every init in (he, lecun) and every seed:

* main job: ``numpyvae train``'s defaults on the embedded digits; the
  final validation ELBO (nats, higher is better);
* protocol 1 (pytorch/examples: grey MNIST, 784-400-20 relu, Adam 1e-3,
  batch 128, 10 epochs): the test loss, -ELBO with one sampled z (lower
  is better);
* protocol 2, shortened (the IWAE paper's 784-200-200-50 tanh, dynamic
  binarization, batch 20, Adam epsilon 1e-4, the compressed 3^i stages
  over --p2-epochs epochs): -IWAE-k on one fixed binarization of the
  first --eval-n test images (lower is better).

PyTorch trains the same architectures with its own nn.Linear
initialisation (protocol 1 as pytorch/examples has it; protocol 2 with
the protocol's dynamic binarization, schedule, epsilon and output bias),
and numpyvae's estimators score both on the same images with the same
noise seed. Usage::

    python benchmarks/defaults.py --json benchmarks/results/defaults.json

``--tiny`` checks the pipeline in seconds (a few hundred images).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_reference  # noqa: E402

from numpyvae.app import run_trainer, runs
from numpyvae.app.settings import DEFAULTS  # noqa: E402

INITS = ("he", "lecun")
P1 = dict(data="mnist", hidden=[400], latent_dim=20, activation="relu", batch_size=128,
          lr=1e-3, epochs=10, binarize="none")
P2 = dict(data="mnist", hidden=[200, 200], latent_dim=50, activation="tanh", batch_size=20,
          lr=1e-3, adam_epsilon=1e-4, lr_schedule="iwae", binarize="dynamic")


def train_numpyvae(settings: dict):
    """Train one run into a temporary folder; its trainer and metrics."""
    with tempfile.TemporaryDirectory() as out:
        data = runs.load_run_data(settings)
        trainer = run_trainer.new_trainer(settings, data[0][0])
        metrics, _, _ = runs.train_run(settings, out, data, trainer, pictures=False)
    return trainer, metrics


def main_job(init: str, seed: int, args) -> dict:
    settings = dict(DEFAULTS, init=init, seed=seed)
    if args.tiny:
        settings.update(epochs=2)
    t0 = time.perf_counter()
    _, metrics = train_numpyvae(settings)
    return {"val_elbo": metrics["val_elbo"], "seconds": time.perf_counter() - t0}


def protocol1(init: str, seed: int, args, x_test) -> dict:
    settings = dict(DEFAULTS, **{**P1, "data": args.data}, init=init, seed=seed)
    if args.tiny:
        settings.update(epochs=1)
    t0 = time.perf_counter()
    trainer, _ = train_numpyvae(settings)
    seconds = time.perf_counter() - t0
    return {"test_loss": torch_reference.mean_test_loss(trainer.model, x_test, seed),
            "seconds": seconds}


def protocol1_torch(seed: int, args, x_train, x_test) -> dict:
    t0 = time.perf_counter()
    model = torch_reference.train_torch_vae(
        x_train, hidden=(400,), latent_dim=20, activation="relu",
        epochs=1 if args.tiny else 10, batch_size=128, seed=seed)
    vae = torch_reference.to_numpyvae(model, hidden=(400,), latent_dim=20,
                                      activation="relu", d_x=x_train.shape[1])
    return {"test_loss": torch_reference.mean_test_loss(vae, x_test, seed),
            "seconds": time.perf_counter() - t0}


def protocol2(init: str, seed: int, args, x_eval) -> dict:
    settings = dict(DEFAULTS, **{**P2, "data": args.data}, init=init, seed=seed,
                    epochs=args.p2_epochs)
    t0 = time.perf_counter()
    trainer, _ = train_numpyvae(settings)
    seconds = time.perf_counter() - t0
    nll, se = torch_reference.mean_iwae_nll(trainer.model, x_eval, args.eval_k, seed)
    return {"iwae_nll": nll, "iwae_se": se, "seconds": seconds}


def protocol2_torch(seed: int, args, x_train, x_eval) -> dict:
    t0 = time.perf_counter()
    model = torch_reference.train_torch_vae(
        x_train, hidden=(200, 200), latent_dim=50, activation="tanh", epochs=args.p2_epochs,
        batch_size=20, seed=seed, adam_epsilon=1e-4, dynamic=True, init_output_bias=True,
        lr_schedule="iwae")
    vae = torch_reference.to_numpyvae(model, hidden=(200, 200), latent_dim=50,
                                      activation="tanh", d_x=x_train.shape[1])
    nll, se = torch_reference.mean_iwae_nll(vae, x_eval, args.eval_k, seed)
    return {"iwae_nll": nll, "iwae_se": se, "seconds": time.perf_counter() - t0}


def summary(rows: list, key: str) -> str:
    values = [r[key] for r in rows]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {spread:.2f}"


def tiny_mnist(folder: Path) -> str:
    """A few hundred MNIST images in the mnist.npz layout, for --tiny."""
    from numpyvae.datasets import load_mnist
    (x_train, y_train), (x_test, y_test) = load_mnist()
    to_u8 = lambda a: np.round(a * 255).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    path = folder / "mnist-tiny.npz"
    np.savez(path, x_train=to_u8(x_train[:300]), y_train=y_train[:300],
             x_test=to_u8(x_test[:100]), y_test=y_test[:100])
    return str(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--p2-epochs", type=int, default=5)
    p.add_argument("--eval-k", type=int, default=1000)
    p.add_argument("--eval-n", type=int, default=2000)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--tiny", action="store_true", help="pipeline check in seconds")
    p.add_argument("--json", help="write the rows and the table's numbers here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        args.data = tiny_mnist(Path(tmp)) if args.tiny else "mnist"
        if args.tiny:
            args.p2_epochs, args.eval_k, args.eval_n = 1, 5, 50
        (x_train, _), (x_test, _) = runs.load_data(args.data, "float32")
        # one fixed binarization of the evaluation images, for every model
        x_eval = runs.binarized(((x_train, None), (x_test, None)),
                                {"binarize": "static", "seed": 0})[1][0][:args.eval_n]
        rows = {"main job": {i: [] for i in INITS}, "protocol 1": {i: [] for i in INITS},
                "protocol 2": {i: [] for i in INITS}}
        torch_rows = {"protocol 1": [], "protocol 2": []}
        for seed in args.seeds:
            for init in INITS:
                rows["main job"][init].append(main_job(init, seed, args))
                rows["protocol 1"][init].append(protocol1(init, seed, args, x_test))
                rows["protocol 2"][init].append(protocol2(init, seed, args, x_eval))
                print(f"seed {seed} {init}: " + ", ".join(
                    f"{k} {v[init][-1]}" for k, v in rows.items()), flush=True)
            if not args.no_torch:
                torch_rows["protocol 1"].append(protocol1_torch(seed, args, x_train, x_test))
                torch_rows["protocol 2"].append(protocol2_torch(seed, args, x_train, x_eval))
                print(f"seed {seed} torch: {torch_rows}", flush=True)
    keys = {"main job": "val_elbo", "protocol 1": "test_loss", "protocol 2": "iwae_nll"}
    print(f"\n| benchmark (seeds {args.seeds}) | he | lecun | PyTorch, same run |")
    print("|---|---|---|---|")
    for name, key in keys.items():
        torch_cell = summary(torch_rows[name], key) if torch_rows.get(name) else "-"
        print(f"| {name}: {key} | {summary(rows[name]['he'], key)} | "
              f"{summary(rows[name]['lecun'], key)} | {torch_cell} |")
    if args.json:
        import numpy
        import torch
        Path(args.json).write_text(json.dumps(
            {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv),
             "machine": {"python": platform.python_version(), "numpy": numpy.__version__,
                         "torch": torch.__version__, "cpu": platform.processor()},
             "args": {k: v for k, v in vars(args).items() if k != "data"},
             "numpyvae": rows, "torch": torch_rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

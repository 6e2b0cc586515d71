"""The IWAE paper's two-stochastic-layer model on MNIST, numpyvae beside PyTorch.

Protocol (Burda, Grosse and Salakhutdinov, 2016, Table 1, second
architecture): x -> 100 tanh -> 100 tanh -> z1 (100) -> 50 tanh -> 50
tanh -> z2 (50), mirrored in the generative model; Bernoulli decoder;
dynamic binarization (a fresh Bernoulli draw of every training batch);
batch 20; Adam with epsilon 1e-4 and the 3^i-epoch learning-rate stages
(`numpyvae.reference.optim.iwae_learning_rate`) compressed into ``--epochs``.
Trained as a VAE (k = 1) and as an IWAE (``--k``, default 5). Published
test NLL: VAE 85.33, IWAE k = 50 82.90 (3280 epochs).

In the same run, the same architecture is trained in PyTorch (eager, CPU,
one thread) for the same epochs, from the same initial weights, and both
are scored by the same estimator (`estimators.iwae_bound`,
k = ``--eval-k``) on the same fixed binarization of the first
``--eval-n`` test images (`datasets.static_binarize`, seed + 2, as
``numpyvae train --binarize dynamic`` does).

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/mnist_hierarchy.py --epochs 8 \
        --eval-k 5000 --eval-n 1000 --out benchmarks/results/mnist-hierarchy.json
    python benchmarks/mnist_hierarchy.py --tiny --out /tmp/h.json   # seconds
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from numpyvae import Adam, fit
from numpyvae.datasets import load_mnist, static_binarize
from numpyvae.estimators import iwae_bound
from numpyvae.evaluation import active_units_per_layer
from numpyvae.hierarchical_vae import HierarchicalVAE
from numpyvae.reference.optim import iwae_learning_rate

PUBLISHED = {1: 85.33, 50: 82.90}  # test NLL, two stochastic layers, k = 1 (VAE), k = 50


def numpyvae_model(x_train, seed: int) -> HierarchicalVAE:
    """The paper's architecture, weights from `seed`, out.b at the mean pixel."""
    model = HierarchicalVAE(784, (100, 50), hidden=(100, 100), hidden2=(50, 50),
                            activation="tanh", rng=seed)
    model.init_output_bias(x_train)
    return model


def train_numpyvae(x_train, objective: str, k: int, epochs: int, seed: int):
    model = numpyvae_model(x_train, seed)
    history = fit(model, x_train, epochs=epochs, batch_size=20,
                  optimizer=Adam(lr=1e-3, epsilon=1e-4), objective=objective, k=k,
                  binarize="dynamic", lr_schedule="iwae", rng=seed + 1)
    return model, history


def train_torch(x_train, k: int, epochs: int, seed: int) -> HierarchicalVAE | None:
    """The same model in PyTorch; returned as a HierarchicalVAE to be scored."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    start = numpyvae_model(x_train, seed)  # the same initial weights
    names = list(start.config.layer_shapes())
    layers = {name: torch.nn.Linear(*start.config.layer_shapes()[name]) for name in names}
    with torch.no_grad():
        for name, layer in layers.items():
            layer.weight.copy_(torch.from_numpy(start.params[f"{name}.W"].T.copy()))
            layer.bias.copy_(torch.from_numpy(start.params[f"{name}.b"]))
    net = torch.nn.ModuleDict({name.replace(".", "_"): layer for name, layer in layers.items()})
    log_2pi = math.log(2 * math.pi)

    def mlp(h, prefix, n_layers):
        for i in range(n_layers):
            h = torch.tanh(layers[f"{prefix}.h{i}"](h))
        return h

    def gaussian(h, prefix, n_layers):
        h = mlp(h, prefix, n_layers)
        return layers[f"{prefix}.mu"](h), layers[f"{prefix}.log_var"](h)

    def log_normal(z, mu, log_var):
        return -0.5 * (log_2pi + log_var + (z - mu) ** 2 * torch.exp(-log_var)).sum(-1)

    def loss_fn(x):
        mu1, log_var1 = gaussian(x, "q1", 2)
        z1 = mu1 + torch.exp(0.5 * log_var1) * torch.randn(k, *mu1.shape)  # (k, n, 100)
        mu2, log_var2 = gaussian(z1, "q2", 2)
        z2 = mu2 + torch.exp(0.5 * log_var2) * torch.randn_like(mu2)
        mu_p1, log_var_p1 = gaussian(z2, "p1", 2)
        logits = layers["out"](mlp(z1, "px", 2))
        log_lik = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x.expand(k, *x.shape), reduction="none").sum(-1)
        log_w = (log_lik + log_normal(z1, mu_p1, log_var_p1)
                 + log_normal(z2, torch.zeros_like(z2), torch.zeros_like(z2))
                 - log_normal(z1, mu1, log_var1) - log_normal(z2, mu2, log_var2))
        return -(torch.logsumexp(log_w, 0) - math.log(k)).mean()

    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-4)
    xt = torch.from_numpy(x_train)
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = iwae_learning_rate(epoch, epochs, 1e-3)
        for idx in torch.randperm(len(xt)).split(20):
            xb = torch.bernoulli(xt[idx])  # dynamic binarization
            opt.zero_grad()
            loss_fn(xb).backward()
            opt.step()
    params = {}
    for name, layer in layers.items():
        params[f"{name}.W"] = layer.weight.detach().numpy().T.astype(np.float32).copy()
        params[f"{name}.b"] = layer.bias.detach().numpy().astype(np.float32).copy()
    start.params = params
    return start


def score(model: HierarchicalVAE, x_eval, eval_k: int, seed: int) -> dict:
    """IWAE-k NLL, ELBO, active units per layer; the same noise for every model."""
    t0 = time.perf_counter()
    nll = -float(np.mean(iwae_bound(model, x_eval, eval_k, seed + 3),
                         dtype=np.float64))
    elbo = float(np.mean(model.elbo(x_eval, np.random.default_rng(seed + 4)),
                         dtype=np.float64))
    counts = active_units_per_layer(model, x_eval, np.random.default_rng(seed + 5))[0]
    return {"test_nll": nll, "test_elbo": elbo, "active_units": counts,
            "eval_seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--k", type=int, default=5, help="IWAE training samples")
    parser.add_argument("--eval-k", type=int, default=5000)
    parser.add_argument("--eval-n", type=int, default=10000, help="first N test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--tiny", action="store_true", help="pipeline check in seconds")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    (x_train, _), (x_test, _) = load_mnist()
    if args.tiny:
        x_train, args.epochs, args.eval_k, args.eval_n = x_train[:200], 1, 10, 50
    x_eval = static_binarize(x_test, args.seed + 2)[:args.eval_n]
    rows = []
    for objective, k in (("elbo", 1), ("iwae", args.k)):
        t0 = time.perf_counter()
        model, history = train_numpyvae(x_train, objective, k, args.epochs, args.seed)
        rows.append({"implementation": "numpyvae", "objective": objective, "k": k,
                     "epochs": args.epochs, "train_seconds": time.perf_counter() - t0,
                     "final_train_elbo": history[-1]["train_elbo"],
                     **score(model, x_eval, args.eval_k, args.seed)})
        print(json.dumps(rows[-1]), flush=True)
        if args.no_torch:
            continue
        t0 = time.perf_counter()
        torch_model = train_torch(x_train, k, args.epochs, args.seed)
        if torch_model is not None:
            rows.append({"implementation": "pytorch (same run)", "objective": objective,
                         "k": k, "epochs": args.epochs,
                         "train_seconds": time.perf_counter() - t0,
                         **score(torch_model, x_eval, args.eval_k, args.seed)})
            print(json.dumps(rows[-1]), flush=True)
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    result = {"protocol": "iwae-dynamic, two stochastic layers (Burda et al. 2016, Table 1)",
              "published_test_nll": {"vae_k1": PUBLISHED[1], "iwae_k50": PUBLISHED[50],
                                     "epochs": 3280},
              "eval": {"k": args.eval_k, "n_test_images": len(x_eval),
                       "binarization": f"static_binarize(x_test, {args.seed + 2})"},
              "rows": rows, "command": " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "machine": {"cpu": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "numpy": np.__version__,
                          "torch": torch_version}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'implementation':<20} {'objective':>9} {'k':>3} {'epochs':>6} {'NLL':>8} "
          f"{'ELBO':>8} {'train s':>8}")
    for r in rows:
        print(f"{r['implementation']:<20} {r['objective']:>9} {r['k']:>3} {r['epochs']:>6} "
              f"{r['test_nll']:8.2f} {r['test_elbo']:8.2f} {r['train_seconds']:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

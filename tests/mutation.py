"""Mutation testing of numpyvae's own suite: plant one-line bugs, see which
tests kill them.

Each mutant below replaces one exact piece of one line of a module with a
realistic mistake (the bugs of docs/gradient-checking.md's zoo and their
kin). For each, the repository is copied to a temporary folder, the line
is changed there, and the test files that cover that module run with
``-x`` (stop at the first failure). A mutant is *killed* when a test
fails, *survived* when they all pass. The working tree is never touched.

Run from the repository root (about 15 minutes on 2 cores)::

    python tests/mutation.py                 # every mutant, the table
    python tests/mutation.py --only kl-      # mutants whose name starts so
    python tests/mutation.py --json out.json

The table's rows: the mutant's name, killed or survived, the first failing
test, seconds. docs/reliability.md has the last table, with its date, and
the mutants judged equivalent (none is left unkilled without a reason).
This file is a script, not a test module: pytest collects only test_*.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", ".hypothesis",
                                ".pytest_cache", "*.egg-info", "build", "_site")

# The test files that cover each module (run in this order, -x).
KERNEL_TESTS = ["tests/reference/test_vae.py", "tests/fast/test_fused_step.py"]
COVERS = {
    "layers.py": ["tests/reference/test_layers.py", *KERNEL_TESTS],
    "activations.py": ["tests/reference/test_activations.py", *KERNEL_TESTS],
    "likelihoods.py": ["tests/reference/test_likelihoods.py", *KERNEL_TESTS],
    "kl.py": ["tests/reference/test_kl.py", *KERNEL_TESTS],
    "sampling.py": ["tests/reference/test_sampling.py", *KERNEL_TESTS],
    "model.py": KERNEL_TESTS,
    "iwae.py": ["tests/reference/test_bounds.py", "tests/fast/test_fused_step.py", "tests/test_properties.py"],
    "fused_step.py": ["tests/fast/test_fused_step.py", "tests/test_train.py"],
    "optim.py": ["tests/reference/test_optim.py", "tests/fast/test_fused_step.py"],
    "estimators.py": ["tests/test_estimators.py", "tests/test_estimators_logmeanexp.py",
                      "tests/test_properties.py"],
    "checkpoint.py": ["tests/test_checkpoint.py", "tests/checks/test_reliability.py"],
    "train.py": ["tests/test_train.py", "tests/test_values_off_default.py"],
    "hierarchy.py": ["tests/reference/test_hierarchical_vae.py"],
}


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str     # file name in numpyvae/
    original: str   # an exact piece of one line, unique in the module
    mutated: str    # what it becomes


MUTANTS = [
    # layers.py: the dense layer's three gradients
    Mutant("dense-dx-not-propagated", "layers.py", "return dh @ W.T, x.T @ dh, dh.sum(axis=0)",
           "return 0 * x, x.T @ dh, dh.sum(axis=0)"),
    Mutant("dense-dW-mean", "layers.py", "return dh @ W.T, x.T @ dh, dh.sum(axis=0)",
           "return dh @ W.T, x.T @ dh / x.shape[0], dh.sum(axis=0)"),
    Mutant("dense-db-axis", "layers.py", "return dh @ W.T, x.T @ dh, dh.sum(axis=0)",
           "return dh @ W.T, x.T @ dh, dh.mean(axis=0)"),
    Mutant("dense-forward-no-bias", "layers.py", "h = x @ W + b", "h = x @ W"),
    # activations.py: each derivative
    Mutant("relu-mask-ge", "activations.py", "return dh * (a > 0)", "return dh * (a >= -1e-3)"),
    Mutant("tanh-derivative-from-input", "activations.py", "return dh * (1.0 - h * h)",
           "return dh * (1.0 - h)"),
    Mutant("sigmoid-derivative-is-s", "activations.py", "return dh * h * (1.0 - h)",
           "return dh * h"),
    Mutant("softplus-derivative-off", "activations.py", "return dh * sigmoid(a)",
           "return dh * sigmoid(a) * 0.999"),
    # likelihoods.py
    Mutant("bernoulli-grad-sign", "likelihoods.py",
           "return dlog_lik[:, None] * (x - sigmoid(logits))",
           "return dlog_lik[:, None] * (sigmoid(logits) - x)"),
    Mutant("bernoulli-forward-softplus", "likelihoods.py",
           "log_lik = (x * logits - softplus(logits)).sum(axis=1)",
           "log_lik = (x * logits - softplus(-logits)).sum(axis=1)"),
    Mutant("gaussian-sigma-not-squared", "likelihoods.py",
           "return dlog_lik[:, None] * diff * (1.0 / (sigma * sigma))",
           "return dlog_lik[:, None] * diff * (1.0 / sigma)"),
    Mutant("gaussian-const-sigma", "likelihoods.py",
           "const = -0.5 * d_x * math.log(2.0 * math.pi * sigma * sigma)",
           "const = -0.5 * d_x * math.log(2.0 * math.pi * sigma)"),
    Mutant("gaussian-forward-half", "likelihoods.py",
           "log_lik = (diff * diff).sum(axis=1) * (-0.5 / (sigma * sigma)) + const",
           "log_lik = (diff * diff).sum(axis=1) * (-1.0 / (sigma * sigma)) + const"),
    # kl.py
    Mutant("kl-dlog_var-half", "kl.py", "return dkl * mu, dkl * (0.5 * (var - 1.0))",
           "return dkl * mu, dkl * (var - 1.0)"),
    Mutant("kl-dmu-half", "kl.py", "return dkl * mu, dkl * (0.5 * (var - 1.0))",
           "return dkl * mu * 0.5, dkl * (0.5 * (var - 1.0))"),
    Mutant("kl-forward-sign", "kl.py", "kl = 0.5 * (mu * mu + var - log_var - 1.0).sum(axis=1)",
           "kl = 0.5 * (mu * mu + var + log_var - 1.0).sum(axis=1)"),
    Mutant("kl-fixed-log-delta", "kl.py",
           "const = 0.5 * d_z * (delta * delta - math.log(delta * delta) - 1.0)",
           "const = 0.5 * d_z * (delta * delta - math.log(delta) - 1.0)"),
    Mutant("kl-fixed-grad", "kl.py", "return dkl[:, None] * mu", "return dkl[:, None] * mu * 2"),
    # sampling.py
    Mutant("reparam-var-as-std", "sampling.py", "std = np.exp(0.5 * log_var)  # (n, d_z)",
           "std = np.exp(log_var)  # (n, d_z)"),
    Mutant("reparam-dlog_var-half", "sampling.py", "return dz, dz * eps * (0.5 * std)",
           "return dz, dz * eps * std"),
    Mutant("reparam-fixed-delta", "sampling.py", "return mu + delta * eps, None",
           "return mu + delta * delta * eps, None"),
    Mutant("log-density-dlog_var-half", "likelihoods.py",
           "    return -dmu, dmu, g * (0.5 * diff * scaled - 0.5)",
           "    return -dmu, dmu, g * (diff * scaled - 0.5)"),
    # model.py: the reference chain
    Mutant("model-dlog_lik-sign", "model.py",
           "dlog_lik = np.full(n, -1.0 / n, dtype=dtype)  # d loss / d log_lik_i",
           "dlog_lik = np.full(n, 1.0 / n, dtype=dtype)  # d loss / d log_lik_i"),
    Mutant("model-beta-forward-only", "model.py",
           "dkl = np.full(n, beta / n, dtype=dtype)       # d loss / d kl_i",
           "dkl = np.full(n, 1.0 / n, dtype=dtype)       # d loss / d kl_i"),
    Mutant("model-kl-path-dropped", "model.py",
           "dmu, dlog_var = dmu + dmu_kl, dlog_var + dlog_var_kl",
           "dmu, dlog_var = dmu + dmu_kl, dlog_var"),
    Mutant("model-fixed-kl-dropped", "model.py",
           "dmu = dmu + kl_fixed_backward(dkl, cache[\"kl\"])", "dmu = dmu"),
    Mutant("model-heads-sum", "model.py", "dh = dh + dh_lv", "dh = dh_lv"),
    # iwae.py
    Mutant("iwae-weights-unnormalized", "iwae.py",
           "w_tilde = softmax(log_w, axis=0)  # (k, n), columns sum to 1",
           "w_tilde = np.exp(log_w - log_w.max())  # (k, n), columns sum to 1"),
    Mutant("iwae-weights-wrong-axis", "iwae.py",
           "w_tilde = softmax(log_w, axis=0)  # (k, n), columns sum to 1",
           "w_tilde = softmax(log_w, axis=1)  # (k, n), columns sum to 1"),
    Mutant("iwae-minus-log-k", "iwae.py",
           "iwae = np.logaddexp.reduce(log_w, axis=0) - x.dtype.type(math.log(k))  # (n,)",
           "iwae = np.logaddexp.reduce(log_w, axis=0)  # (n,)"),
    Mutant("iwae-prior-term", "iwae.py",
           "dz -= dlog_w[:, :, None] * z  # from log r(z_i) = -0.5 ||z_i||^2 + const",
           "dz += dlog_w[:, :, None] * z  # from log r(z_i) = -0.5 ||z_i||^2 + const"),
    Mutant("iwae-log-var-term", "iwae.py",
           "dlog_var = (dz * eps).sum(axis=0) * (0.5 * std) + dlog_w.sum(axis=0)[:, None] * 0.5",
           "dlog_var = (dz * eps).sum(axis=0) * (0.5 * std)"),
    # hierarchy.py: two stochastic layers
    Mutant("hierarchy-weights-axis", "hierarchy.py",
           "dbound = softmax(log_w, axis=0)",
           "dbound = softmax(log_w, axis=1)"),
    Mutant("hierarchy-minus-n", "hierarchy.py",
           "cache = {**cache, \"dlog_w\": dbound * x.dtype.type(-1.0 / n)}",
           "cache = {**cache, \"dlog_w\": dbound * x.dtype.type(-1.0)}"),
    # fused_step.py: the training step's fast form
    Mutant("fused-bernoulli-half", "fused_step.py", "        dout *= 0.5\n",
           "        dout *= 0.49\n"),
    Mutant("fused-relu-mask-ge", "fused_step.py",
           "mask = np.greater(act_cache, 0, out=_scratch(ws, f\"{name}.mask\", dh.shape, bool))",
           "mask = np.greater_equal(act_cache, 0, out=_scratch(ws, f\"{name}.mask\", dh.shape, "
           "bool))"),
    Mutant("fused-heads-bias", "fused_step.py",
           "b = np.concatenate((params[\"mu.b\"], params[\"log_var.b\"]),",
           "b = np.concatenate((params[\"mu.b\"], params[\"mu.b\"]),"),
    Mutant("fused-gaussian-sigma", "fused_step.py",
           "dout = np.multiply(diff, -1.0 / (sigma * sigma),",
           "dout = np.multiply(diff, -1.0 / sigma,"),
    Mutant("fused-fixed-kl-beta", "fused_step.py",
           "        np.multiply(mu, dt(dkl), out=dheads)",
           "        np.multiply(mu, dt(2 * dkl), out=dheads)"),
    Mutant("fused-iwae-log-var", "fused_step.py",
           "dlog_var = (dz * eps).sum(axis=0) * (0.5 * std) + dlog_w.sum(axis=0)[:, None] * 0.5",
           "dlog_var = (dz * eps).sum(axis=0) * (0.5 * std) + dlog_w.sum(axis=0)[:, None]"),
    Mutant("fused-db-ones", "fused_step.py",
           "np.matmul(_ones(ws, da.shape[0], da.dtype), da, out=grads[f\"{name}.b\"])",
           "np.matmul(_ones(ws, da.shape[0], da.dtype), da * 0.999, out=grads[f\"{name}.b\"])"),
    Mutant("fused-adam-eps-unscaled", "fused_step.py",
           "                     adam.epsilon * c2)",
           "                     adam.epsilon)"),
    Mutant("fused-kl-dlog_var", "fused_step.py",
           "        dlog_var *= dt(0.5 * dkl)", "        dlog_var *= dt(dkl)"),
    Mutant("fused-adam-no-bias-correction", "fused_step.py",
           "lr_t = adam.lr * c2 / (1.0 - adam.beta1 ** adam.t)", "lr_t = adam.lr"),
    Mutant("fused-adam-v-decay", "fused_step.py", "    v *= dt(beta2)\n", "    v *= dt(beta1)\n"),
    # optim.py: Algorithm 1
    Mutant("adam-no-bias-correction", "optim.py", "m_hat = m / (1 - b1 ** t)", "m_hat = m"),
    Mutant("adam-v-not-squared", "optim.py", "v[...] = b2 * v + (1 - b2) * g * g",
           "v[...] = b2 * v + (1 - b2) * np.abs(g)"),
    Mutant("adam-epsilon-inside", "optim.py",
           "theta -= self.lr * m_hat / (np.sqrt(v_hat) + self.epsilon)",
           "theta -= self.lr * m_hat / np.sqrt(v_hat + self.epsilon)"),
    Mutant("sgd-momentum", "optim.py", "v *= dt(self.momentum)", "v *= dt(self.momentum ** 2)"),
    # estimators.py
    Mutant("estimators-log-k", "estimators.py",
           "            total[lo:hi] = np.logaddexp(total[lo:hi], logsumexp(log_w, axis=0))\n"
           "    return (total - math.log(k)).astype(model.dtype)",
           "            total[lo:hi] = np.logaddexp(total[lo:hi], logsumexp(log_w, axis=0))\n"
           "    return (total - math.log(k + 1)).astype(model.dtype)"),
    Mutant("estimators-log-ratio", "estimators.py",
           "log_ratio = -0.5 * (z64 * z64 - eps64 * eps64 - log_var.astype(np.float64)).sum(-1)",
           "log_ratio = -0.5 * (z64 * z64 - eps64 * eps64 + log_var.astype(np.float64)).sum(-1)"),
    Mutant("estimators-exact-2pi", "estimators.py",
           "return (-0.5 * (c.input_dim * LOG_2PI + log_det + maha)).astype(model.dtype)",
           "return (-0.5 * (LOG_2PI + log_det + maha)).astype(model.dtype)"),
    # checkpoint.py
    Mutant("checkpoint-sha-shape", "checkpoint.py",
           "h = hashlib.sha256(f\"{a.dtype.str}{a.shape}\".encode())",
           "h = hashlib.sha256(f\"{a.dtype.str}\".encode())"),
    Mutant("checkpoint-no-finite-check", "checkpoint.py",
           "if a.dtype.kind == \"f\" and not np.isfinite(a).all():",
           "if False and a.dtype.kind == \"f\" and not np.isfinite(a).all():"),
]


def apply(mutant: Mutant, tree: Path) -> None:
    """Replace the mutant's piece in its module under `tree` (exactly once)."""
    path = tree / "numpyvae" / mutant.module
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        raise SystemExit(f"mutant {mutant.name}: expected its piece once in "
                         f"numpyvae/{mutant.module}, found it {count} times")
    path.write_text(text.replace(mutant.original, mutant.mutated))


def first_failure(output: str) -> str:
    """The first 'FAILED tests/...' or 'ERROR tests/...' node of pytest's summary."""
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    return match.group(1) if match else "(collection or exit error)"


def run(mutant: Mutant, tree: Path) -> dict:
    apply(mutant, tree)
    env = {**os.environ, "CI": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "--no-header", "-o", "addopts=", *COVERS[mutant.module]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    killed = proc.returncode != 0
    return {"name": mutant.name, "module": mutant.module, "killed": killed,
            "by": first_failure(proc.stdout) if killed else "", "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="run the mutants whose name starts so")
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    chosen = [m for m in MUTANTS if m.name.startswith(args.only)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="numpyvae-mutants-") as tmp:
        clean = Path(tmp) / "clean"
        shutil.copytree(ROOT, clean, ignore=IGNORE)
        for m in chosen:  # every mutant's piece must be found before anything runs
            text = (clean / "numpyvae" / m.module).read_text()
            if text.count(m.original) != 1:
                raise SystemExit(f"mutant {m.name}: its piece is not found exactly once in "
                                 f"numpyvae/{m.module}")
        for m in chosen:
            tree = Path(tmp) / "mutant"
            shutil.copytree(clean, tree)
            row = run(m, tree)
            shutil.rmtree(tree)
            rows.append(row)
            state = "killed  " if row["killed"] else "SURVIVED"
            print(f"{m.name:<32} {state} {row['by']:<70} {row['seconds']:6.1f} s", flush=True)
    killed = sum(r["killed"] for r in rows)
    print(f"\n{killed} of {len(rows)} mutants killed ({100 * killed / max(len(rows), 1):.0f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

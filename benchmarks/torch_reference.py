"""The same VAEs in PyTorch, trained in the same run as numpyvae's and scored
by numpyvae's own estimators: the same-run reference of docs/results.md.

``train_torch_vae`` trains an MLP VAE (any depth, relu or tanh, Bernoulli
decoder from logits, diagonal Gaussian posterior, analytic KL) with
PyTorch's default nn.Linear initialisation and Adam, one reparameterized
sample per example, the loss summed over a batch and divided by its size,
exactly numpyvae's training loss. Options follow numpyvae's protocol
flags: dynamic binarization of every batch, the output bias at the logit
of the mean pixel, the IWAE paper's learning-rate stages compressed into
the epochs (`numpyvae.reference.optim.iwae_learning_rate`), Adam's epsilon.

``to_numpyvae`` copies the trained weights into a `numpyvae.VAE` of the
same architecture (nn.Linear's weight is (out, in): W = weight.T), so the
two implementations are scored by the same estimator on the same test
images. PyTorch is imported inside the functions; only benchmarks use it.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np


def torch_vae(hidden: tuple, latent_dim: int, activation: str, d_x: int, k: int = 1):
    """The PyTorch module; calling it on a batch gives the batch-mean loss
    -log p(x|z) + KL with one z per example, numpyvae's training loss; with
    k > 1 the batch mean of -IWAE_k (k samples of z per example, numpyvae's
    objective="iwae" loss).""" 
    import torch
    from torch import nn

    act = torch.relu if activation == "relu" else torch.tanh

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            enc, dec = [d_x, *hidden], [latent_dim, *hidden[::-1]]
            self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(enc))
            self.mu = nn.Linear(enc[-1], latent_dim)
            self.log_var = nn.Linear(enc[-1], latent_dim)
            self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dec))
            self.out = nn.Linear(dec[-1], d_x)

        def forward(self, x):
            h = x
            for layer in self.enc:
                h = act(layer(h))
            mu, log_var = self.mu(h), self.log_var(h)
            if k > 1:
                return self.iwae_loss(x, mu, log_var)
            h = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            for layer in self.dec:
                h = act(layer(h))
            logits = self.out(h)
            rec = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp())
            return (rec + kl) / x.shape[0]

        def iwae_loss(self, x, mu, log_var):
            eps = torch.randn((k, *mu.shape))
            z = mu + torch.exp(0.5 * log_var) * eps  # (k, n, d_z)
            h = z
            for layer in self.dec:
                h = act(layer(h))
            logits = self.out(h)  # (k, n, d_x)
            log_lik = -nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none").sum(-1)
            log_w = log_lik - 0.5 * (z * z - eps * eps - log_var).sum(-1)  # (k, n)
            return -(torch.logsumexp(log_w, 0) - math.log(k)).mean()

    return TorchVAE()


def train_torch_vae(x_train: np.ndarray, *, hidden: tuple, latent_dim: int, activation: str,
                    epochs: int, batch_size: int, seed: int, lr: float = 1e-3,
                    adam_epsilon: float = 1e-8, dynamic: bool = False,
                    init_output_bias: bool = False, lr_schedule: str = "constant",
                    threads: int | None = None):
    """Train the PyTorch VAE on float32 `x_train` in [0, 1]; the module."""
    import torch

    from numpyvae.reference.optim import iwae_learning_rate
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = torch_vae(tuple(hidden), latent_dim, activation, x_train.shape[1])
    if init_output_bias:  # numpyvae's VAE.init_output_bias: logit of the clipped mean pixel
        m = np.clip(x_train.mean(axis=0, dtype=np.float64), 1e-3, 1 - 1e-3)
        with torch.no_grad():
            model.out.bias.copy_(torch.from_numpy((np.log(m) - np.log1p(-m)).astype(np.float32)))
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=adam_epsilon)
    xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    for epoch in range(epochs):
        if lr_schedule == "iwae":
            for group in opt.param_groups:
                group["lr"] = iwae_learning_rate(epoch, epochs, lr)
        for idx in torch.randperm(len(xt)).split(batch_size):
            xb = xt[idx]
            if dynamic:
                xb = torch.bernoulli(xb)
            opt.zero_grad(set_to_none=True)
            model(xb).backward()
            opt.step()
    return model


def to_numpyvae(torch_model, *, hidden: tuple, latent_dim: int, activation: str, d_x: int):
    """A float32 numpyvae.VAE holding the PyTorch model's weights."""
    from numpyvae import VAE
    vae = VAE(d_x, latent_dim, hidden=tuple(hidden), activation=activation, rng=0)
    layers = {**{f"enc{i}": m for i, m in enumerate(torch_model.enc)},
              "mu": torch_model.mu, "log_var": torch_model.log_var,
              **{f"dec{i}": m for i, m in enumerate(torch_model.dec)}, "out": torch_model.out}
    for name, linear in layers.items():
        vae.params[f"{name}.W"] = linear.weight.detach().numpy().T.astype(np.float32).copy()
        vae.params[f"{name}.b"] = linear.bias.detach().numpy().astype(np.float32).copy()
    return vae


def mean_test_loss(vae, x_test: np.ndarray, seed: int) -> float:
    """-mean ELBO (one sampled z, analytic KL) of numpyvae's estimator: the
    pytorch/examples protocol's test loss, nats per example."""
    from numpyvae.estimators import elbo
    return -float(np.mean(elbo(vae, x_test, np.random.default_rng(seed)), dtype=np.float64))


def mean_iwae_nll(vae, x_test: np.ndarray, k: int, seed: int) -> tuple[float, float]:
    """(-mean IWAE-k bound, its Monte-Carlo standard error), nats."""
    from numpyvae.estimators import iwae_bound
    bound = iwae_bound(vae, x_test, k, np.random.default_rng(seed)).astype(np.float64)
    return -float(bound.mean()), float(bound.std(ddof=1) / math.sqrt(len(bound)))

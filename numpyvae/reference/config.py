"""A one-layer VAE's architecture and its initial weights.

`VAEConfig` is everything that defines the network (sizes, activation,
likelihood, posterior, dtype) and the names and shapes of its
parameters; `init_params` draws them, layer by layer, with the scheme
`layer_scheme` picks. The equations that use them are in model.py; the
two-layer model (hierarchy.py) draws its weights with the same schemes.
Imports numpy and layers.py only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from .layers import init_dense

Array = NDArray[np.floating]


@dataclass(frozen=True)
class VAEConfig:
    """Everything that defines a VAE's architecture (validated by `VAE`).

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,))
    >>> config.layer_names()
    ['enc0', 'mu', 'log_var', 'dec0', 'out']
    >>> config.param_shapes()["enc0.W"], config.param_shapes()["out.W"]
    ((3, 4), (4, 3))
    """

    input_dim: int
    latent_dim: int
    hidden: tuple = (400,)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    sigma: float | None = None
    posterior: str = "diagonal"
    delta: float | None = None
    dtype: str = "float32"

    @property
    def noise_dim(self) -> int:
        """d_z: one sample's noise eps."""
        return self.latent_dim

    @property
    def gaussian_sigma(self) -> float:
        """sigma of the Gaussian decoder (the Bernoulli one has none)."""
        if self.sigma is None:
            raise ValueError(f"sigma: the {self.likelihood} decoder has no sigma")
        return self.sigma

    @property
    def fixed_delta(self) -> float:
        """delta of the fixed-width posterior (the diagonal one has none)."""
        if self.delta is None:
            raise ValueError(f"delta: the {self.posterior} posterior has no delta")
        return self.delta

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def layer_names(self) -> list[str]:
        """Dense layers in forward order."""
        n = len(self.hidden)
        heads = ["mu", "log_var"] if self.posterior == "diagonal" else ["mu"]
        return ([f"enc{i}" for i in range(n)] + heads
                + [f"dec{i}" for i in range(n)] + ["out"])

    def layer_shapes(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) of every dense layer; the decoder mirrors the encoder."""
        enc = [self.input_dim, *self.hidden]
        dec = [self.latent_dim, *reversed(self.hidden), self.input_dim]
        shapes = {f"enc{i}": (enc[i], enc[i + 1]) for i in range(len(self.hidden))}
        shapes["mu"] = (enc[-1], self.latent_dim)
        if self.posterior == "diagonal":
            shapes["log_var"] = (enc[-1], self.latent_dim)
        for i in range(len(self.hidden)):
            shapes[f"dec{i}"] = (dec[i], dec[i + 1])
        shapes["out"] = (dec[-2], dec[-1])
        return shapes

    def param_shapes(self) -> dict[str, tuple]:
        """Shape of every parameter array, in forward order."""
        out: dict[str, tuple] = {}
        for name, (d_in, d_out) in self.layer_shapes().items():
            out[f"{name}.W"] = (d_in, d_out)
            out[f"{name}.b"] = (d_out,)
        return out


INIT_SCHEMES = ("auto", "he", "lecun")


def layer_scheme(init: str, relu_network: bool, hidden_layer: bool) -> str:
    """The `layers.init_dense` scheme of one dense layer under `init`.

    "auto" (the default, chosen by measurement in docs/results.md):
    PyTorch's nn.Linear scale U(+-1/sqrt(d_in)) ("lecun") in every layer
    of a network with relu hidden layers, Glorot in every layer of the
    others (tanh and the other activations, or no hidden layer). "he": He
    before a relu, Glorot elsewhere. "lecun": U(+-1/sqrt(d_in)) everywhere.

    Examples
    --------
    >>> layer_scheme("auto", True, True), layer_scheme("auto", False, True)
    ('lecun', 'glorot')
    >>> layer_scheme("he", True, True), layer_scheme("he", True, False)
    ('he', 'glorot')
    """
    if init == "auto":
        return "lecun" if relu_network else "glorot"
    if init == "lecun":
        return "lecun"
    return "he" if hidden_layer and relu_network else "glorot"


def init_params(config: VAEConfig, rng: np.random.Generator,
                init: str = "auto") -> dict[str, Array]:
    """Draw initial weights, layer by layer in forward order (each layer's
    scheme from `layer_scheme`); biases start at zero.

    Examples
    --------
    >>> config = VAEConfig(3, 2, hidden=(4,), dtype="float64")
    >>> params = init_params(config, np.random.default_rng(0))
    >>> params["enc0.W"].shape, params["enc0.b"].dtype
    ((3, 4), dtype('float64'))
    >>> bool(np.all(params["out.b"] == 0))
    True
    """
    params = {}
    for name, (d_in, d_out) in config.layer_shapes().items():
        relu_network = config.activation == "relu" and bool(config.hidden)
        scheme = layer_scheme(init, relu_network, name.startswith(("enc", "dec")))
        W, b = init_dense(rng, d_in, d_out, config.dtype, scheme)
        params[f"{name}.W"], params[f"{name}.b"] = W, b
    return params

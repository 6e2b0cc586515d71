"""numpyvae: a variational autoencoder in pure NumPy.

Every gradient is written by hand and checked against finite
differences. See docs/math-to-code.md for where each equation lives.
"""

from .gradcheck import gradcheck
from .optim import SGD, Adam
from .vae import VAE

__version__ = "0.1.0"

__all__ = ["Adam", "SGD", "VAE", "gradcheck", "__version__"]

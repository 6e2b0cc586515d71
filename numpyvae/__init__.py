"""numpyvae: a variational autoencoder in pure NumPy.

Every gradient is written by hand and checked against finite
differences. See docs/math-to-code.md for where each equation lives.
"""

from .checkpoint import CheckpointError, load, load_checkpoint, save
from .estimator import NotFittedError, VAEEstimator
from . import gradcheck
from .gradcheck import check_gradients
from .hierarchical_vae import HierarchicalVAE
from .optim import SGD, Adam
from .train import fit
from .trainer import Trainer, TrainingDiverged
from .vae import VAE

__version__ = "0.1.0"

__all__ = [
    "Adam", "CheckpointError", "HierarchicalVAE", "NotFittedError", "SGD", "Trainer",
    "TrainingDiverged", "VAE", "VAEEstimator",
    "check_gradients", "fit", "gradcheck", "load", "load_checkpoint", "save", "__version__",
]

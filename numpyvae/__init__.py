"""numpyvae: a variational autoencoder in pure NumPy.

Every gradient is written by hand and checked against finite
differences. See docs/math-to-code.md for where each equation lives and
docs/reading-order.md for the path through the code.

The folders are the architecture, each import running downhill:
numpyvae/reference/ holds the equations (what a learner reads),
numpyvae/fast/ the same contracts made fast, the modules here the
objects users hold (the two models behind one protocol, training,
checkpoints, the log p(x) estimators, the data sets), numpyvae/checks/
the gradient checkers and testing helpers, numpyvae/app/ the command
line, run folders, sweeps and experiments. This file only hands the
public names on; no module of the package imports it. The rule of the
modules at the top (``numpyvae`` = each other; tests/test_layout.py
holds every folder to its rule):

May import: numpy, scipy, tqdm, numpyvae, numpyvae.reference, numpyvae.fast.
"""

from . import gradcheck
from .app.sklearn_estimator import NotFittedError, VAEEstimator
from .checkpoint import CheckpointError, load, load_checkpoint, save
from .gradcheck import check_gradients
from .hierarchical_vae import HierarchicalVAE
from .reference.optim import SGD, Adam
from .train import fit
from .trainer import Trainer, TrainingDiverged
from .vae import VAE
from .version import __version__

__all__ = [
    "Adam", "CheckpointError", "HierarchicalVAE", "NotFittedError", "SGD", "Trainer",
    "TrainingDiverged", "VAE", "VAEEstimator",
    "check_gradients", "fit", "gradcheck", "load", "load_checkpoint", "save",
    "__version__",
]

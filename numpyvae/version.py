"""numpyvae's version: one string, in a module that imports nothing.

Checkpoints, experiment records and ``numpyvae --version`` read it from
here, so none of them imports the package's ``__init__`` (and with it the
scikit-learn estimator and the CLI-facing names).
"""

__version__ = "0.1.0"

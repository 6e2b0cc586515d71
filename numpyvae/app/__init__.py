"""The application: what runs on the command line and what a run folder holds.

The CLI verbs (``cli``, ``cli_parser``, ``cli_gradcheck``), the run
folders (``run_folder``: ownership, locks and records; ``run_trainer``:
a model and trainer from settings; ``run_pictures``; ``runs``: the main
job), ``settings``, the sweeps, the experiments of the notes, the
pictures (``plots``), ``export``, and the scikit-learn estimator
(``sklearn_estimator``, ``sklearn_input``). It sits on top of everything
else and nothing below imports it: the package's ``__init__`` (the public
names) and ``__main__`` are the only ways in.

May import: numpy, scipy, matplotlib, sklearn, joblib, dask, threadpoolctl, tomli, numpyvae, numpyvae.reference, numpyvae.checks, numpyvae.app.
Imported only by: numpyvae.__init__, numpyvae.__main__, numpyvae.app.
"""

"""Package-level contracts: the core imports only numpy, scipy and the
standard library, and exposes its version and public names."""

import subprocess
import sys

import numpyvae

OPTIONAL = ("matplotlib", "sklearn", "hypothesis", "joblib", "dask", "tqdm", "torch",
            "threadpoolctl", "pytest")


def test_importing_every_module_pulls_in_no_optional_package():
    code = (
        "import importlib, pkgutil, sys, numpyvae\n"
        "for m in pkgutil.iter_modules(numpyvae.__path__):\n"
        "    importlib.import_module('numpyvae.' + m.name)\n"
        f"print(sorted(n for n in {OPTIONAL!r} if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_version_and_public_names():
    assert numpyvae.__version__.count(".") == 2
    for name in ("VAE", "fit", "save", "load", "Adam", "SGD", "gradcheck", "check_gradients",
                 "VAEEstimator"):
        assert name in numpyvae.__all__ and hasattr(numpyvae, name)


def test_gradcheck_is_one_thing_however_it_is_imported():
    """The module, whether imported as a module or taken from the package;
    its constants are reachable (the docs cite numpyvae.gradcheck.FD_STEP)."""
    import numpyvae.gradcheck as as_module
    from numpyvae import gradcheck as from_package
    assert as_module is from_package is sys.modules["numpyvae.gradcheck"]
    assert numpyvae.gradcheck.FD_STEP == 1e-5
    assert numpyvae.check_gradients is as_module.check_gradients

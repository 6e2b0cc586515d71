"""``numpyvae.testing``: hypothesis strategies and gradient assertions for your own layers.

They live in numpyvae/checks/testing.py (read its docstring for how the
strategies keep away from relu's kink); this module only hands their
public names on, under the path users import.
"""

from .checks.testing import (
                             KINK_MARGIN,
                             MAX_TRIES,
                             SEEDS,
                             arrays_for_layer,
                             assert_grad_close,
                             assert_vjp_close,
                             batches,
                             check_log_weights_gradients,
                             hidden_pre_activations,
                             make_batch,
                             make_layer_arrays,
                             relu_margin,
                             vae_configs,
                             vae_models,
)

__all__ = [
    "KINK_MARGIN", "MAX_TRIES", "SEEDS", "arrays_for_layer", "assert_grad_close",
    "assert_vjp_close", "batches", "check_log_weights_gradients", "hidden_pre_activations",
    "make_batch", "make_layer_arrays", "relu_margin", "vae_configs", "vae_models",
]

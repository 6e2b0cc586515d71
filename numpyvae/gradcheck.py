"""``numpyvae.gradcheck``: every gradient checker under the path users import.

The checkers live in numpyvae/checks/: entry-wise central differences
(``checks.gradcheck``), directional checks with Richardson extrapolation
(``checks.directional``) and their shared step rule (``checks.fd_setup``).
This module only hands their public names on.
"""

from .checks.directional import (
                                 DIRECTIONAL_LEVELS,
                                 DIRECTIONAL_RTOL,
                                 DIRECTIONAL_STEP,
                                 N_DIRECTIONS,
                                 ROUNDING,
                                 DirectionalReport,
                                 check_directional,
                                 check_model_directional,
                                 check_vjp_jvp,
                                 random_directions,
                                 richardson_derivative,
)
from .checks.fd_setup import model_loss, require_float64
from .checks.gradcheck import (
                                 ABS_TOL,
                                 FD_STEP,
                                 NOISE_FLOOR,
                                 NORMWISE_TOL,
                                 REL_TOL,
                                 GradcheckReport,
                                 InputCheck,
                                 check_gradients,
                                 check_model,
                                 compare_gradients,
                                 directional_derivatives,
                                 numerical_gradient,
                                 numerical_vjp,
)

__all__ = [
    "ABS_TOL", "DIRECTIONAL_LEVELS", "DIRECTIONAL_RTOL", "DIRECTIONAL_STEP", "FD_STEP",
    "NOISE_FLOOR", "NORMWISE_TOL", "N_DIRECTIONS", "REL_TOL", "ROUNDING", "DirectionalReport",
    "GradcheckReport", "InputCheck", "check_directional", "check_gradients", "check_model",
    "check_model_directional", "check_vjp_jvp", "compare_gradients", "directional_derivatives",
    "model_loss", "numerical_gradient", "numerical_vjp", "random_directions",
    "require_float64", "richardson_derivative",
]

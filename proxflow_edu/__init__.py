"""proxflow_edu: W1 (+) W2 proximal generative flows (arXiv 2407.11901), a teaching package.

Modules, one concept each: ``data`` (toys, priors, MNIST), ``nets`` (U and phi), ``flow`` (the Euler flow),
``divergences`` (DV dual, gradient penalty), ``train`` (Algorithms 1-2), ``diagnostics`` (KE, HJ residual,
terminal error, straightness, discretisation gap), ``metrics`` (W2, noise floor, off-manifold distance, MMD),
``checkpoint`` and ``plotting``.
"""
from .data import embedding, sample_prior, sample_toy
from .diagnostics import (discretization_gap, hj_residual, kinetic_energy, straight_line_path, straightness,
                          terminal_error)
from .divergences import gradient_penalty, lipschitz_kl_dual
from .flow import euler_flow, generate
from .metrics import mmd, noise_floor, off_manifold_distance, w2_distance
from .train import PRESETS, VARIANTS, FlowConfig, TrainResult, train

__version__ = "0.1.0"
__all__ = [
    "FlowConfig", "PRESETS", "TrainResult", "VARIANTS", "discretization_gap", "embedding", "euler_flow",
    "generate", "gradient_penalty", "hj_residual", "kinetic_energy", "lipschitz_kl_dual", "mmd", "noise_floor",
    "off_manifold_distance", "sample_prior", "sample_toy", "straight_line_path", "straightness", "terminal_error",
    "train", "w2_distance",
]

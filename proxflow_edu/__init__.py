"""proxflow_edu: W1 (+) W2 proximal generative flows (arXiv 2407.11901), a teaching package.

One concept per module:

* ``algorithm``: Algorithms 1-2 as ``discriminator_step`` and ``potential_step`` (start reading here);
* ``train``: the driver ``train()`` around them and the ``TrainResult``; ``config``: ``FlowConfig``, presets;
* ``flow``: the Euler flow (39); ``objectives``: DV dual (40), gradient penalty (41), kinetic energy;
* ``mfg``: the optimality system (20)-(21) per sample: the HJ residual and the terminal-condition gap;
* ``wellposed``: named extra terms of (42) that vanish at the MFG optimum (velocity change, HJ penalty, terminal gap);
* ``nets``: U and phi for the toys, and the one input-gradient path;
* ``diagnostics``: HJ residual, terminal error, straightness, discretisation gap;
* ``utils`` (atomic writes, seeded generators), ``data`` (toys, priors), ``metrics`` (W2, noise floor,
  off-manifold distance, MMD), ``checkpoint``;
* ``course``: the notebooks' helpers (``course.plotting``, ``course.parameters``), not part of the method;
* ``mnist``: MNIST data offline, the paper's CNNs, a classifier for scoring.

The package root re-exports the most used functions (``FlowConfig`` and the presets are imported from ``config``
only); none of them hides a submodule, so
``proxflow_edu.train`` is the module (the function is ``proxflow_edu.train.train``).
"""
from .algorithm import DiscriminatorStep, PotentialStep, discriminator_step, potential_step
from .data import embedding, sample_prior, sample_toy
from .diagnostics import discretization_gap, hj_residual, straight_line_path, straightness, terminal_error
from .flow import EulerPath, euler_flow
from .metrics import mmd, noise_floor, off_manifold_distance, w2_distance
from .objectives import gradient_penalty, kinetic_energy, lipschitz_kl_dual
from .train import TrainResult

__version__ = "0.2.0"
__all__ = [
    "DiscriminatorStep", "EulerPath", "PotentialStep", "TrainResult",
    "discretization_gap", "discriminator_step", "embedding", "euler_flow", "gradient_penalty", "hj_residual",
    "kinetic_energy", "lipschitz_kl_dual", "mmd", "noise_floor", "off_manifold_distance", "potential_step",
    "sample_prior", "sample_toy", "straight_line_path", "straightness", "terminal_error", "w2_distance",
]

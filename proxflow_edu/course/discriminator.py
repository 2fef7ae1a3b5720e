"""Algorithm 1 on its own, on fixed samples: how the DV estimate behaves with and without the Lipschitz bound
(notebook 02). Not part of training (:func:`proxflow_edu.train.train` runs the same step inside its loop)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..algorithm import discriminator_step
from ..config import FlowConfig
from ..train import adam


def fit_discriminator(discriminator: nn.Module, x_generated: Tensor, x_target: Tensor, steps: int,
                      config: FlowConfig, generator: torch.Generator | None = None,
                      callback: Callable[[int, nn.Module], None] | None = None) -> list[float]:
    """Algorithm 1 alone on fixed samples of P (n, *event) and Q (m, *event): the DV estimate of each of ``steps``.

    A teaching tool: without the Lipschitz bound (``config.variant`` "unregularized" or "w2") the estimate grows
    without limit between mutually singular P and Q. ``callback(step, discriminator)`` runs after every step.
    """
    opt = adam(discriminator, config.lr_discriminator, config)
    estimates = []
    for step in range(steps):
        x = x_generated[torch.randint(len(x_generated), (config.batch_size,), generator=generator)]
        y = x_target[torch.randint(len(x_target), (config.batch_size,), generator=generator)]
        estimates.append(discriminator_step(discriminator, opt, x, y, config, generator).divergence)
        if callback is not None:
            callback(step, discriminator)
    return torch.stack(estimates).tolist() if estimates else []

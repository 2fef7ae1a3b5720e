"""FlowConfig: everything that defines a training run, validated on construction, and the one preset registry.

The defaults (preset ``lecture_toy_paper``) are the paper's algorithm, every well-posedness option off, at a lecture
budget that learns a toy manifold in R^2 ... R^12 in a minute on 2 CPU cores: the rule of benchmarks/wellposed.py
chose them. ``lecture_toy_straight`` is the course's straight recipe (its second rule); ``paper_toy_2d`` and
``paper_toy_highdim`` hold the authors' repository's toy settings (method.md §8). Only lambda / T enters (19).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .data import PRIORS
from .flow import num_steps
from .nets import NETWORK_SIZES

VARIANTS = ("unregularized", "w2", "w1", "w1w2")
ARCHS = ("mlp", "mnist_cnn")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")


@dataclass
class FlowConfig:
    """Everything that defines a training run; a bad field raises ValueError naming it. Example:

        >>> FlowConfig(lam=0.05).replace(hj_weight=0.0).uses_w2
        True
    """

    # --- the problem (method.md §2-§5)
    variant: str = "w1w2"       # "unregularized" (46), "w2" (47), "w1" (48) or "w1w2" (49)
    T: float = 1.0              # horizon
    h: float = 0.2              # training Euler step; T/h must be an integer N
    lam: float = 0.1            # lambda, the kinetic-energy (W2-proximal) weight; v = -grad U / lambda
    L: float = 1.0              # Lipschitz bound of phi (W1 proximal), variants "w1" and "w1w2"
    gp_weight: float = 0.1      # gamma, the weight of the gradient penalty (41)
    prior: str = "gaussian"     # rho_0: "gaussian" N(0, I) or "uniform" U[0, 0.5]^d (the paper's MNIST prior)
    # --- the networks: None takes the architecture's entry of nets.NETWORK_SIZES (the paper's sizes)
    arch: str = "mlp"           # "mlp" (toys: 48x5 tanh U, 48x3 ReLU phi) or "mnist_cnn" (the paper's CNNs)
    potential_width: int | None = None      # hidden units of U's MLP (arch "mlp") or of its CNN's MLP head
    potential_depth: int | None = None      # hidden layers of the same
    discriminator_width: int | None = None  # the same for phi
    discriminator_depth: int | None = None
    smooth_potential: bool = False  # softplus instead of ReLU in the MNIST potential (C^2, so the HJ argument holds)
    # --- the optimiser
    n_iters: int = 1500         # potential updates
    batch_size: int = 200       # M
    disc_steps: int = 5         # discriminator updates per iteration (Algorithm 1's K)
    lr_potential: float = 1e-3  # Adam learning rate of U
    lr_discriminator: float = 5e-4
    lr_schedule: str = "cosine"  # "constant" (paper) or "cosine" (both rates decay to lr_final_fraction)
    lr_final_fraction: float = 0.05
    adam_betas: tuple[float, float] = (0.5, 0.9)
    # --- the run
    seed: int = 0               # seeds the initialisation and every minibatch
    device: str = "cpu"         # "cpu" or "cuda[:k]"
    precision: str = "fp32"     # "bf16": the networks' convolutions and matmuls in bfloat16 (nets.MixedPrecision)
    log_every: int = 50         # iterations between history entries
    max_divergence: float = 1e3  # stop when the DV estimate exceeds this (unregularised runs climb to 1e5-1e6, §6 d6)
    # --- well-posedness options (book/method.md §4; off in the paper's presets; proxflow_edu.wellposed)
    velocity_change_weight: float = 0.0  # beta: + beta (1/M) sum_i sum_n |v_{n+1} - v_n|^2 / 2, zero on straight paths
    hj_weight: float = 0.0      # + T Var_i(d_t U - |grad U|^2 / (2 lambda)) at one t ~ U[0, T), HJ (20) centred
    terminal_weight: float = 0.0  # + mean |grad U(x_N, T) - grad phi(x_N)|^2, the terminal condition (21)
    random_time_grid: bool = False  # jitter the potential step's interior times, t_n = (n + u_n) h, u_n ~ U(-1/2, 1/2)
    ema_decay: float = 0.0      # in [0, 1), 0 = off: sample with an exponential moving average of U's weights

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        for name, allowed in (("variant", VARIANTS), ("prior", PRIORS), ("arch", ARCHS),
                              ("lr_schedule", LR_SCHEDULES), ("precision", PRECISIONS)):
            _check(getattr(self, name) in allowed, name, self, f"one of {', '.join(allowed)}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            _check(not any(isinstance(v, float) and not math.isfinite(v) for v in values), f.name, self, "finite")
        for name in ("T", "h", "lam", "L", "lr_potential", "lr_discriminator", "lr_final_fraction", "max_divergence"):
            _check(getattr(self, name) > 0, name, self, "> 0")
        sizes = ("potential_width", "potential_depth", "discriminator_width", "discriminator_depth")
        at_least = {"batch_size": 1, "disc_steps": 1, "n_iters": 0, "log_every": 1, "seed": 0,
                    **dict.fromkeys(sizes, 1)}
        for name, low in at_least.items():
            value = getattr(self, name)
            _check((value is None and name in sizes) or (_is_int(value) and value >= low), name, self,
                   f"an integer >= {low}")
        for name in ("gp_weight", "velocity_change_weight", "hj_weight", "terminal_weight"):
            _check(_is_number(getattr(self, name)) and getattr(self, name) >= 0, name, self, "a number >= 0")
        for name in ("random_time_grid", "smooth_potential"):
            _check(isinstance(getattr(self, name), bool), name, self, "True or False")
        _check(not self.smooth_potential or self.arch == "mnist_cnn", "smooth_potential", self,
               f"False for arch={self.arch!r} (it applies to arch='mnist_cnn'; the toy potential is tanh already)")
        _check(_is_number(self.ema_decay) and 0 <= self.ema_decay < 1, "ema_decay", self, "in [0, 1) (0 = off)")
        _check(self.lr_final_fraction <= 1, "lr_final_fraction", self, "in (0, 1]")
        _check(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas), "adam_betas", self,
               "two numbers in [0, 1)")
        try:
            num_steps(self.T, self.h)
        except ValueError as err:
            raise ValueError(f"T/h: {err}") from None
        _check(self.device == "cpu" or self.device.startswith("cuda"), "device", self, "'cpu' or 'cuda[:k]'")
        if self.random_time_grid and self.n_steps < 2:
            raise ValueError(f"random_time_grid needs T/h >= 2 steps (there is no interior time to jitter), "
                             f"got T/h={self.n_steps}")

    @property
    def uses_w1(self) -> bool:
        """Lipschitz-regularised discriminator (gradient penalty), variants (48)-(49)."""
        return self.variant in ("w1", "w1w2")

    @property
    def uses_w2(self) -> bool:
        """Kinetic energy lambda KE_h in the potential loss, variants (47), (49)."""
        return self.variant in ("w2", "w1w2")

    @property
    def n_steps(self) -> int:
        """N = T / h."""
        return num_steps(self.T, self.h)

    def network_size(self, network: str) -> tuple[int, int]:
        """(width, depth) of ``network`` ("potential" or "discriminator"), the architecture's default for None."""
        default_width, default_depth = NETWORK_SIZES[self.arch][network]
        width, depth = getattr(self, f"{network}_width"), getattr(self, f"{network}_depth")
        return (default_width if width is None else width, default_depth if depth is None else depth)

    def replace(self, **changes: Any) -> FlowConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowConfig:
        """The config of ``d`` (e.g. ``to_dict()`` of a run); missing fields take the defaults, unknown ones raise."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown FlowConfig fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FlowConfig:
        """A named setting from :data:`PRESETS`, with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset name={name!r}; allowed: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok: bool, name: str, config: FlowConfig, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {rule}, got {name}={getattr(config, name)!r}")


# The well-posedness options switched off: the paper's algorithm (and every run saved before they existed,
# which checkpoint.load reads with them off).
OFF: dict[str, Any] = dict(velocity_change_weight=0.0, hj_weight=0.0, terminal_weight=0.0, random_time_grid=False,
                           ema_decay=0.0, smooth_potential=False)

_PAPER_TOY = dict(OFF, T=1.0, h=0.2, n_iters=25_000, batch_size=200, disc_steps=5, lr_potential=1e-4,
                  lr_discriminator=2e-5, lr_schedule="constant", L=1.0)
# The one preset registry: notebooks, scripts and benchmarks name settings only from here.
PRESETS: dict[str, dict[str, Any]] = {
    # FlowConfig(): the paper's algorithm (every option off) at the lecture budget, for side-by-side comparisons
    # and as the reference of the rules in benchmarks/wellposed.py; its optimiser is written out so that it stays
    # what the rules measured if the defaults change
    "lecture_toy_paper": dict(OFF, n_iters=1500, disc_steps=5, lr_potential=1e-3, lr_discriminator=5e-4,
                              lr_schedule="cosine", lr_final_fraction=0.05),
    # the course's straight recipe (benchmarks/wellposed.py, RECIPE_RULE): velocity change 0.3, twice the learning
    # rates, 2 discriminator steps, and the iterations that fit the same 60 s as lecture_toy_paper's 1,400
    "lecture_toy_straight": dict(OFF, n_iters=1800, disc_steps=2, lr_potential=2e-3, lr_discriminator=1e-3,
                                 lr_schedule="cosine", lr_final_fraction=0.05, velocity_change_weight=0.3),
    "paper_toy_2d": dict(_PAPER_TOY, lam=0.5, gp_weight=0.1),
    "paper_toy_highdim": dict(_PAPER_TOY, lam=0.1, gp_weight=0.01),
    "paper_mnist": dict(OFF, arch="mnist_cnn", prior="uniform", T=5.0, h=1.0, lam=0.05, L=1.0, gp_weight=0.1,
                        n_iters=5000, batch_size=200, disc_steps=5, lr_potential=5e-4, lr_discriminator=1e-4,
                        lr_schedule="constant", log_every=100, max_divergence=1e4),
}
# The paper's MNIST model, loss, T, h, lambda, L, prior and lr_U, sized for a 2-core CPU (notebook 07,
# benchmarks/mnist.json): batch 64 instead of 200, 1800 instead of 5000 iterations, lr_phi 2.5e-4 instead of 1e-4,
# cosine decay, and gamma = 1 instead of 0.1. With the paper's gamma = 0.1 the soft penalty (41) leaves phi with
# slope |grad phi| ~ 6 = 6 L, so the divergence acts like the nearly mode-seeking KL and the short run collapses
# onto a few digits (mostly 4-6); gamma = 1 keeps the slope near L and every digit appears (notebook 07, section 3b).
PRESETS["cpu_mnist_paper"] = dict(PRESETS["paper_mnist"], batch_size=64, lr_discriminator=2.5e-4, gp_weight=1.0,
                                  lr_schedule="cosine", n_iters=1800, log_every=10)
# The course's recommended MNIST run so far (checkpoints/mnist_w1w2): cpu_mnist_paper with the velocity-change and
# HJ penalties at weight 1, chosen on two toys before the rules of benchmarks/wellposed.py existed; its successor is
# chosen by benchmarks/mnist_recipe.py. What the penalties change on MNIST is the "mnist" part of
# benchmarks/wellposed.json (notebook 08)
PRESETS["cpu_mnist"] = dict(PRESETS["cpu_mnist_paper"], velocity_change_weight=1.0, hj_weight=1.0)

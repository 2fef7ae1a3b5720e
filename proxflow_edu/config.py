"""FlowConfig: everything that defines a training run, validated on construction, and the named presets."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .data import PRIORS
from .flow import num_steps

VARIANTS = ("unregularized", "w2", "w1", "w1w2")
ARCHS = ("mlp", "mnist_cnn")
LR_SCHEDULES = ("constant", "cosine")
# network sizes (width, depth) per architecture when the config leaves them at None
NETWORK_SIZES = {"mlp": {"potential": (48, 5), "discriminator": (48, 3)},
                 "mnist_cnn": {"potential": (512, 3), "discriminator": (256, 3)}}


@dataclass
class FlowConfig:
    """Everything that defines a training run. Validated on construction: a bad field raises ValueError naming it.

    Defaults are a lecture setting that learns a toy manifold in R^2 ... R^12 in about a
    minute on a 2-core CPU. The paper's toy setting differs (method.md §8): lambda = 0.5
    (2-D) / 0.1 (7-D, 12-D), gp_weight 0.1 / 0.01, lr 1e-4 (U) and 2e-5 (phi), 25,000 iterations,
    and none of the well-posedness options below. The defaults turn two of them on, the velocity-change and
    HJ penalties at weight 1 each: the best combination of benchmarks/wellposed.json ("well-posed in practice");
    the preset ``lecture_toy_paper`` is the same lecture setting with every option off (the paper's algorithm);
    see :data:`PRESETS`. Only lambda / T enters the continuous objective.

    Attributes:
        variant: "unregularized" (46), "w2" (47), "w1" (48) or "w1w2" (49).
        T: horizon; h: training Euler step (T/h must be an integer).
        lam: lambda, the kinetic-energy (W2-proximal) weight; velocity v = -grad U / lambda.
        L: Lipschitz bound of phi (W1 proximal); used by "w1" and "w1w2".
        gp_weight: gamma, weight of the gradient penalty.
        n_iters: potential updates; batch_size: M; disc_steps: discriminator updates per iteration.
        lr_potential, lr_discriminator: Adam learning rates (betas = adam_betas).
        lr_schedule: "constant" (paper) or "cosine" (decays both rates to lr_final_fraction).
        seed: seeds the networks' initialisation and every minibatch.
        device: "cpu" or "cuda[:k]".
        prior: "gaussian" N(0, I) or "uniform" U[0, 0.5]^d (the paper's MNIST prior).
        arch: "mlp" (toys) or "mnist_cnn" (the paper's CNNs).
        potential_width/depth, discriminator_width/depth: hidden units and hidden layers of the MLP (arch
            "mlp") or of the CNN's MLP head ("mnist_cnn"); None takes the paper's :data:`NETWORK_SIZES`
            (MLP: 48x5 tanh for U, 48x3 ReLU for phi; CNN heads: 512x3 and 256x3).
        log_every: iterations between history entries.
        max_divergence: the run is declared diverged when the DV estimate exceeds this
            (the unregularised runs climb to 1e5-1e6 without producing NaN, §6 d6).

    Well-posedness options (book/method.md §4; all off in the ``paper_*`` presets; a config dict without them,
    e.g. of a checkpoint saved before they existed, reads them as off, :data:`OFF`). Terms that *vanish at the
    MFG optimum* are zero on the exact solution of (20)-(21), whose characteristics are straight lines at
    constant speed (22)-(29): they do not bias the solution, they only penalise being away from it. The three
    loss terms belong to the optimality system of the W2 proximal (without kinetic energy there is no HJ
    equation, method.md §4), so, like lambda KE_h itself, they are used by "w2" and "w1w2" only: the variants
    "unregularized" (46) and "w1" (48) keep their objectives whatever the weights. Measured effect of each:
    benchmarks/wellposed.json.

        velocity_change_weight: beta >= 0 (default 1). Adds
            beta (1/M) sum_i sum_n |v_{n+1}^i - v_n^i|^2 / 2 along the Euler path to J_G (42)
            (:func:`~proxflow_edu.wellposed.velocity_change`). Vanishes at the optimum: along characteristics
            Dv/Dt = -grad_x(HJ residual)/lambda = 0 (24), so the v_n of the path are all equal and Euler is exact
            at every h; a discrete first-order surrogate of the HJ residual that needs no extra network
            evaluation (the v_n are those of the Euler steps).
        hj_weight: >= 0 (default 1). Adds T (1/M) sum_i (r_i - mean r)^2 with
            r = d_t U - |grad_x U|^2/(2 lambda), the HJ residual (20), at one random t ~ U[0, T) per batch and the
            path's points x(t) (detached; the Euler path is piecewise linear in t)
            (:func:`~proxflow_edu.wellposed.hj_penalty`). Vanishes at the optimum; centred because only grad_x U
            enters the flow and U + c(t) is as good as U (OT-Flow's penalty; the authors' unused option "PG"
            with the correct sign, method.md §6 c).
        terminal_weight: >= 0. Adds (1/M) sum_i |grad_x U(x_N^i, T) - grad phi(x_N^i)|^2 (phi fixed, x_N
            detached), the terminal condition (21) U(., T) = phi* in gradient form
            (:func:`~proxflow_edu.wellposed.terminal_gap`; the authors' unused option "OC"). Vanishes at the
            optimum (phi = phi*); note that the Euler steps evaluate U only at t_0..t_{N-1} < T.
        random_time_grid: jitter the interior times of the potential step's Euler path, t_n = (n + u_n) h with
            u_n ~ U(-1/2, 1/2) per iteration (N steps kept, t_0 = 0, t_N = T; needs N >= 2). The discriminator
            and sampling keep the uniform grid. Does not change the continuous problem; it changes the discrete
            one (U is trained at all t, not only at t_n = n h).
        ema_decay: in [0, 1), 0 = off. The driver keeps an exponential moving average of U's weights,
            theta_ema <- decay theta_ema + (1 - decay) theta after every potential update, and
            :class:`~proxflow_edu.train.TrainResult` samples with it (``potential`` keeps the raw weights).
            Changes no loss: it averages the oscillation of the two-player game, not the objective.
        smooth_potential: softplus instead of ReLU in the MNIST potential (arch "mnist_cnn" only; the toy
            potential is tanh, smooth already). Changes the model, not the loss: the paper's ReLU CNN is piecewise
            linear in x, so grad_x U is piecewise constant and D^2 U = 0 almost everywhere, while the HJ equation
            and the straight-characteristics argument assume U in C^2 (notebook 06, section 5).
    """

    variant: str = "w1w2"
    T: float = 1.0
    h: float = 0.2
    lam: float = 0.1
    L: float = 1.0
    gp_weight: float = 0.1
    n_iters: int = 1500
    batch_size: int = 200
    disc_steps: int = 5
    lr_potential: float = 1e-3
    lr_discriminator: float = 5e-4
    lr_schedule: str = "cosine"
    lr_final_fraction: float = 0.05
    adam_betas: tuple[float, float] = (0.5, 0.9)
    seed: int = 0
    device: str = "cpu"
    prior: str = "gaussian"
    arch: str = "mlp"
    potential_width: int | None = None
    potential_depth: int | None = None
    discriminator_width: int | None = None
    discriminator_depth: int | None = None
    log_every: int = 50
    max_divergence: float = 1e3
    velocity_change_weight: float = 1.0
    hj_weight: float = 1.0
    terminal_weight: float = 0.0
    random_time_grid: bool = False
    ema_decay: float = 0.0
    smooth_potential: bool = False

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        for name, allowed in (("variant", VARIANTS), ("prior", PRIORS), ("arch", ARCHS),
                              ("lr_schedule", LR_SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {name}={getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, tuple) else (value,))):
                raise ValueError(f"{f.name} must be finite, got {f.name}={value}")
        for name in ("T", "h", "lam", "L", "lr_potential", "lr_discriminator", "lr_final_fraction", "max_divergence"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {name}={getattr(self, name)}")
        sizes = ("potential_width", "potential_depth", "discriminator_width", "discriminator_depth")
        at_least = {"batch_size": 1, "disc_steps": 1, "n_iters": 0, "log_every": 1, "seed": 0, **dict.fromkeys(sizes, 1)}
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is None and name in sizes:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
        for name in ("gp_weight", "velocity_change_weight", "hj_weight", "terminal_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {name}={value!r}")
        for name in ("random_time_grid", "smooth_potential"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {name}={getattr(self, name)!r}")
        if self.smooth_potential and self.arch != "mnist_cnn":
            raise ValueError("smooth_potential applies to arch='mnist_cnn' only (the toy potential is tanh already), "
                             f"got smooth_potential=True with arch={self.arch!r}")
        if (isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float))
                or not 0 <= self.ema_decay < 1):
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got ema_decay={self.ema_decay!r}")
        if self.lr_final_fraction > 1:
            raise ValueError(f"lr_final_fraction must be in (0, 1], got lr_final_fraction={self.lr_final_fraction}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got adam_betas={self.adam_betas}")
        try:
            num_steps(self.T, self.h)
        except ValueError as err:
            raise ValueError(f"T/h: {err}") from None
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:k]', got device={self.device!r}")
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

    def replace(self, **changes: Any) -> "FlowConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FlowConfig":
        """The config of ``d`` (e.g. ``to_dict()`` of a saved run); fields of :data:`OFF` it lacks are off.

        A dict written before an option existed describes a run trained without it, whatever the default now is.
        """
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown FlowConfig fields: {sorted(unknown)}")
        return cls(**{**OFF, **d})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "FlowConfig":
        """A named setting from :data:`PRESETS`, with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset name={name!r}; allowed: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


# The well-posedness options switched off: the paper's algorithm (and every run saved before they existed).
OFF: dict[str, Any] = dict(velocity_change_weight=0.0, hj_weight=0.0, terminal_weight=0.0, random_time_grid=False,
                           ema_decay=0.0, smooth_potential=False)

_PAPER_TOY = dict(OFF, T=1.0, h=0.2, n_iters=25_000, batch_size=200, disc_steps=5, lr_potential=1e-4,
                  lr_discriminator=2e-5, lr_schedule="constant", L=1.0)
PRESETS: dict[str, dict[str, Any]] = {
    # FlowConfig(): the lecture setting with the best combination of well-posedness options (benchmarks/wellposed.json):
    # KE_h/chord 1.02, W2/floor 1.52 at N=5 and 1.69 at N=2 on 8 gaussians in R^12 (all off: 1.30, 1.76, 2.63)
    "lecture_toy": {},
    # the same lecture budget with the paper's algorithm (every option off), for side-by-side comparisons
    "lecture_toy_paper": dict(OFF),
    "paper_toy_2d": dict(_PAPER_TOY, lam=0.5, gp_weight=0.1),
    "paper_toy_highdim": dict(_PAPER_TOY, lam=0.1, gp_weight=0.01),
    "paper_mnist": dict(OFF, arch="mnist_cnn", prior="uniform", T=5.0, h=1.0, lam=0.05, L=1.0, gp_weight=0.1,
                        n_iters=5000, batch_size=200, disc_steps=5, lr_potential=5e-4, lr_discriminator=1e-4,
                        lr_schedule="constant", log_every=100, max_divergence=1e4),
}
# The paper's MNIST model, loss, T, h, lambda, L, prior and lr_U, sized for a 2-core CPU (notebook 06,
# benchmarks/mnist.json): batch 64 instead of 200, 1800 instead of 5000 iterations, lr_phi 2.5e-4 instead of 1e-4,
# cosine decay, and gamma = 1 instead of 0.1. With the paper's gamma = 0.1 the soft penalty (41) leaves phi with
# slope |grad phi| ~ 6 = 6 L, so the divergence acts like the nearly mode-seeking KL and the short run collapses
# onto a few digits (mostly 4-6); gamma = 1 keeps the slope near L and every digit appears (notebook 06, section 3b).
PRESETS["cpu_mnist_paper"] = dict(PRESETS["paper_mnist"], batch_size=64, lr_discriminator=2.5e-4, gp_weight=1.0,
                                  lr_schedule="cosine", n_iters=1800, log_every=10)
# The course's recommended MNIST run (checkpoints/mnist_w1w2): cpu_mnist_paper with the velocity-change and HJ
# penalties of FlowConfig(); what they change on MNIST (step change, KE_h/chord, R_HJ, classifier scores) is the
# "mnist" part of benchmarks/wellposed.json and notebook 07, section 6
PRESETS["cpu_mnist"] = dict(PRESETS["cpu_mnist_paper"], velocity_change_weight=1.0, hj_weight=1.0)

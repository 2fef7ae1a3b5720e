"""Training: Algorithm 1 (discriminator, W1 proximal) and Algorithm 2 (potential, W2 proximal), method.md §5.

One iteration = ``disc_steps`` ascent steps on the DV dual (40)-(41), then one descent step on (42):

    J_D(omega) = mean phi(x_N) - log mean exp phi(y) - gamma GP          (maximised)
    J_G(theta) = mean phi(x_N(theta)) + lambda KE_h(theta)                 (minimised)

The four variants of the ablation (46)-(49) differ only in two switches:
``uses_w1`` (gradient penalty with bound L) and ``uses_w2`` (lambda KE_h in J_G).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import PRIORS, sample_prior
from .diagnostics import kinetic_energy
from .divergences import discriminator_gradient, gradient_penalty_from_grad, interpolates, lipschitz_kl_dual
from .flow import euler_flow, generate, num_steps
from .nets import CNNDiscriminator, CNNPotential, MLPDiscriminator, MLPPotential

VARIANTS = ("unregularized", "w2", "w1", "w1w2")
ARCHS = ("mlp", "mnist_cnn")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class FlowConfig:
    """Everything that defines a training run. Validated on construction.

    Defaults are a lecture setting that learns a toy manifold in R^2 ... R^12 in about a
    minute on a 2-core CPU. The paper's toy setting differs (method.md §8): lambda = 0.5
    (2-D) / 0.1 (7-D, 12-D), gp_weight 0.1 / 0.01, lr 1e-4 (U) and 2e-5 (phi), 25,000 iterations;
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
        potential_width/depth, discriminator_width/depth: MLP sizes (paper: 48x5 tanh, 48x3 ReLU).
        log_every: iterations between history entries.
        max_divergence: the run is declared diverged when the DV estimate exceeds this
            (the unregularised runs climb to 1e5-1e6 without producing NaN, §6 d6).
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
    potential_width: int = 48
    potential_depth: int = 5
    discriminator_width: int = 48
    discriminator_depth: int = 3
    log_every: int = 50
    max_divergence: float = 1e3

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        for name, allowed in (("variant", VARIANTS), ("prior", PRIORS), ("arch", ARCHS),
                              ("lr_schedule", LR_SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {name}={getattr(self, name)!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            for v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValueError(f"{f.name} must be finite, got {f.name}={value}")
        positive = ("T", "h", "lam", "L", "lr_potential", "lr_discriminator", "lr_final_fraction", "max_divergence")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {name}={getattr(self, name)}")
        at_least = {"batch_size": 1, "disc_steps": 1, "n_iters": 0, "log_every": 1, "potential_width": 1,
                    "potential_depth": 1, "discriminator_width": 1, "discriminator_depth": 1, "seed": 0}
        for name, low in at_least.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
        if self.gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got gp_weight={self.gp_weight}")
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

    def replace(self, **changes: Any) -> "FlowConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FlowConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FlowConfig fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "FlowConfig":
        """A named setting from :data:`PRESETS`, with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset name={name!r}; allowed: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


_PAPER_TOY = dict(T=1.0, h=0.2, n_iters=25_000, batch_size=200, disc_steps=5, lr_potential=1e-4,
                  lr_discriminator=2e-5, lr_schedule="constant", L=1.0)
PRESETS: dict[str, dict[str, Any]] = {
    "lecture_toy": {},
    "paper_toy_2d": dict(_PAPER_TOY, lam=0.5, gp_weight=0.1),
    "paper_toy_highdim": dict(_PAPER_TOY, lam=0.1, gp_weight=0.01),
    "paper_mnist": dict(arch="mnist_cnn", prior="uniform", T=5.0, h=1.0, lam=0.05, L=1.0, gp_weight=0.1,
                        n_iters=5000, batch_size=200, disc_steps=5, lr_potential=5e-4, lr_discriminator=1e-4,
                        lr_schedule="constant", log_every=100, max_divergence=1e4),
}
# The paper's MNIST model, loss, T, h, lambda, L, prior and lr_U, sized for a 2-core CPU (notebook 06,
# benchmarks/mnist.json): batch 64 instead of 200, 1800 instead of 5000 iterations, lr_phi 2.5e-4 instead of 1e-4,
# cosine decay, and gamma = 1 instead of 0.1. With the paper's gamma = 0.1 the soft penalty (41) leaves phi with
# slope |grad phi| ~ 6 = 6 L, so the divergence acts like the nearly mode-seeking KL and the short run collapses
# onto a few digits (mostly 4-6); gamma = 1 keeps the slope near L and every digit appears (notebook 06, section 3b).
PRESETS["cpu_mnist"] = dict(PRESETS["paper_mnist"], batch_size=64, lr_discriminator=2.5e-4, gp_weight=1.0,
                            lr_schedule="cosine", n_iters=1800, log_every=10)


def build_networks(config: FlowConfig, event_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """The potential U and discriminator phi for ``config.arch``, initialised from ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.arch == "mlp":
            dim = event_shape[0]
            potential: nn.Module = MLPPotential(dim, config.potential_width, config.potential_depth)
            discriminator: nn.Module = MLPDiscriminator(dim, config.discriminator_width, config.discriminator_depth)
        else:
            potential, discriminator = CNNPotential(), CNNDiscriminator()
    return potential.to(config.device), discriminator.to(config.device)


def check_data(data: Tensor, config: FlowConfig) -> Tensor:
    """Validate the training data for ``config.arch`` and return it as float32 on the config's device."""
    if not isinstance(data, Tensor):
        raise ValueError(f"data must be a torch.Tensor, got {type(data).__name__}")
    if not data.is_floating_point():
        raise ValueError(f"data must have a floating dtype, got dtype={data.dtype}")
    if config.arch == "mlp" and (data.dim() != 2 or data.shape[1] < 1):
        raise ValueError(f"data must have shape (n, d) for arch='mlp', got shape={tuple(data.shape)}")
    if config.arch == "mnist_cnn" and tuple(data.shape[1:]) != (1, 28, 28):
        raise ValueError(f"data must have shape (n, 1, 28, 28) for arch='mnist_cnn', got shape={tuple(data.shape)}")
    if data.shape[0] < 1:
        raise ValueError("data must hold at least one sample, got n=0")
    if not torch.isfinite(data).all():
        raise ValueError("data contains NaN or inf")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={config.device!r} requested but CUDA is not available")
    return data.detach().to(device=config.device, dtype=torch.float32)


@dataclass
class TrainResult:
    """A trained (or stopped) flow.

    Attributes:
        potential: U_theta(x, t); discriminator: phi_omega(x).
        config: the run's FlowConfig.
        history: per logged iteration, lists of floats keyed by ``iteration``, ``loss_discriminator``,
            ``loss_potential``, ``divergence`` (DV estimate of D^L_KL(rho_T || pi)), ``kinetic_energy`` (KE_h),
            ``gradient_penalty``, ``grad_norm_potential``, ``grad_norm_discriminator``, ``time`` (s).
        diverged_at: the iteration at which training stopped because it diverged, else None.
        divergence_reason: why it stopped, else None.
        iterations_done: completed potential updates.
        wall_time: seconds spent in :func:`train`.
    """

    potential: nn.Module
    discriminator: nn.Module
    config: FlowConfig
    history: dict[str, list[float]] = field(default_factory=dict)
    diverged_at: int | None = None
    divergence_reason: str | None = None
    iterations_done: int = 0
    wall_time: float = 0.0
    event_shape: tuple[int, ...] = ()

    def prior(self, n: int, seed: int | None = None) -> Tensor:
        """n samples of rho_0 (seeded when ``seed`` is given)."""
        g = None
        if seed is not None:
            g = torch.Generator(device=self.config.device).manual_seed(seed)
        return sample_prior(self.config.prior, n, self.event_shape, g, self.config.device)

    def sample(self, n: int, seed: int | None = None, h: float | None = None,
               return_path: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Generate n samples with step h (default: the training step) from fresh prior samples.

        Returns:
            (n, *event) samples, or (x_T, path) with path (N+1, n, *event).
        """
        c = self.config
        return generate(self.potential, self.prior(n, seed), c.T, c.h if h is None else h, c.lam, return_path)


def _lr_factor(config: FlowConfig) -> Callable[[int], float]:
    if config.lr_schedule == "constant":
        return lambda it: 1.0
    low, n = config.lr_final_fraction, max(config.n_iters, 1)
    return lambda it: low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(it, n) / n))


@contextlib.contextmanager
def _cpu_threads(config: FlowConfig) -> Iterator[None]:
    """One intra-op thread for the toy MLPs on the CPU.

    Their matrices (200 x 48) are too small to gain from threads, and when several processes share
    the cores (a notebook kernel beside a test run), spinning OpenMP threads make a step 10x slower.
    """
    before = torch.get_num_threads()
    if config.arch == "mlp" and config.device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


Callback = Callable[[int, "TrainResult"], None]


def train(config: FlowConfig, data: Tensor, progress: bool = True, callback: Callback | None = None) -> TrainResult:
    """Train the flow of ``config`` on ``data`` (rows are samples of pi).

    Divergence (non-finite losses, gradients or samples, or a DV estimate above
    ``config.max_divergence``) stops training without an exception: ``diverged_at`` and
    ``divergence_reason`` are set and the weights from before the failing iteration are kept.

    Args:
        config: the run's settings.
        data: (n, d) for arch "mlp", (n, 1, 28, 28) for "mnist_cnn", floating, finite.
        progress: show a tqdm bar.
        callback: called as ``callback(iteration, result)`` after every history entry (also the one of a
            diverged iteration); it may append its own keys to ``result.history`` (one value per call) or
            save ``result`` as a snapshot. ``result.wall_time`` is up to date when it is called.
    """
    data = check_data(data, config)
    with _cpu_threads(config):
        return _train(config, data, progress, callback)


def _train(config: FlowConfig, data: Tensor, progress: bool, callback: Callback | None) -> TrainResult:
    event_shape = tuple(data.shape[1:])
    c, dev = config, config.device
    M, K = c.batch_size, c.disc_steps
    potential, discriminator = build_networks(c, event_shape)
    gen = torch.Generator(device=dev).manual_seed(c.seed)
    # foreach: one vectorised update for all tensors instead of a Python loop over them
    opt_u = torch.optim.Adam(potential.parameters(), lr=c.lr_potential, betas=c.adam_betas, foreach=True)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=c.lr_discriminator, betas=c.adam_betas, foreach=True)
    schedule = _lr_factor(c)
    params = [*potential.parameters(), *discriminator.parameters()]
    last_good = [p.detach().clone() for p in params]
    keys = ("loss_discriminator", "loss_potential", "divergence", "kinetic_energy", "gradient_penalty",
            "grad_norm_potential", "grad_norm_discriminator")
    history: dict[str, list[float]] = {"iteration": [], **{k: [] for k in keys}, "time": []}
    result = TrainResult(potential, discriminator, c, history, event_shape=event_shape)
    zero = torch.zeros((), device=dev)
    start = time.perf_counter()
    bar = tqdm(range(c.n_iters), disable=not progress, desc=f"train {c.variant}", leave=False)
    for it in bar:
        for opt, lr in ((opt_u, c.lr_potential), (opt_d, c.lr_discriminator)):
            for group in opt.param_groups:
                group["lr"] = lr * schedule(it)

        # Algorithm 1. U is fixed during the K discriminator steps, so all K batches of x_N
        # come from one batched, graph-free pass of the flow.
        x_gen = generate(potential, sample_prior(c.prior, K * M, event_shape, gen), c.T, c.h, c.lam)
        y_all = data[torch.randint(len(data), (K * M,), generator=gen, device=dev)]
        for k in range(K):
            x, y = x_gen[k * M:(k + 1) * M], y_all[k * M:(k + 1) * M]
            phi_x, phi_y = discriminator(torch.cat([x, y])).split(M)  # one forward pass for both
            if c.uses_w1:
                grad_hat = discriminator_gradient(discriminator, interpolates(x, y, gen))
                gp = gradient_penalty_from_grad(grad_hat, c.L)  # (41)
            else:
                gp = zero
            dv = lipschitz_kl_dual(phi_x, phi_y)  # (40)
            loss_d = -dv + c.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        grad_norm_d = _grad_norm(discriminator)

        # Algorithm 2: back-propagate through all N Euler steps (discretise-then-optimise).
        discriminator.requires_grad_(False)
        path = euler_flow(potential, sample_prior(c.prior, M, event_shape, gen), c.T, c.h, c.lam, create_graph=True)
        ke = kinetic_energy(path.velocities, c.h)  # KE_h at (x_n, t_n), graph kept (§6 a)
        terminal = discriminator(path.final).mean()
        loss_u = terminal + c.lam * ke if c.uses_w2 else terminal  # (42)
        opt_u.zero_grad(set_to_none=True)
        loss_u.backward()
        discriminator.requires_grad_(True)
        grad_norm_u = _grad_norm(potential)

        values = torch.stack([loss_d.detach(), loss_u.detach(), dv.detach(), ke.detach(), gp.detach(),
                              grad_norm_u, grad_norm_d, x_gen.abs().amax()]).tolist()
        reason = _divergence_reason(dict(zip(keys + ("max |x_N|",), values)), c.max_divergence)
        if reason is not None:
            for p, saved in zip(params, last_good):
                p.data.copy_(saved)
            result.diverged_at, result.divergence_reason = it, f"iteration {it}: {reason}"
            _log(history, it, keys, values, start)
            _notify(callback, it, result, start)
            break
        opt_u.step()
        for p, saved in zip(params, last_good):
            saved.copy_(p.detach())
        result.iterations_done = it + 1
        if it % c.log_every == 0 or it == c.n_iters - 1:
            _log(history, it, keys, values, start)
            _notify(callback, it, result, start)
            bar.set_postfix(D=f"{values[2]:.3g}", KE=f"{values[3]:.3g}")
    bar.close()
    if result.diverged_at is not None and progress:
        print(f"[proxflow_edu] {c.variant} stopped: {result.divergence_reason}")
    result.wall_time = time.perf_counter() - start
    return result


def _notify(callback: Callback | None, it: int, result: TrainResult, start: float) -> None:
    if callback is not None:
        result.wall_time = time.perf_counter() - start
        callback(it, result)


def _grad_norm(module: nn.Module) -> Tensor:
    # U's output bias gets no gradient: only grad_x U enters the flow
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])


def _log(history: dict[str, list[float]], it: int, keys: tuple[str, ...], values: list[float], start: float) -> None:
    history["iteration"].append(float(it))
    for k, v in zip(keys, values):
        history[k].append(v)
    history["time"].append(time.perf_counter() - start)


def _divergence_reason(values: dict[str, float], max_divergence: float) -> str | None:
    for name, v in values.items():
        if not math.isfinite(v):
            return f"non-finite {name.replace('_', ' ')} ({v})"
    if values["divergence"] > max_divergence:
        return (f"divergence estimate blew up: {values['divergence']:.3g} > max_divergence={max_divergence:g} "
                f"(the discriminator separates generated and data samples without bound)")
    return None

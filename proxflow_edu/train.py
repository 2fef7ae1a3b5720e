"""The training driver around Algorithms 1-2 (:mod:`proxflow_edu.algorithm`), and the trained result.

:func:`train` adds what a real run needs to the two steps: networks and optimisers, the learning-rate
schedule, one graph-free flow pass for the discriminator's K batches, a rollback when an iteration
diverges, the history (the steps' measured fields), a callback and a progress bar.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .algorithm import discriminator_step, potential_step
from .config import FlowConfig
from .data import sample_prior
from .flow import EulerPath, euler_flow
from .mnist.nets import CNNDiscriminator, CNNPotential
from .nets import MixedPrecision, MLPDiscriminator, MLPPotential


class DivergedRunWarning(UserWarning):
    """Sampling from a run that stopped because it diverged (its weights are those before the failing iteration)."""


def build_networks(config: FlowConfig, event_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """The potential U and discriminator phi for ``config.arch``, initialised from ``config.seed``."""
    potential_size, discriminator_size = config.network_size("potential"), config.network_size("discriminator")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.arch == "mlp":
            potential: nn.Module = MLPPotential(event_shape[0], *potential_size)
            discriminator: nn.Module = MLPDiscriminator(event_shape[0], *discriminator_size)
        else:
            potential = CNNPotential(*potential_size, activation="softplus" if config.smooth_potential else "relu")
            discriminator = CNNDiscriminator(*discriminator_size)
    return potential.to(config.device), discriminator.to(config.device)


def check_data(data: Tensor, config: FlowConfig) -> Tensor:
    """Validate the training data for ``config.arch`` and return it as float32 on the config's device."""
    if not isinstance(data, Tensor):
        raise ValueError(f"data must be a torch.Tensor, got {type(data).__name__}")
    event = {"mlp": "(n, d)", "mnist_cnn": "(n, 1, 28, 28)"}[config.arch]
    shape_ok = data.dim() == 2 and data.shape[1] >= 1 if config.arch == "mlp" else tuple(data.shape[1:]) == (1, 28, 28)
    for bad, message in ((not data.is_floating_point(), f"data must have a floating dtype, got dtype={data.dtype}"),
                         (not shape_ok, f"data must have shape {event} for arch={config.arch!r}, "
                                        f"got shape={tuple(data.shape)}"),
                         (data.shape[0] < 1, "data must hold at least one sample, got n=0"),
                         (not torch.isfinite(data).all(), "data contains NaN or inf"),
                         (config.device.startswith("cuda") and not torch.cuda.is_available(),
                          f"device={config.device!r} requested but CUDA is not available")):
        if bad:
            raise ValueError(message)
    return data.detach().to(device=config.device, dtype=torch.float32)


@dataclass
class TrainingState:
    """What :func:`train` needs besides the weights and the history to continue a run bit for bit."""

    optimizer_potential: dict[str, Any]      # the Adam state dicts
    optimizer_discriminator: dict[str, Any]
    generator: Tensor  # the state of the generator that draws every prior sample, minibatch and interpolate


@dataclass
class TrainResult:
    """A trained (or stopped) flow: the networks, the config, the history and the facts of the run."""

    potential: nn.Module      # U_theta(x, t), the raw weights
    discriminator: nn.Module  # phi_omega(x)
    config: FlowConfig
    # per logged iteration, lists of floats keyed by "iteration", "time" (s) and the fields of the two steps'
    # DiscriminatorStep and PotentialStep (proxflow_edu.algorithm)
    history: dict[str, list[float]] = field(default_factory=dict)
    diverged_at: int | None = None         # the iteration at which training stopped because it diverged
    divergence_reason: str | None = None   # why it stopped (without the iteration)
    iterations_done: int = 0               # completed potential updates
    wall_time: float = 0.0                 # seconds spent in train()
    event_shape: tuple[int, ...] = ()      # the shape of one sample
    # the optimiser and generator states after iterations_done iterations (saved with the checkpoint, so that
    # train(..., resume_from=checkpoint.load(run_dir)) continues the run)
    training_state: TrainingState | None = None
    # the exponential moving average of U's weights (config.ema_decay > 0): flow() and sample() use it
    potential_ema: nn.Module | None = None

    @property
    def sampling_potential(self) -> nn.Module:
        """The U that :meth:`flow` pushes samples with: the weight average when there is one, else ``potential``."""
        return self.potential if self.potential_ema is None else self.potential_ema

    def prior(self, n: int, seed: int | None = None) -> Tensor:
        """n samples of rho_0 (seeded when ``seed`` is given)."""
        g = None if seed is None else torch.Generator(device=self.config.device).manual_seed(seed)
        return sample_prior(self.config.prior, n, self.event_shape, g, self.config.device)

    def flow(self, n: int, seed: int | None = None, h: float | None = None, keep_path: bool = False) -> EulerPath:
        """Push n fresh prior samples through the flow with step h (default: the training step); no graph.

        Warns (:class:`DivergedRunWarning`) when the run diverged: the course samples such runs on purpose.
        """
        c = self.config
        if self.diverged_at is not None:
            warnings.warn(f"this run diverged at iteration {self.diverged_at} ({self.divergence_reason}); "
                          f"sampling its last good weights", DivergedRunWarning, stacklevel=2)
        return euler_flow(self.sampling_potential, self.prior(n, seed), c.T, c.h if h is None else h, c.lam,
                          keep_path=keep_path)

    def sample(self, n: int, seed: int | None = None, h: float | None = None) -> Tensor:
        """x_T (n, *event) of :meth:`flow`."""
        return self.flow(n, seed, h).final


Callback = Callable[[int, TrainResult], None]


def train(config: FlowConfig, data: Tensor, progress: bool = True, callback: Callback | None = None,
          resume_from: TrainResult | None = None) -> TrainResult:
    """Train the flow of ``config`` on ``data`` (n, d) or (n, 1, 28, 28) (rows are samples of pi).

    Divergence (non-finite values, or a DV estimate above ``config.max_divergence``) stops training without an
    exception: ``diverged_at`` and ``divergence_reason`` are set and the weights from before that iteration are kept.
    ``callback(iteration, result)`` runs after every history entry; it may add its own keys to ``result.history``
    or save ``result`` (``checkpoint.save``). ``resume_from``, a run of the same config and data loaded with
    ``checkpoint.load``, continues after its ``iterations_done`` iterations, bit for bit on the CPU.

    Example:
        >>> train(FlowConfig(n_iters=10), sample_toy("8gaussians", 1000), progress=False).sample(5).shape
        torch.Size([5, 2])
    """
    data = check_data(data, config)
    c, event_shape = config, tuple(data.shape[1:])
    with _cpu_threads(c):
        potential, discriminator = build_networks(c, event_shape)
        gen = torch.Generator(device=c.device).manual_seed(c.seed)
        opt_u, opt_d = adam(potential, c.lr_potential, c), adam(discriminator, c.lr_discriminator, c)
        ema = copy.deepcopy(potential).requires_grad_(False) if c.ema_decay > 0 else None
        result = TrainResult(potential, discriminator, c, {}, event_shape=event_shape, potential_ema=ema)
        if resume_from is not None:
            _restore(result, resume_from, opt_u, opt_d, gen)
        # precision "bf16": the steps call the networks through bfloat16 views of the same float32 weights
        nets = ((potential, discriminator) if c.precision == "fp32" else
                tuple(MixedPrecision(net, torch.device(c.device).type) for net in (potential, discriminator)))
        params = [*potential.parameters(), *discriminator.parameters()]
        last_good = [p.detach().clone() for p in params]
        start = time.perf_counter() - result.wall_time
        bar = tqdm(range(result.iterations_done, c.n_iters), disable=not progress, desc=f"train {c.variant}",
                   leave=False, initial=result.iterations_done, total=c.n_iters)
        for it in bar:
            _set_learning_rates(c, it, opt_u, opt_d)
            values = _iteration(c, data, *nets, opt_u, opt_d, gen)
            reason = _divergence_reason(values, c.max_divergence)
            if reason is None:
                for p, saved in zip(params, last_good):
                    saved.copy_(p.detach())
                if ema is not None:
                    _ema_update(ema, potential, c.ema_decay)
                result.iterations_done = it + 1
            else:  # undo this iteration's updates and stop
                for p, saved in zip(params, last_good):
                    p.data.copy_(saved)
                result.diverged_at, result.divergence_reason = it, reason
            if reason is not None or it % c.log_every == 0 or it == c.n_iters - 1:
                _log(result, it, values, start)
                result.training_state = TrainingState(opt_u.state_dict(), opt_d.state_dict(), gen.get_state())
                if callback is not None:
                    callback(it, result)
                bar.set_postfix(D=f"{values['divergence']:.3g}", KE=f"{values['kinetic_energy']:.3g}")
            if reason is not None:
                break
        bar.close()
        result.training_state = TrainingState(opt_u.state_dict(), opt_d.state_dict(), gen.get_state())
    if result.diverged_at is not None and progress:
        print(f"[proxflow_edu] {c.variant} stopped at iteration {result.diverged_at}: {result.divergence_reason}")
    result.wall_time = time.perf_counter() - start
    return result


def _iteration(c: FlowConfig, data: Tensor, potential: nn.Module, discriminator: nn.Module,
               opt_u: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, gen: torch.Generator) -> dict[str, float]:
    """K steps of Algorithm 1 and one of Algorithm 2; what they measured, as floats (one device sync)."""
    M, K, event_shape = c.batch_size, c.disc_steps, tuple(data.shape[1:])
    # Algorithm 1. U is fixed during the K steps, so all K batches of x_N come from one graph-free pass.
    x_gen = euler_flow(potential, sample_prior(c.prior, K * M, event_shape, gen), c.T, c.h, c.lam).final
    y_all = data[torch.randint(len(data), (K * M,), generator=gen, device=c.device)]
    for k in range(K):
        d_step = discriminator_step(discriminator, opt_d, x_gen[k * M:(k + 1) * M], y_all[k * M:(k + 1) * M], c, gen)
    # Algorithm 2.
    u_step = potential_step(potential, discriminator, opt_u, sample_prior(c.prior, M, event_shape, gen), c, gen)
    # vars(), not dataclasses.asdict: asdict deep-copies every tensor field, every iteration
    measured = {k: v for k, v in {**vars(d_step), **vars(u_step)}.items() if v is not None}  # None: option off
    measured["max_abs_x_N"] = x_gen.abs().amax()
    return dict(zip(measured, torch.stack(list(measured.values())).tolist()))


def _set_learning_rates(c: FlowConfig, it: int, opt_u: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> None:
    """Both rates times the schedule's factor: 1 (constant) or the cosine decay to lr_final_fraction."""
    low, n = c.lr_final_fraction, max(c.n_iters, 1)
    factor = 1.0 if c.lr_schedule == "constant" else low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(it, n) / n))
    for opt, lr in ((opt_u, c.lr_potential), (opt_d, c.lr_discriminator)):
        for group in opt.param_groups:
            group["lr"] = lr * factor


@contextlib.contextmanager
def _cpu_threads(config: FlowConfig) -> Iterator[None]:
    """One intra-op thread for the toy MLPs on the CPU: their 200 x 48 matrices gain nothing from threads, and
    spinning OpenMP threads make a step 10x slower when processes share the cores (a kernel beside a test run)."""
    before = torch.get_num_threads()
    if config.arch == "mlp" and config.device == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def adam(module: nn.Module, lr: float, config: FlowConfig) -> torch.optim.Adam:
    # the one Adam of the package (both networks of train(), course.discriminator.fit_discriminator)
    # foreach: one vectorised update for all tensors instead of a Python loop over them
    return torch.optim.Adam(module.parameters(), lr=lr, betas=config.adam_betas, foreach=True)


def _restore(result: TrainResult, saved: TrainResult, opt_u: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             gen: torch.Generator) -> None:
    """Copy weights, history, optimiser and generator states of a saved run into a fresh ``result``."""
    # a longer run may continue a shorter one, unless the cosine schedule ties the rates to n_iters
    free = ("log_every", "device") if result.config.lr_schedule == "cosine" else ("log_every", "device", "n_iters")
    changed = [f.name for f in dataclasses.fields(FlowConfig)
               if f.name not in free and getattr(saved.config, f.name) != getattr(result.config, f.name)]
    if changed:
        raise ValueError("resume_from was trained with other settings: "
                         + ", ".join(f"{n}={getattr(saved.config, n)!r} (now {getattr(result.config, n)!r})"
                                     for n in changed))
    if saved.diverged_at is not None:
        raise ValueError(f"resume_from diverged at iteration {saved.diverged_at}; it cannot continue")
    if saved.training_state is None or saved.event_shape != result.event_shape:
        raise ValueError(f"resume_from holds no training state for data of shape {result.event_shape}")
    result.potential.load_state_dict(saved.potential.state_dict())
    result.discriminator.load_state_dict(saved.discriminator.state_dict())
    if result.potential_ema is not None:
        if saved.potential_ema is None:
            raise ValueError(f"resume_from holds no weight average (ema_decay={result.config.ema_decay})")
        result.potential_ema.load_state_dict(saved.potential_ema.state_dict())
    opt_u.load_state_dict(saved.training_state.optimizer_potential)
    opt_d.load_state_dict(saved.training_state.optimizer_discriminator)
    gen.set_state(saved.training_state.generator)
    result.history = copy.deepcopy(saved.history)
    result.iterations_done, result.wall_time = saved.iterations_done, saved.wall_time


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay theta_ema + (1 - decay) theta, for every parameter (``FlowConfig.ema_decay``)."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1 - decay)


def _log(result: TrainResult, it: int, values: dict[str, float], start: float) -> None:
    history = result.history
    for key, value in (("iteration", float(it)), *((k, v) for k, v in values.items() if k != "max_abs_x_N")):
        history.setdefault(key, []).append(value)
    result.wall_time = time.perf_counter() - start
    history.setdefault("time", []).append(result.wall_time)


def _divergence_reason(values: dict[str, float], max_divergence: float) -> str | None:
    for name, v in values.items():
        if not math.isfinite(v):
            return f"non-finite {name.replace('_', ' ')} ({v})"
    if values["divergence"] > max_divergence:
        return (f"divergence estimate blew up: {values['divergence']:.3g} > max_divergence={max_divergence:g} "
                f"(the discriminator separates generated and data samples without bound)")
    return None


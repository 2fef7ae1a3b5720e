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
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .algorithm import discriminator_step, potential_step
from .config import ARCHS, PRESETS, VARIANTS, FlowConfig
from .data import sample_prior
from .flow import EulerPath, euler_flow
from .nets import MLPDiscriminator, MLPPotential

__all__ = ["ARCHS", "PRESETS", "VARIANTS", "DivergedRunWarning", "FlowConfig", "TrainResult", "TrainingState",
           "build_networks", "check_data", "fit_discriminator", "train"]


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
            from .mnist.nets import CNNDiscriminator, CNNPotential
            potential = CNNPotential(*potential_size, activation="softplus" if config.smooth_potential else "relu")
            discriminator = CNNDiscriminator(*discriminator_size)
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
class TrainingState:
    """What :func:`train` needs besides the weights and the history to continue a run bit for bit.

    Attributes:
        optimizer_potential, optimizer_discriminator: the Adam state dicts.
        generator: the state of the random generator that draws every prior sample, minibatch and interpolate.
    """

    optimizer_potential: dict[str, Any]
    optimizer_discriminator: dict[str, Any]
    generator: Tensor


@dataclass
class TrainResult:
    """A trained (or stopped) flow.

    Attributes:
        potential: U_theta(x, t); discriminator: phi_omega(x).
        config: the run's FlowConfig.
        history: per logged iteration, lists of floats keyed by ``iteration``, ``time`` (s) and the fields of
            :class:`~proxflow_edu.algorithm.DiscriminatorStep` and :class:`~proxflow_edu.algorithm.PotentialStep`.
        diverged_at: the iteration at which training stopped because it diverged, else None.
        divergence_reason: why it stopped (without the iteration, which is ``diverged_at``), else None.
        iterations_done: completed potential updates.
        wall_time: seconds spent in :func:`train`.
        event_shape: the shape of one sample.
        training_state: the optimiser and generator states after ``iterations_done`` iterations (saved with the
            checkpoint, so that ``train(..., resume_from=run_dir)`` continues the run), or None.
        potential_ema: the exponential moving average of U's weights (``config.ema_decay`` > 0), else None.
            :meth:`flow` and :meth:`sample` use it (:attr:`sampling_potential`); ``potential`` keeps the raw weights.
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
    training_state: TrainingState | None = None
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


def _adam(module: nn.Module, lr: float, config: FlowConfig) -> torch.optim.Adam:
    # foreach: one vectorised update for all tensors instead of a Python loop over them
    return torch.optim.Adam(module.parameters(), lr=lr, betas=config.adam_betas, foreach=True)


Callback = Callable[[int, "TrainResult"], None]


def train(config: FlowConfig, data: Tensor, progress: bool = True, callback: Callback | None = None,
          resume_from: str | Path | None = None) -> TrainResult:
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
            save ``result`` as a snapshot (``checkpoint.save``). ``result.wall_time`` is up to date when it is called.
        resume_from: a run directory saved by ``checkpoint.save`` during or after a run of the same ``config``
            and data: training continues after its ``iterations_done`` iterations and gives the same weights and
            history as an uninterrupted run (bit for bit on the CPU).
    """
    data = check_data(data, config)
    c, dev, event_shape = config, config.device, tuple(data.shape[1:])
    M, K = c.batch_size, c.disc_steps
    with _cpu_threads(c):
        potential, discriminator = build_networks(c, event_shape)
        gen = torch.Generator(device=dev).manual_seed(c.seed)
        opt_u, opt_d = _adam(potential, c.lr_potential, c), _adam(discriminator, c.lr_discriminator, c)
        ema = copy.deepcopy(potential).requires_grad_(False) if c.ema_decay > 0 else None
        result = TrainResult(potential, discriminator, c, {}, event_shape=event_shape, potential_ema=ema)
        if resume_from is not None:
            _restore(result, resume_from, opt_u, opt_d, gen)
        schedule = _lr_factor(c)
        params = [*potential.parameters(), *discriminator.parameters()]
        last_good = [p.detach().clone() for p in params]
        start = time.perf_counter() - result.wall_time
        bar = tqdm(range(result.iterations_done, c.n_iters), disable=not progress, desc=f"train {c.variant}",
                   leave=False, initial=result.iterations_done, total=c.n_iters)
        for it in bar:
            for opt, lr in ((opt_u, c.lr_potential), (opt_d, c.lr_discriminator)):
                for group in opt.param_groups:
                    group["lr"] = lr * schedule(it)
            # Algorithm 1. U is fixed during the K steps, so all K batches of x_N come from one graph-free pass.
            x_gen = euler_flow(potential, sample_prior(c.prior, K * M, event_shape, gen), c.T, c.h, c.lam).final
            y_all = data[torch.randint(len(data), (K * M,), generator=gen, device=dev)]
            for k in range(K):
                d_step = discriminator_step(discriminator, opt_d, x_gen[k * M:(k + 1) * M],
                                            y_all[k * M:(k + 1) * M], c, gen)
            # Algorithm 2.
            u_step = potential_step(potential, discriminator, opt_u, sample_prior(c.prior, M, event_shape, gen), c,
                                    gen)

            # vars(), not dataclasses.asdict: asdict deep-copies every tensor field, every iteration
            measured = {k: v for k, v in {**vars(d_step), **vars(u_step)}.items() if v is not None}  # None: option off
            measured["max_abs_x_N"] = x_gen.abs().amax()
            values = dict(zip(measured, torch.stack(list(measured.values())).tolist()))  # one device sync
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


def _restore(result: TrainResult, run: str | Path, opt_u: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             gen: torch.Generator) -> None:
    """Load weights, history, optimiser and generator states of a saved run into a fresh ``result``."""
    from .checkpoint import load
    saved = load(run, device=result.config.device)
    # a longer run may continue a shorter one, unless the cosine schedule ties the rates to n_iters
    free = ("log_every",) if result.config.lr_schedule == "cosine" else ("log_every", "n_iters")
    changed = [f.name for f in dataclasses.fields(FlowConfig)
               if f.name not in free and getattr(saved.config, f.name) != getattr(result.config, f.name)]
    if changed:
        raise ValueError(f"resume_from={str(run)!r} was trained with other settings: "
                         + ", ".join(f"{n}={getattr(saved.config, n)!r} (now {getattr(result.config, n)!r})"
                                     for n in changed))
    if saved.diverged_at is not None:
        raise ValueError(f"resume_from={str(run)!r} diverged at iteration {saved.diverged_at}; it cannot continue")
    if saved.training_state is None or saved.event_shape != result.event_shape:
        raise ValueError(f"resume_from={str(run)!r} holds no training state for data of shape {result.event_shape}")
    result.potential.load_state_dict(saved.potential.state_dict())
    result.discriminator.load_state_dict(saved.discriminator.state_dict())
    if result.potential_ema is not None:
        if saved.potential_ema is None:
            raise ValueError(f"resume_from={str(run)!r} holds no weight average (ema_decay={result.config.ema_decay})")
        result.potential_ema.load_state_dict(saved.potential_ema.state_dict())
    opt_u.load_state_dict(saved.training_state.optimizer_potential)
    opt_d.load_state_dict(saved.training_state.optimizer_discriminator)
    gen.set_state(saved.training_state.generator)
    result.history, result.iterations_done, result.wall_time = saved.history, saved.iterations_done, saved.wall_time


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


def fit_discriminator(discriminator: nn.Module, x_generated: Tensor, x_target: Tensor, steps: int,
                      config: FlowConfig, generator: torch.Generator | None = None,
                      callback: Callable[[int, nn.Module], None] | None = None) -> list[float]:
    """Algorithm 1 alone, for fixed samples: ``steps`` calls of :func:`~proxflow_edu.algorithm.discriminator_step`.

    A teaching tool: with P and Q fixed it shows what the discriminator learns, e.g. that without the
    Lipschitz bound (``config.variant`` "unregularized" or "w2") the estimate grows without limit between
    mutually singular P and Q. Reads ``lr_discriminator``, ``adam_betas``, ``batch_size``, ``L``, ``gp_weight``.

    Args:
        discriminator: phi, trained in place.
        x_generated: (n, *event) samples of P; x_target: (m, *event) samples of Q.
        callback: called as callback(step, discriminator) after every step (for logging).

    Returns:
        the minibatch DV estimate of each step.
    """
    opt = _adam(discriminator, config.lr_discriminator, config)
    estimates = []
    for step in range(steps):
        x = x_generated[torch.randint(len(x_generated), (config.batch_size,), generator=generator)]
        y = x_target[torch.randint(len(x_target), (config.batch_size,), generator=generator)]
        estimates.append(discriminator_step(discriminator, opt, x, y, config, generator).divergence)
        if callback is not None:
            callback(step, discriminator)
    return torch.stack(estimates).tolist() if estimates else []

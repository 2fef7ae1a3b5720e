"""Time one training iteration (disc_steps discriminator steps + 1 potential step) against plain ports, in one run.

Three sides, the same math, the same thread count, in the same process:

* ``proxflow_edu``: :func:`proxflow_edu.train.train` (explicit input gradients, one graph-free flow pass for the
  K discriminator batches, one phi forward for both batches, foreach Adam, the CNN pooling before ReLU in
  channels_last);
* ``original_port``: a direct PyTorch port of the paper's networks in their original layer order
  (``nn.Sequential``; conv -> ReLU -> maxpool; autograd input gradients) and the authors' step order (a fresh
  Euler pass per discriminator step, separate forward passes for phi(x), phi(y) and the interpolates,
  ``.item()`` logging every step);
* ``plain_port``: the same step order with our network classes, their explicit backward switched off (autograd),
  which isolates the gain of the training loop from that of the networks.

For the CNN it also times our step with ``FlowConfig(precision="bf16")`` (convolutions and matmuls in bfloat16,
``nets.MixedPrecision``), without channels_last (NCHW everywhere, to show what the layout buys) and under
``torch.compile`` (the networks' forward and explicit backward compiled by inductor; compile time excluded and
reported). Each ratio is against the ports timed in the same run.

    .venv/bin/python benchmarks/train_step.py [--iters 20] [--mnist-iters 4] [--threads 2] [--skip-mnist]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from proxflow_edu.config import FlowConfig
from proxflow_edu.data import sample_prior, sample_toy
from proxflow_edu.flow import euler_flow
from proxflow_edu.mnist import nets as mnist_nets
from proxflow_edu.mnist.nets import CNNDiscriminator, CNNPotential
from proxflow_edu.nets import MLPDiscriminator, MLPPotential, ScalarNetwork, init_glorot, time_column
from proxflow_edu.objectives import gradient_penalty, interpolates, kinetic_energy, lipschitz_kl_dual
from proxflow_edu.train import train


class AutogradMLPPotential(MLPPotential):
    input_gradient = ScalarNetwork.input_gradient  # the base class's autograd instead of the explicit backward


class AutogradMLPDiscriminator(MLPDiscriminator):
    input_gradient = ScalarNetwork.input_gradient


class AutogradCNNPotential(CNNPotential):
    input_gradient = ScalarNetwork.input_gradient


class AutogradCNNDiscriminator(CNNDiscriminator):
    input_gradient = ScalarNetwork.input_gradient


def _sequential(sizes: list[int], activation: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([activation()] if i < len(sizes) - 2 else [])
    return layers


class OriginalPotential(nn.Module):
    """U(x, t) as the paper builds it: MLP on (x, t), or conv -> ReLU -> maxpool twice, concat t, MLP."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.cnn = len(shape) == 3
        self.trunk = nn.Sequential(nn.Conv2d(1, 8, 7, padding=3, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(8, 8, 7, padding=3, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Flatten()) if self.cnn else nn.Identity()
        sizes = [393, 512, 512, 512, 1] if self.cnn else [shape[0] + 1, *[48] * 5, 1]
        self.head = nn.Sequential(*_sequential(sizes, nn.ReLU if self.cnn else nn.Tanh))
        init_glorot(self)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        h = self.trunk(x)
        return self.head(torch.cat([h, time_column(t, h)], dim=1)).squeeze(1)


class OriginalDiscriminator(nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        cnn = len(shape) == 3
        self.trunk = nn.Sequential(nn.Conv2d(1, 8, 7, padding=3, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(8, 8, 7, padding=3, bias=False), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Flatten()) if cnn else nn.Identity()
        self.head = nn.Sequential(*_sequential([392, 256, 256, 256, 1] if cnn else [shape[0], 48, 48, 48, 1], nn.ReLU))
        init_glorot(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x)).squeeze(1)


def time_package(config: FlowConfig, data: Tensor, iters: int) -> float:
    """Seconds per iteration of proxflow_edu.train, from its own clock between the first and last iteration."""
    result = train(config.replace(n_iters=iters + 1, log_every=10**9), data, progress=False)
    t = result.history["time"]
    return (t[-1] - t[0]) / iters


@contextlib.contextmanager
def without_channels_last() -> Iterator[None]:
    """Our CNNs in NCHW: no layout conversion of the activations, and the weights left contiguous."""
    saved_layout, saved_to = mnist_nets.channels_last, mnist_nets.ConvTrunk.to
    mnist_nets.channels_last = lambda x: x.contiguous()
    mnist_nets.ConvTrunk.to = lambda self, *a, **k: self if "memory_format" in k else saved_to(self, *a, **k)
    try:
        yield
    finally:
        mnist_nets.channels_last, mnist_nets.ConvTrunk.to = saved_layout, saved_to


@contextlib.contextmanager
def compiled_networks() -> Iterator[None]:
    """The CNNs' forward and input_gradient (the explicit backward) through torch.compile (inductor)."""
    saved = {(cls, name): getattr(cls, name) for cls in (CNNPotential, CNNDiscriminator)
             for name in ("forward", "input_gradient")}
    for (cls, name), fn in saved.items():
        setattr(cls, name, torch.compile(fn, dynamic=False))
    try:
        yield
    finally:
        for (cls, name), fn in saved.items():
            setattr(cls, name, fn)


def time_variant(config: FlowConfig, data: Tensor, iters: int, context: contextlib.AbstractContextManager
                 ) -> dict[str, float | str]:
    """s/iteration of our step inside ``context`` (first call = warm-up/compilation, timed separately)."""
    try:
        with context:
            start = time.perf_counter()
            train(config.replace(n_iters=1, log_every=10**9), data, progress=False)
            warm_up = time.perf_counter() - start
            return {"s_per_iter": round(time_package(config, data, iters), 4), "warm_up_s": round(warm_up, 1)}
    except Exception as err:  # noqa: BLE001 - a failed variant is a result to report, not a crash
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}


def time_port(config: FlowConfig, data: Tensor, iters: int, potential: Callable, phi: nn.Module) -> float:
    """Seconds per iteration of the authors' step order for the given networks (input gradients by the flow's path)."""
    c, M, shape = config, config.batch_size, tuple(data.shape[1:])
    opt_u = torch.optim.Adam(potential.parameters(), c.lr_potential, betas=c.adam_betas)
    opt_d = torch.optim.Adam(phi.parameters(), c.lr_discriminator, betas=c.adam_betas)
    log = []
    start = time.perf_counter()
    for _ in range(iters + 1):
        if len(log) == c.disc_steps + 1:  # the first iteration is warm-up, as for time_package
            start = time.perf_counter()
        for _ in range(c.disc_steps):
            x = euler_flow(potential, sample_prior(c.prior, M, shape), c.T, c.h, c.lam).final
            y = data[torch.randint(len(data), (M,))]
            dv = lipschitz_kl_dual(phi(x), phi(y))
            x_hat = interpolates(x, y).requires_grad_(True)
            (grad_hat,) = torch.autograd.grad(phi(x_hat).sum(), x_hat, create_graph=True)
            loss = -dv + c.gp_weight * gradient_penalty(grad_hat, c.L)
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            log.append(dv.item())
        path = euler_flow(potential, sample_prior(c.prior, M, shape), c.T, c.h, c.lam, create_graph=True,
                          keep_path=True)
        loss_u = phi(path.final).mean() + c.lam * kinetic_energy(path.velocities, c.h)
        opt_u.zero_grad()
        loss_u.backward()
        opt_u.step()
        log.append(loss_u.item())
    return (time.perf_counter() - start) / iters


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--mnist-iters", type=int, default=4)
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--skip-compile", action="store_true", help="do not try torch.compile (minutes of compiling)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for the CNN (the MLP uses 1)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("train_step.json")))
    args = parser.parse_args()
    # the paper's algorithm (options off) on both sides: the ports implement no well-posedness term
    toy = FlowConfig.preset("lecture_toy_paper", batch_size=200)
    cases = {"toy_mlp_R12": (toy, sample_toy("8gaussians", 5000, dim=12, seed=0), args.iters)}
    if not args.skip_mnist:
        images = torch.rand(1000, 1, 28, 28)  # the step's cost does not depend on the pixel values
        cases["mnist_cnn"] = (FlowConfig.preset("paper_mnist"), images, args.mnist_iters)
    results = {}
    start = time.perf_counter()
    for name, (config, data, iters) in cases.items():
        torch.set_num_threads(1 if config.arch == "mlp" else args.threads)  # train() uses 1 thread for MLPs
        shape = tuple(data.shape[1:])
        if config.arch == "mlp":
            plain_nets = AutogradMLPPotential(shape[0]), AutogradMLPDiscriminator(shape[0])
        else:
            plain_nets = AutogradCNNPotential(), AutogradCNNDiscriminator()
        ours = time_package(config, data, iters)
        original = time_port(config, data, iters, OriginalPotential(shape), OriginalDiscriminator(shape))
        plain = time_port(config, data, iters, *plain_nets)
        results[name] = {"proxflow_edu_s_per_iter": round(ours, 4), "original_port_s_per_iter": round(original, 4),
                         "plain_port_s_per_iter": round(plain, 4),
                         "ratio_to_original_port": round(ours / original, 3),
                         "ratio_to_plain_port": round(ours / plain, 3),
                         "iters_timed": iters, "batch_size": config.batch_size, "disc_steps": config.disc_steps,
                         "euler_steps": config.n_steps, "threads": torch.get_num_threads()}
        if config.arch == "mnist_cnn":
            variants = {"bf16": (config.replace(precision="bf16"), contextlib.nullcontext()),
                        "fp32_without_channels_last": (config, without_channels_last())}
            if not args.skip_compile:
                variants["fp32_torch_compile"] = (config, compiled_networks())
            for label, (variant_config, context) in variants.items():
                row = time_variant(variant_config, data, iters, context)
                if "s_per_iter" in row:
                    row["ratio_to_plain_port"] = round(row["s_per_iter"] / plain, 3)
                    row["ratio_to_original_port"] = round(row["s_per_iter"] / original, 3)
                results[name][label] = row
        print(name, results[name], flush=True)
    meta = {"device": "cpu", "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor() or "unknown", "cpu_count": torch.get_num_threads(),
            "wall_time_s": round(time.perf_counter() - start, 1),
            "note": "ratio = proxflow_edu / port (< 1: ours is faster); compare within one run, not across runs"}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

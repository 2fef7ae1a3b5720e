"""Time one training iteration (disc_steps discriminator steps + 1 potential step, batch 200).

Compares proxflow_edu.train with a plain port of the authors' step order (a fresh Euler pass per
discriminator step, separate forward passes for phi(x), phi(y) and the interpolates, .item() logging
every step) in the same process, for the toy MLP in R^12 and the MNIST CNNs. Writes JSON.

    .venv/bin/python benchmarks/train_step.py [--iters 20] [--skip-mnist] [--out benchmarks/train_step.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from proxflow_edu.data import sample_prior, sample_toy
from proxflow_edu.diagnostics import kinetic_energy
from proxflow_edu.divergences import gradient_penalty, lipschitz_kl_dual
from proxflow_edu.flow import euler_flow, generate
from proxflow_edu.train import FlowConfig, build_networks, train


def time_package(config: FlowConfig, data: torch.Tensor, iters: int) -> float:
    """Seconds per iteration of proxflow_edu.train, from its own clock between the first and last iteration."""
    result = train(config.replace(n_iters=iters + 1, log_every=10**9), data, progress=False)
    t = result.history["time"]
    return (t[-1] - t[0]) / iters


def time_plain_port(config: FlowConfig, data: torch.Tensor, iters: int) -> float:
    """Seconds per iteration of a straightforward port (same math, no batching of the D-step samples)."""
    c, M = config, config.batch_size
    shape = tuple(data.shape[1:])
    potential_net, phi_net = build_networks(c, shape)
    opt_u = torch.optim.Adam(potential_net.parameters(), c.lr_potential, betas=c.adam_betas)
    opt_d = torch.optim.Adam(phi_net.parameters(), c.lr_discriminator, betas=c.adam_betas)
    # plain callables (no explicit input_gradient): every gradient goes through autograd, as in a direct port
    potential = lambda x, t: potential_net(x, t)  # noqa: E731
    phi = lambda x: phi_net(x)  # noqa: E731
    log = []
    start = time.perf_counter()
    for _ in range(iters):
        for _ in range(c.disc_steps):
            x = generate(potential, sample_prior(c.prior, M, shape), c.T, c.h, c.lam)
            y = data[torch.randint(len(data), (M,))]
            dv = lipschitz_kl_dual(phi(x), phi(y))
            loss = -dv + c.gp_weight * gradient_penalty(phi, x, y, c.L)
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            log.append(dv.item())
        path = euler_flow(potential, sample_prior(c.prior, M, shape), c.T, c.h, c.lam, create_graph=True)
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
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for the CNN (the MLP uses 1)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("train_step.json")))
    args = parser.parse_args()
    cases = {"toy_mlp_R12": (FlowConfig(batch_size=200), sample_toy("8gaussians", 5000, dim=12, seed=0), args.iters)}
    if not args.skip_mnist:
        images = torch.rand(1000, 1, 28, 28)  # the step's cost does not depend on the pixel values
        cases["mnist_cnn"] = (FlowConfig.preset("paper_mnist"), images, args.mnist_iters)
    results = {}
    for name, (config, data, iters) in cases.items():
        # the same thread count for both; train() itself uses 1 thread for MLPs
        torch.set_num_threads(1 if config.arch == "mlp" else args.threads)
        ours = time_package(config, data, iters)
        plain = time_plain_port(config, data, iters)
        results[name] = {"proxflow_edu_s_per_iter": round(ours, 4), "plain_port_s_per_iter": round(plain, 4),
                         "speedup": round(plain / ours, 2), "iters_timed": iters, "batch_size": config.batch_size,
                         "disc_steps": config.disc_steps, "euler_steps": config.n_steps, "threads": torch.get_num_threads()}
        print(name, results[name], flush=True)
    meta = {"device": "cpu", "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor() or "unknown",
            "note": "timed on a shared 2-core machine; compare the two columns, not absolute values across runs"}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Straight flows in practice
#
# Theorem 4.1 says the optimal W1 ⊕ W2 flow moves every particle on a straight line at constant speed (22)–(29).
# Such a flow is integrated *exactly* by forward Euler at any step, so it gives the same samples with 1, 2, 5 or 320
# steps, and the W1 proximal lets it land on data that live on a low-dimensional manifold. The flows trained in
# notebooks 01–07 with the paper's algorithm show this only in part: their paths are bent (kinetic energy 1.3× the
# chord energy on the toys), their samples change with the step, and they are on the data plane only at the training
# grid. This notebook asks why, and what to do about it without changing the problem.
#
# **Learning goals.** After this notebook you can
#
# 1. name three reasons why a trained flow is not the MFG optimum: a finite budget, a fixed time grid (the loss
#    sees $U$ only at $t_n=nh$), and a soft Lipschitz bound (the penalty (41));
# 2. derive from the optimality system (20)–(21) the identity $\frac{Dv}{Dt}=-\frac1\lambda\nabla_x r$ with
#    $r=\partial_tU-|\nabla U|^2/(2\lambda)$ the HJ residual, and from it three penalties that **vanish at the
#    optimum** (velocity change along the path, centred HJ residual, terminal-gradient gap), and say why two other
#    options (a random time grid, weight averaging) do not change the continuous problem either;
# 3. check each penalty in closed form, on the Hopf–Lax solution (where it is zero) and on a potential where it is not;
# 4. train the paper's algorithm (`FlowConfig()`) and the course's straight recipe (`lecture_toy_straight`) side
#    by side on a toy in $\mathbb R^{12}$, and read straightness, few-step sampling ($N=1,2,5$), step invariance and
#    the off-plane distance;
# 5. explain the one thing the penalties do **not** fix: near $t=T$ the field that collapses the off-plane
#    directions must grow like $1/(T-t)$, which a smooth network cannot represent;
# 6. read the same comparison on MNIST from the shipped checkpoints.
#
# **Prerequisites.** Notebooks 01 (Euler paths and kinetic energy), 03 (the optimality system, HJ residual) and 04
# (the evaluation: $W_2$/noise floor, off-plane distance, step change). **Time.** 30 min reading; the lecture run
# trains two toy flows and evaluates two shipped MNIST checkpoints (`PROXFLOW_SMOKE=1`: tiny budgets, numbers then
# meaningless). The cell below gives the run times last measured by `make run`; the last cell prints this run's.

# %% tags=["remove-input"]
# the run times last measured by `make run` (notebooks/timings.json); the clock starts here
from IPython.display import Markdown, display

from proxflow_edu.course.timing import elapsed, notebook_timer, run_time_note

notebook_timer()
display(Markdown(run_time_note("08_straight_flows_in_practice")))

# %%
import json
import math
import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from proxflow_edu import checkpoint, diagnostics, metrics, wellposed
from proxflow_edu.course import plotting
from proxflow_edu.config import OFF
from proxflow_edu.data import project_to_plane, sample_toy
from proxflow_edu.diagnostics import hj_residual_pointwise
from proxflow_edu.flow import euler_flow, velocity
from proxflow_edu.course.parameters import check_parameters, parameter_defaults
from proxflow_edu.config import FlowConfig
from proxflow_edu.train import train

# %% tags=["parameters"]
SMOKE = os.environ.get("PROXFLOW_SMOKE", "0") == "1"
seed = 0
dataset = "8gaussians"
dim = 12
# training iterations of each toy flow (the benchmark's budget)
n_iters = 30 if SMOKE else 1500
n_train = 2_000 if SMOKE else 20_000  # training samples of pi
n_eval = 200 if SMOKE else 1_000      # samples for W2, noise floor and the path diagnostics
fine_steps = 320                      # the "continuous" reference: T/320
n_mnist = 40 if SMOKE else 300        # prior samples pushed through each shipped MNIST flow
n_threads = 1   # torch threads: these MLPs are too small to gain from more
DEFAULTS = parameter_defaults(globals())  # what papermill -p / -y may change, checked below

# %%
check_parameters(globals(), DEFAULTS)  # a wrong type or range fails here, naming the parameter
torch.set_num_threads(n_threads)
torch.manual_seed(seed)
print(f"smoke mode: {SMOKE}")

# %% [markdown]
# ## 1 · Why a trained flow is not the optimum
#
# Training minimises $J_G=\overline{\varphi(x_N)}+\lambda\,\mathrm{KE}_h$ (42) against a discriminator that is itself
# being trained (40)–(41). Three things separate the result from the solution $(U^\ast,\rho^\ast)$ of (20)–(21):
#
# * **A finite budget.** A two-player game trained for 1,500 iterations (the authors' repository: 25,000) stops wherever it is.
#   Among all flows that reach nearly the same $\rho_T$, the kinetic energy prefers the straight one, but with weight
#   $\lambda=0.1$ its gradient is small next to the terminal cost's, so bent paths with slightly smaller terminal cost
#   survive a long time.
# * **A fixed grid.** The loss evaluates $U$ only at $(x_n,t_n)$, $t_n=nh$, $N=T/h=5$. Nothing asks the network to be
#   a good potential *between* the grid times, so an Euler path with a finer step queries $U$ where it was never
#   trained; if the samples then change with the step, it is because the field is inaccurate there, not Euler.
#   Whether this matters depends on the network: section 4 measures the HJ residual on and between the grid times.
# * **A soft Lipschitz bound.** The gradient penalty (41) keeps $|\nabla\varphi|$ near $L$ only where it is
#   evaluated (interpolates between samples and data), so the terminal condition (21) $U(\cdot,T)=\varphi^\ast$ holds
#   only roughly.
#
# ## 2 · Terms that vanish at the optimum
#
# **The material derivative of the velocity.** Let $v=-\nabla U/\lambda$ and follow a particle, $\dot x=v(x,t)$. Then
# $$\frac{Dv}{Dt}=\partial_tv+(v\cdot\nabla)v=-\frac1\lambda\nabla\partial_tU+\frac1{\lambda^2}(\nabla^2U)\nabla U ,$$
# $$\frac{Dv}{Dt}=-\frac1\lambda\nabla\Big(\partial_tU-\frac{|\nabla U|^2}{2\lambda}\Big)=-\frac1\lambda\nabla r ,$$
# using $\nabla\frac12|\nabla U|^2=(\nabla^2U)\nabla U$. The HJ equation (20) says $r=0$, so on its solution every
# particle keeps its velocity: the characteristics are straight at constant speed (24). Any $r$ that depends only on
# $t$ gives the same flow ($U+c(t)$ has the same gradient), so what matters is $r$ minus its mean over particles.
#
# This suggests three penalties, each **zero on the exact solution**, so adding them to (42) does not move the
# optimum of the continuous problem (19). That is all they guarantee: with networks, a finite budget and the N-step
# objective, training does not reach that optimum, and the penalties change which flow it reaches instead (§4
# measures how, on fit as well as straightness). They penalise being away from the optimum:
#
# | option (`FlowConfig`) | term added to $J_G$ | why it vanishes at the optimum | cost |
# |---|---|---|---|
# | `velocity_change_weight` $\beta$ | $\beta\frac1M\sum_i\sum_{n}\tfrac12\lvert v^i_{n+1}-v^i_n\rvert^2$ | $v_{n+1}-v_n\approx h\,Dv/Dt=-\frac h\lambda\nabla r=0$ | none: the $v_n$ are the Euler steps' |
# | `hj_weight` | $T\,\frac1M\sum_i(r_i-\bar r)^2$ at one random $t\sim U[0,T)$ on the path | (20), centred | one extra $\nabla_{x,t}U$ |
# | `terminal_weight` | $\frac1M\sum_i\lvert\nabla U(x^i_N,T)-\nabla\varphi(x^i_N)\rvert^2$ | (21) in gradient form | one extra $\nabla_xU$ |
#
# Two more options change the *discrete* problem, not the continuous one: `random_time_grid` jitters the interior
# times $t_n=(n+u_n)h$ of the training path, so $U$ is trained at all times (the fixed-grid problem above); and
# `ema_decay` samples with an exponential moving average of $U$'s weights, which damps the oscillation of the game and
# changes no loss. Two rules written in `benchmarks/wellposed.py`, applied to candidates trained for the same 60 s
# on 4 manifolds × $\mathbb R^7,\mathbb R^{12}$ × 2 seeds, choose what the course uses: `FlowConfig()` is the
# straightest candidate that fits no worse than the paper's algorithm on *every* cell, and none with an option does,
# so it is the paper's algorithm (preset `lecture_toy_paper`); the straight recipe `lecture_toy_straight` is the
# straightest one that fits no worse *on average*. §4 reads both rules' tables.
#
# ## 3 · The penalties in closed form
#
# Three checks, each against a formula:
#
# * **Hopf–Lax.** With $\varphi^\ast=\frac a2|x|^2$ the solution of (20)–(21) is $U(x,t)=\frac{a\lambda|x|^2}
#   {2(\lambda+a(T-t))}$ (method.md §9). Its Euler path at any step has *equal* velocities (one Euler step maps
#   $x_n$ to $x_n\frac{\lambda+a(T-t_{n+1})}{\lambda+a(T-t_n)}$, so $v_{n+1}=v_n$), its HJ residual is 0 and
#   $\nabla U(\cdot,T)=\nabla\varphi^\ast$: all three penalties must be 0.
# * **A potential that is not a solution.** $U(x,t)=t\,b\cdot x$ has $v_n=-t_nb/\lambda$, so the velocity change of an
#   $N$-step path is exactly $(N-1)\frac12|b|^2h^2/\lambda^2$; its residual is $r=b\cdot x-t^2|b|^2/(2\lambda)$, whose
#   centred square is $T\,\overline{(b\cdot(x-\bar x))^2}$; and against $\varphi(x)=c\cdot x$ its terminal gap is
#   $|Tb-c|^2$.
# * **The identity** $Dv/Dt=-\nabla r/\lambda$ for a potential that solves nothing: the finite difference
#   $(v(x+\delta v,t+\delta)-v(x,t))/\delta$ must match $-\nabla r/\lambda$ computed by autograd.

# %%
lam_c, T_c, a_c, N_c = 0.1, 1.0, 0.8, 5
h_c = T_c / N_c
g64 = torch.Generator().manual_seed(seed)
x_c = torch.randn(256, dim, dtype=torch.float64, generator=g64)


def hopf_lax(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """U(x, t) = a lam |x|^2 / (2 (lam + a (T - t))): the solution of (20) with U(., T) = a |x|^2 /
    2."""
    t = torch.as_tensor(t, dtype=x.dtype)
    return a_c * lam_c * x.pow(2).sum(1) / (2 * (lam_c + a_c * (T_c - t)))


b_c = torch.linspace(-1.0, 1.0, dim, dtype=torch.float64)
c_c = torch.linspace(0.5, -0.5, dim, dtype=torch.float64)


def linear_in_time(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """U(x, t) = t b.x, not a solution of (20)."""
    return torch.as_tensor(t, dtype=x.dtype) * (x @ b_c)


closed = {}
path_hl = euler_flow(hopf_lax, x_c, T_c, h_c, lam_c, keep_path=True)
closed["Hopf-Lax: velocity change"] = (float(wellposed.velocity_change(path_hl.velocities)), 0.0)
closed["Hopf-Lax: HJ penalty at t = 0.37"] = (
    float(wellposed.hj_penalty(hopf_lax, x_c, 0.37, lam_c, T_c, create_graph=False)), 0.0)
closed["Hopf-Lax: terminal gap"] = (
    float(
        wellposed.terminal_gap(
            hopf_lax, lambda x: a_c * x.pow(2).sum(1) / 2, path_hl.final, T_c, create_graph=False
        )
    ),
    0.0,
)
path_lin = euler_flow(linear_in_time, x_c, T_c, h_c, lam_c, keep_path=True)
closed["t b.x: velocity change"] = (float(wellposed.velocity_change(path_lin.velocities)),
                                    (N_c - 1) * 0.5 * float(b_c.pow(2).sum()) * h_c**2 / lam_c**2)
closed["t b.x: HJ penalty at t = 0.37"] = (
    float(wellposed.hj_penalty(linear_in_time, x_c, 0.37, lam_c, T_c, create_graph=False)),
    T_c * float(((x_c - x_c.mean(0)) @ b_c).pow(2).mean()))
closed["t b.x: terminal gap against c.x"] = (
    float(
        wellposed.terminal_gap(
            linear_in_time, lambda x: x @ c_c, path_lin.final, T_c, create_graph=False
        )
    ),
    float((T_c * b_c - c_c).pow(2).sum()),
)

# the identity Dv/Dt = -grad r / lambda for a potential that solves nothing (float64, autograd)
w_c = torch.linspace(0.3, -0.6, dim, dtype=torch.float64)


def wiggly(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=x.dtype)
    return torch.sin(x @ w_c) * (1 + t) + t**2 * x.pow(2).sum(1) / 4


def v_field(x: torch.Tensor, t: float) -> torch.Tensor:
    return velocity(wiggly, x, t, lam_c)  # -grad_x U / lambda, the package's


x_id, t_id, delta = x_c[:32].clone(), 0.4, 1e-6
material = (v_field(x_id + delta * v_field(x_id, t_id), t_id + delta) - v_field(x_id, t_id)) / delta
xg = x_id.clone().requires_grad_(True)
tg = torch.full((len(xg),), t_id, dtype=torch.float64, requires_grad=True)
grad_x, d_t = torch.autograd.grad(wiggly(xg, tg).sum(), (xg, tg), create_graph=True)
residual = d_t - grad_x.pow(2).sum(1) / (2 * lam_c)
(grad_r,) = torch.autograd.grad(residual.sum(), xg)
identity_error = float((material + grad_r / lam_c).norm() / material.norm())

lines = ["| case | package | closed form |", "|---|---|---|"]
lines += [f"| {k} | {got:.6g} | {want:.6g} |" for k, (got, want) in closed.items()]
display(
    Markdown(
        "\n".join(lines)
        + f"\n\nDv/Dt against -grad r / lambda: relative difference {identity_error:.1e}"
    )
)
for name, (got, want) in closed.items():
    assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), (name, got, want)
assert identity_error < 1e-4, identity_error
print("closed-form checks of the three penalties passed")

# %% [markdown]
# ## 4 · The paper's algorithm and the course's straight recipe, side by side
#
# Two W1 ⊕ W2 runs on 8 gaussians on a plane in $\mathbb R^{12}$, with the same data, seed, networks, step
# ($N=5$) and $\lambda$, each given the iterations that fit about the same training time. The straight recipe adds
# the velocity change ($\beta=0.3$) and trains with twice the learning rates and 2 discriminator steps per iteration
# instead of 5 (so more iterations fit the same time).
#
# **Budget versus the authors' runs.** The 12-D toy runs of the authors' repository (method.md §8) use $\lambda=0.1$, $\gamma=0.01$, constant learning rates
# $10^{-4}/2\cdot10^{-5}$ and **25,000 iterations** (`FlowConfig.preset("paper_toy_highdim")`); here both runs use
# the lecture setting (printed below), a few percent of that budget.

# %%
data = sample_toy(dataset, n_train, dim=dim, seed=seed)
held = sample_toy(dataset, n_eval, dim=dim, seed=seed + 1000)
floor = metrics.noise_floor(data, n_eval, seed=seed)
straight_preset = FlowConfig.preset("lecture_toy_straight")
# the recipe's share of the same time: its preset's iterations per lecture_toy_paper iteration
paper_iters = FlowConfig.preset("lecture_toy_paper").n_iters
n_straight = round(n_iters * straight_preset.n_iters / paper_iters)
configs = {"paper-faithful": FlowConfig.preset("lecture_toy_paper", n_iters=n_iters, seed=seed),
           "well-posed in practice": straight_preset.replace(n_iters=n_straight, seed=seed)}
# the paper's algorithm is FlowConfig(); the recipe is it plus the options the benchmark chose
bench_defaults = json.loads(Path("../benchmarks/wellposed.json").read_text())["defaults"]
recipe_options = bench_defaults["recipe"]["options"]
assert configs["paper-faithful"] == FlowConfig(n_iters=n_iters, seed=seed)
assert configs["well-posed in practice"] == configs["paper-faithful"].replace(**recipe_options,
                                                                             n_iters=n_straight)
paper = FlowConfig.preset("paper_toy_highdim")
c = configs["well-posed in practice"]
print(textwrap.fill(
    f"here:  lam={c.lam}, gp_weight={c.gp_weight}, lr U/phi={c.lr_potential:g}/"
    f"{c.lr_discriminator:g} ({c.lr_schedule}), n_iters={c.n_iters}; options: "
    + ", ".join(f"{k}={getattr(c, k)}" for k in OFF if getattr(c, k) != OFF[k]),
    width=100, subsequent_indent=" " * 7))
print(f"paper: lam={paper.lam}, gp_weight={paper.gp_weight}, lr U/phi={paper.lr_potential:g}/"
      f"{paper.lr_discriminator:g} ({paper.lr_schedule}), n_iters={paper.n_iters}")
results = {label: train(cfg, data) for label, cfg in configs.items()}
for label, r in results.items():
    print(f"{label}: {r.iterations_done} iterations in {r.wall_time:.1f} s "
          f"({r.wall_time / max(r.iterations_done, 1) * 1e3:.1f} ms/iteration)")


# %% [markdown]
# Both flows push the **same** prior samples. For each we measure, at $N=1,2,5$ (training) and $320$ steps: $W_2$ to
# held-out data over its noise floor (the $W_2$ between two samples of the data of this size); the kinetic energy
# over the chord energy (1 = straight at constant speed); the step change $|x_T^{N=5}-x_T^{N=320}|$ relative to the
# distance moved; the mean distance from the data plane; the velocity change along the training path; and the
# centred HJ residual $h\sum_n\overline{|r-\bar r|}$ at the grid times $t_n$ and half-way between them,
# $t_n+h/2$ on the path (the grid is where the paper's loss sees $U$).

# %%
def centred_hj(potential, path, h: float, lam: float, offset: float) -> float:
    """h sum_n mean_i |r - mean r| at (x_n + offset h v_n, t_n + offset h): the path's points
    between the grid."""
    total = 0.0
    for n in range(path.velocities.shape[0]):
        r = hj_residual_pointwise(
            potential, path.states[n] + offset * h * path.velocities[n], (n + offset) * h, lam
        )
        total += h * float((r - r.mean()).abs().mean())
    return total


def toy_scores(result, x0: torch.Tensor) -> dict:
    c, u = result.config, result.sampling_potential
    paths = {
        n: euler_flow(u, x0, c.T, c.T / n, c.lam, keep_path=True)
        for n in (1, 2, c.n_steps, fine_steps)
    }
    row = {f"w2_N{n}": metrics.w2_distance(p.final, held) / floor for n, p in paths.items()}
    for key, n in (("train", c.n_steps), ("fine", fine_steps)):
        states = paths[n].states
        row[f"ke_chord_{key}"] = float(diagnostics.path_kinetic_energy(states, c.T / n)
                                       / diagnostics.chord_kinetic_energy(states, c.T))
        row[f"off_{key}"] = float(metrics.off_manifold_distance(paths[n].final).mean())
    moved = (paths[fine_steps].final - x0).norm(dim=1).mean()
    row["step_change"] = float(
        (paths[c.n_steps].final - paths[fine_steps].final).norm(dim=1).mean() / moved
    )
    row["velocity_change"] = float(wellposed.velocity_change(paths[c.n_steps].velocities))
    row["hj_grid"] = centred_hj(u, paths[c.n_steps], c.h, c.lam, 0.0)
    row["hj_between"] = centred_hj(u, paths[c.n_steps], c.h, c.lam, 0.5)
    row["paths"] = paths
    return row


x0 = results["paper-faithful"].prior(n_eval, seed=seed + 7)
toy = {label: toy_scores(r, x0) for label, r in results.items()}
x0_off = float(metrics.off_manifold_distance(x0).mean())
# the table is transposed: one row per metric (`columns` lists them), one column per run
columns = [
    ("w2_N1", "$W_2$/floor N=1", ".2f"),
    ("w2_N2", "$W_2$/floor N=2", ".2f"),
    ("w2_N5", "$W_2$/floor N=5", ".2f"),
    (f"w2_N{fine_steps}", f"$W_2$/floor N={fine_steps}", ".2f"),
    ("ke_chord_train", "KE/chord N=5", ".3f"),
    ("ke_chord_fine", f"KE/chord N={fine_steps}", ".3f"),
    ("step_change", "step change", ".3f"),
    ("off_train", "off-plane N=5", ".3f"),
    ("off_fine", f"off-plane N={fine_steps}", ".3f"),
    ("velocity_change", "velocity change", ".3g"),
    ("hj_grid", "HJ at $t_n$", ".3f"),
    ("hj_between", "HJ at $t_n+h/2$", ".3f"),
]
table = [
    f"| W1 ⊕ W2, {dataset} in $\\mathbb R^{{{dim}}}$ | " + " | ".join(toy) + " |",
    "|---|" + "---|" * len(toy),
]
for k, name, f in columns:
    table.append(f"| {name} | " + " | ".join(format(row[k], f) for row in toy.values()) + " |")
display(
    Markdown(
        "\n".join(table) + f"\n\n$n={n_eval}$, noise floor {floor:.3f}, prior off-plane distance "
        f"{x0_off:.2f}; smoke mode: {SMOKE}."
    )
)

# %% tags=["remove-input"]
a, b = toy["paper-faithful"], toy["well-posed in practice"]
# the same two configurations in the course's benchmark, over its seeds: one run is one seed
summary, recipe = bench_defaults["summary"], bench_defaults["recipe"]["chosen"]
seeds = sorted({r["seed"] for r in bench_defaults["records"] if r["config"] == "paper"})
bench_note = ""
if f"{recipe} | {dataset} R^{dim}" in summary:
    p_b, w_b = (summary[f"{k} | {dataset} R^{dim}"] for k in ("paper", recipe))
    budget_s = bench_defaults["meta"]["budget_s"]
    bench_note = (
        f" The course's benchmark (`benchmarks/wellposed.json`, part \"defaults\", {len(seeds)} "
        f"seeds, {budget_s:.0f} s per run) measured the same pair: KE/chord at N = 5 "
        f"{p_b['ke_chord_Ntrain']:.2f} → {w_b['ke_chord_Ntrain']:.2f}, W2/floor at N = 2 "
        f"{p_b['w2_floor_N2']:.2f} → {w_b['w2_floor_N2']:.2f} and at N = 5 "
        f"{p_b['w2_floor_N5']:.2f} → {w_b['w2_floor_N5']:.2f}, off-plane at N = 320 "
        f"{p_b['off_plane_N320']:.3f} → {w_b['off_plane_N320']:.3f} (means over the seeds): "
        "the off-plane distance at many steps is what the penalties do not fix (§5)."
    )


def compare(key: str, name: str, spec: str = ".3f") -> str:
    verb = "lower" if b[key] < a[key] else "not lower"
    return f"{name} {format(a[key], spec)} → {format(b[key], spec)} ({verb})"


display(
    Markdown(
        "**What this run shows** (generated from the table): paper-faithful → well-posed: "
        + "; ".join(
            [
                compare("ke_chord_train", "KE/chord at N = 5"),
                compare("w2_N1", "W2/floor at N = 1", ".2f"),
                compare("w2_N2", "W2/floor at N = 2", ".2f"),
                compare("w2_N5", "at N = 5", ".2f"),
                compare("step_change", "step change"),
                compare("off_train", "off-plane at N = 5"),
                compare("off_fine", f"off-plane at N = {fine_steps}"),
            ]
        )
        + ". The paper-faithful flow's centred HJ residual is "
          f"{a['hj_between'] / max(a['hj_grid'], 1e-12):.2f}× as "
        "large between the grid times as on them (well-posed: "
        f"{b['hj_between'] / max(b['hj_grid'], 1e-12):.2f}×)."
        + bench_note
    )
)

# %% [markdown]
# ### Paths, and the distance from the plane along them
#
# Top: 60 paths of each flow with the training step, projected on the data plane ($z=B^\top x$). Bottom: the mean
# distance from the plane along the $N=320$ path; the straight-line flow to the plane would decrease it *linearly* to
# 0 (dashed), because the off-plane part of a straight constant-speed path is $(1-t/T)\,x_0^\perp$.

# %%
# two path panels side by side, the distance from the plane below them (9 in: fits a laptop screen)
fig = plt.figure(figsize=(9, 8.6), layout="constrained")
axd = fig.subplot_mosaic([["paper", "well-posed"], ["off", "off"]], height_ratios=[1.1, 1])
axs = [axd["paper"], axd["well-posed"], axd["off"]]
for ax, (label, row) in zip(axs[:2], toy.items()):
    states = row["paths"][configs[label].n_steps].states
    plotting.plot_trajectories(
        project_to_plane(states.flatten(0, 1)).reshape(states.shape[0], states.shape[1], 2),
        project_to_plane(held),
        ax=ax,
        n_paths=60,
        title=f"{label}: KE/chord {row['ke_chord_train']:.3f}",
    )
    ax.set(xlim=(-4, 4), ylim=(-4, 4), xlabel="$z_1$ (data units)", ylabel="$z_2$")
ts = torch.linspace(0, 1, fine_steps + 1)
for k, (label, row) in enumerate(toy.items()):
    off_t = metrics.off_manifold_distance(row["paths"][fine_steps].states.flatten(0, 1)).reshape(
        fine_steps + 1, -1
    )
    axs[2].plot(ts, off_t.mean(dim=1), c=f"C{k}", label=label)
axs[2].plot(ts, x0_off * (1 - ts), "k--", lw=0.8, label="straight to the plane")
axs[2].set(
    xlabel="$t/T$",
    ylabel="mean distance from the plane (data units)",
    yscale="log",
    ylim=(5e-3, 5),
    title=f"off-plane distance along the N={fine_steps} path",
)
axs[2].legend(fontsize=9)
plt.show()

# %% [markdown]
# ## 5 · What the penalties do not fix: the last moment
#
# A particle that starts at distance $d_0$ from the plane and reaches it on a straight line at constant speed has
# off-plane velocity $-d_0/T$ for the whole time. As a *field*, at the point $x$ and time $t$ that velocity is
# $v^\perp(x,t)=-x^\perp/(T-t)$: it must grow without bound as $t\to T$, because particles at distance $x^\perp$ have
# only $T-t$ left. A network $U_\theta(x,t)$ with a smooth, bounded gradient cannot follow $1/(T-t)$, so a fine Euler
# path, which queries the field ever closer to $T$, stops contracting just before the end. The 5-step path of
# training queries the field last at $t=T-h$, where it needs only $x^\perp/h$: that is what training fits, and that is
# why the flows are on the plane at the training grid and off it at $N=320$, with or without the penalties (both rows
# of the table; the benchmark measured the same, `benchmarks/wellposed.json`). The penalties are about straightness
# and the constant speed; the collapse onto the plane at $t\to T$ is a property of the exact solution that the
# parametrisation misses. Exercise 4 measures the factor.
#
# ## 6 · The same comparison on MNIST, from the shipped checkpoints
#
# `checkpoints/mnist_w1w2_paper` is the paper's algorithm at the CPU budget (preset `cpu_mnist_paper`: the paper's
# CNNs, $T=5$, $h=1$, $\lambda=0.05$, $L=1$, with batch 64 and 1,800 iterations instead of 200 and 5,000, notebook 07);
# `checkpoints/mnist_w1w2` is the course's recommended run so far (preset `cpu_mnist`: the same with the velocity
# change and the HJ penalty at weight 1, chosen on two toys before the rules of `benchmarks/wellposed.py`; the MNIST
# rule is `benchmarks/mnist_recipe.py`). We push the same prior samples through both with the training step $h=1$ and with $h=1/64$, and
# score the samples with the course's classifier (trained with outlier exposure, so that noise, blends and blur are
# *not* confident; its table is on the book's "Reproducing" page).

# %%
from proxflow_edu.mnist.classifier import load_classifier, score_samples  # noqa: E402

CKPT = Path("../checkpoints")
classifier = load_classifier()
mnist = {}
for label, run in (
    ("paper-faithful", "mnist_w1w2_paper"),
    ("well-posed in practice", "mnist_w1w2"),
):
    r = checkpoint.load(CKPT / run)
    c = r.config
    x0_m = r.prior(n_mnist, seed=seed + 100)
    row = {
        "run": run,
        "iterations": r.iterations_done,
        "train_s": r.wall_time,
        "options": ", ".join(f"{k}={getattr(c, k)}" for k in OFF if getattr(c, k) != OFF[k])
        or "none",
    }
    with torch.no_grad():
        for key, h in (("h1", c.h), ("h64", c.h / 64)):
            p = euler_flow(r.sampling_potential, x0_m, c.T, h, c.lam, keep_path=True)
            row[f"ke_chord_{key}"] = float(diagnostics.path_kinetic_energy(p.states, h)
                                           / diagnostics.chord_kinetic_energy(p.states, c.T))
            sc = score_samples(p.final.clamp(0, 1), classifier)
            row[f"confident_{key}"], row[f"top_share_{key}"] = (
                sc.confident,
                max(sc.class_counts) / sc.n,
            )
            row[f"x_{key}"] = p.final
            # R_HJ (43) on the training grid, and centred (a time-only drift removed)
            if key == "h1":
                row["hj"] = diagnostics.hj_residual(r.sampling_potential, p.states, h, c.lam)
                row["hj_centred"] = diagnostics.hj_residual(
                    r.sampling_potential, p.states, h, c.lam, centered=True
                )
    moved = (row["x_h64"] - x0_m).flatten(1).norm(dim=1).mean()
    row["step_change"] = float((row["x_h1"] - row["x_h64"]).flatten(1).norm(dim=1).mean() / moved)
    mnist[label] = row
# one row per metric, one column per checkpoint
cols = [
    ("step_change", "step change h=1 vs 1/64", ".3f"),
    ("ke_chord_h1", "KE/chord h=1", ".3f"),
    ("ke_chord_h64", "KE/chord h=1/64", ".3f"),
    ("hj", "$R_{HJ}$ (43), h=1", ".3f"),
    ("hj_centred", "$R_{HJ}$ (43) centred, h=1", ".3f"),
    ("confident_h1", "confident h=1", ".2f"),
    ("confident_h64", "confident h=1/64", ".2f"),
    ("top_share_h1", "most frequent digit h=1", ".2f"),
]
lines = ["| MNIST run | " + " | ".join(f"{label} (`{row['run']}`)" for label, row in mnist.items())
         + " |", "|---|" + "---|" * len(mnist)]
lines.append("| options | " + " | ".join(row["options"] for row in mnist.values()) + " |")
lines.append("| iterations | " + " | ".join(str(r["iterations"]) for r in mnist.values()) + " |")
for k, name, f in cols:
    lines.append(f"| {name} | " + " | ".join(format(row[k], f) for row in mnist.values()) + " |")
display(
    Markdown(
        "\n".join(lines) + f"\n\n{n_mnist} prior samples (seed {seed + 100}); smoke mode: {SMOKE}."
    )
)

fig, axs = plt.subplots(2, 2, figsize=(9, 9.4), layout="constrained")
for i, (label, row) in enumerate(mnist.items()):
    for j, key in enumerate(("h1", "h64")):
        plotting.image_grid(row[f"x_{key}"][:36].clamp(0, 1), nrow=6, ax=axs[i, j],
                            title=f"{label}, h = {'1' if key == 'h1' else '1/64'}")
plt.show()

# %% [markdown]
# The course's benchmark scored every shipped MNIST run of the options on 500 prior samples (one training seed each:
# a run is 15–30 minutes of one core). Its table, read from `benchmarks/wellposed.json`:

# %%
bench_mnist = json.loads(Path("../benchmarks/wellposed.json").read_text())["mnist"]
# two tables with the same rows: the runs' options and paths, then their samples
cols_paths = [("step_change", "step change", ".3f"), ("ke_chord_h1", "KE/chord h=1", ".3f"),
              ("ke_chord_h1_64", "KE/chord h=1/64", ".3f"), ("R_HJ", "$R_{HJ}$", ".3f"),
              ("R_T", "$R_T$", ".3f")]
cols_samples = [("confident_h1", "confident h=1", ".3f"),
                ("confident_h1_64", "confident h=1/64", ".3f"),
                ("top_digit_share_h1", "top digit h=1", ".3f"),
                ("frechet_h1", "Fréchet h=1", ".0f"), ("train_s", "training s", ".0f")]
lines_paths = ["| run | options | " + " | ".join(c[1] for c in cols_paths) + " |",
               "|---|---|" + "---|" * len(cols_paths)]
lines_samples = ["| run | " + " | ".join(c[1] for c in cols_samples) + " |",
                 "|---|" + "---|" * len(cols_samples)]
for label, row in bench_mnist["results"].items():
    opts = ", ".join(f"{k}={v}" for k, v in row["options"].items())
    opts = opts or "none (the paper's algorithm)"
    lines_paths.append(f"| `{row['run']}` | {opts} | "
                       + " | ".join(format(row[k], f) for k, _, f in cols_paths) + " |")
    lines_samples.append(f"| `{row['run']}` | "
                         + " | ".join(format(row[k], f) for k, _, f in cols_samples) + " |")
lines = lines_paths + [""] + lines_samples
res = bench_mnist["results"]
spread = ""
# the same configuration from another seed: the noise floor of the comparison
if "combination, seed 1" in res:
    c0, c1 = res["combination"], res["combination, seed 1"]
    spread = (
        " **Run-to-run spread** (the recommended configuration from two training seeds): step "
        "change "
        f"{c0['step_change']:.2f} and {c1['step_change']:.2f}, confident at $h=1$ "
        f"{c0['confident_h1']:.3f} and "
        f"{c1['confident_h1']:.3f}, most frequent digit {c0['top_digit_share_h1']:.2f} and "
        f"{c1['top_digit_share_h1']:.2f}, Fréchet {c0['frechet_h1']:.0f} and "
        f"{c1['frechet_h1']:.0f}: differences "
        f"between single runs of the options smaller than these are not evidence."
    )
straightest = min(res, key=lambda k: res[k]["step_change"])
clearest = max(res, key=lambda k: res[k]["confident_h1"])
reading = (
    " **Reading the table** (generated): the smallest step change is "
    f"`{res[straightest]['run']}`'s "
    f"({res[straightest]['step_change']:.2f}), the most confident samples at $h=1$ are "
    f"`{res[clearest]['run']}`'s ({res[clearest]['confident_h1']:.3f}, paper-faithful "
    f"{res['baseline']['confident_h1']:.3f})"
    + (
        ", the same run."
        if straightest == clearest
        else f"; at this budget no run is best at both (the clearest has step change "
        f"{res[clearest]['step_change']:.2f}, the straightest confident "
        f"{res[straightest]['confident_h1']:.3f})."
    )
)
display(
    Markdown(
        "\n".join(lines) + f"\n\n{bench_mnist['meta']['n']} samples, prior seed "
        f"{bench_mnist['meta']['prior_seed']}; {bench_mnist['meta']['note']}." + spread + reading
    )
)

# %% tags=["remove-input"]
a_m, b_m = mnist["paper-faithful"], mnist["well-posed in practice"]
targets = [("step change ≤ 0.10", b_m["step_change"] <= 0.10, b_m["step_change"]),
           ("KE/chord at h = 1/64 ≤ 1.1", b_m["ke_chord_h64"] <= 1.1, b_m["ke_chord_h64"]),
           ("R_HJ ≤ 0.25", b_m["hj"] <= 0.25, b_m["hj"]),
           ("no digit above 20 % at h = 1", b_m["top_share_h1"] <= 0.2, b_m["top_share_h1"])]
display(
    Markdown(
        "**What the MNIST checkpoints show** (generated): the step change between $h=1$ and "
        "$h=1/64$ goes from "
        f"{a_m['step_change']:.0%} (paper-faithful) to {b_m['step_change']:.0%} (well-posed), "
        "KE/chord at $h=1/64$ from "
        f"{a_m['ke_chord_h64']:.2f} to {b_m['ke_chord_h64']:.2f}, the HJ residual $R_{{HJ}}$ from "
        f"{a_m['hj']:.2f} to "
        f"{b_m['hj']:.2f} (centred: {a_m['hj_centred']:.2f} to {b_m['hj_centred']:.2f}), and the "
        f"confident fraction at $h=1$ from {a_m['confident_h1']:.2f} to "
        f"{b_m['confident_h1']:.2f}. The course's targets for the recommended run: "
        + "; ".join(
            f"{name}: {'met' if ok else 'missed'} ({value:.3g})" for name, ok, value in targets
        )
        + "."
    )
)
rec = checkpoint.load(CKPT / "mnist_w1w2")
half = len(rec.history["iteration"]) // 2  # the second half of training, after the transient
term = {
    k: sum(rec.history[k][half:]) / len(rec.history[k][half:])
    for k in ("velocity_change", "hj_penalty", "kinetic_energy", "terminal_cost")
}
display(
    Markdown(
        "**Which term does the work on MNIST** (generated from the recommended run's training "
        "history, second half): "
        f"the velocity change averaged {term['velocity_change']:.3g} (weight "
        f"{rec.config.velocity_change_weight:g}), the "
        f"HJ penalty {term['hj_penalty']:.1e} (weight {rec.config.hj_weight:g}), "
        "$\\lambda\\,\\mathrm{{KE}}_h$ "
        f"{rec.config.lam * term['kinetic_energy']:.3g} and the terminal cost "
        f"{term['terminal_cost']:.3g}. The HJ residual "
        "is measured in units of $U$, whose gradient is $\\lambda|v|$ with "
        f"$\\lambda={rec.config.lam:g}$, so at weight 1 "
        "its penalty is orders of magnitude below the other terms: on MNIST the velocity change "
        "is what straightens the "
        f"flow, and the HJ penalty would need a weight of order $1/\\lambda^2$ to act."
    )
)

# %% [markdown]
# ## 7 · Checks

# %%
# (a) the paper-faithful run is FlowConfig(), the other is the benchmark's recipe, trained with its
# velocity change (its history)
assert results["paper-faithful"].config == FlowConfig(n_iters=n_iters, seed=seed)
straight_config = results["well-posed in practice"].config
assert straight_config.velocity_change_weight == recipe_options["velocity_change_weight"] > 0
assert results["well-posed in practice"].iterations_done == n_straight
for label, row in toy.items():
    assert all(math.isfinite(row[k]) for k, _, _ in columns), label
    # Cauchy-Schwarz
    assert row["ke_chord_train"] >= 1 - 1e-5 and row["ke_chord_fine"] >= 1 - 1e-5, label
# the prose's claims about the benchmark (introduction, sections 2 and 4-5): the paper's algorithm
# bends its paths (KE/chord about 1.3), the rules chose as said, and, with or without the options,
# the flows are farther off the plane at N = 320 than at N = 5
assert round(summary[f"paper | {dataset} R^{dim}"]["ke_chord_Ntrain"], 1) == 1.3
assert bench_defaults["choice"]["chosen"] == "paper"
assert bench_defaults["recipe"]["chosen"] == recipe
for label, row in summary.items():
    if label.startswith(("paper |", f"{recipe} |")):
        assert row["off_plane_N320"] > row["off_plane_N5"], label
# (b) with the lecture budget the penalties make the flow straighter and better at few steps
# (benchmark: 2 seeds), and neither flow is on the plane at N = 320 (section 5)
if not SMOKE:
    assert a["off_fine"] > a["off_train"] and b["off_fine"] > b["off_train"], (
        a["off_fine"],
        b["off_fine"],
    )
    assert b["ke_chord_train"] < a["ke_chord_train"], (b["ke_chord_train"], a["ke_chord_train"])
    assert b["velocity_change"] < a["velocity_change"], (b["velocity_change"], a["velocity_change"])
    assert b["w2_N2"] < a["w2_N2"], (b["w2_N2"], a["w2_N2"])
# (c) MNIST: the shipped recommended run is the paper-faithful one plus the options, and it changes
# less with h
paper_mnist_run = checkpoint.load(CKPT / "mnist_w1w2_paper")
assert checkpoint.load(CKPT / "mnist_w1w2").config.replace(**OFF) == paper_mnist_run.config
# the budget quoted above
assert (paper_mnist_run.config.batch_size, paper_mnist_run.config.n_iters) == (64, 1800)
assert b_m["step_change"] < a_m["step_change"], (b_m["step_change"], a_m["step_change"])
print("training and checkpoint checks passed")

# %% [markdown]
# ## Exercises
#
# 1. **The identity, by hand.** Derive $\frac{Dv}{Dt}=-\frac1\lambda\nabla r$ for $v=-\nabla U/\lambda$ in
#    coordinates, and show that a residual that depends only on $t$ leaves the flow unchanged.
# 2. **Why centred?** Add $c(t)=5t^2$ to the trained well-posed potential (a wrapper `lambda x, t: U(x, t) + 5 * t**2`),
#    check that its samples are identical, and compare the centred and the uncentred HJ penalty of both potentials at
#    $t=0.5$ on the same points.
# 3. **The other options.** Train the well-posed configuration with `terminal_weight=1.0`, then with
#    `random_time_grid=True`, at the same budget, and add both columns to the table of section 4. Which rows move?
#    Compare with `benchmarks/wellposed.json`.
# 4. **The last moment.** For the well-posed toy flow, measure the mean ratio $|v^\perp(x,t)|\,(T-t)/|x^\perp|$ along
#    the $N=320$ path at $t/T=0.2,0.5,0.8,0.95,0.99$ ($v^\perp$, $x^\perp$: the off-plane components). The straight
#    flow to the plane has ratio 1 at every $t$. Where does the trained field fall short?
#
# Solutions: `notebooks/solutions/08_straight_flows_in_practice_solutions.md`.

# %%
print(elapsed())

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
# # 06 · Learning a 2-D manifold in ℝ⁷ and ℝ¹²
#
# **Learning goals.** After this notebook you can
#
# 1. describe the toy targets of the authors' repository (method.md §8): a 2-D distribution on a plane in $\mathbb R^d$, i.e. a
#    measure that is **singular** with respect to Lebesgue measure, and say why that is the hard case for KL-based flows;
# 2. look at samples in $\mathbb R^d$ through their **projection onto the data plane** and measure their **distance off
#    it**, also along the flow time $t$;
# 3. predict from the MFG optimality system how the two proximal weights act: $\lambda$ (W2, kinetic energy) and $L$
#    (W1, Lipschitz bound) together cap how far a particle can travel, $|x_T-x_0|\le TL/\lambda$; test it with a
#    small sweep over $(\lambda, L)$, and name which of the cap's three premises (constant velocity, terminal
#    condition, Lipschitz bound) a short training run violates;
# 4. separate what the W2 proximal does from what the scaling $v=-\nabla U/\lambda$ does, with a W1-only control at
#    the same $\lambda$.
#
# **Prerequisites.** Notebooks 01–05 (problem (19), flow (39), training (40)–(42), the ablation (46)–(49)).
# **Estimated time.** 30 min reading; Run All trains 17 small models (`PROXFLOW_SMOKE=1`: tiny budgets, numbers then
# meaningless). The cell below gives the run times last measured by `make run`; the last cell prints this run's.

# %% tags=["remove-input"]
# the run times last measured by `make run` (notebooks/timings.json); the clock starts here
from IPython.display import Markdown, display

from proxflow_edu.course.timing import elapsed, notebook_timer, run_time_note

notebook_timer()
display(Markdown(run_time_note("06_high_dim_manifolds")))

# %% [markdown]
# ## 1 A plane in $\mathbb R^d$
#
# `sample_toy(name, n, dim=d)` draws $z\in\mathbb R^2$ from a 2-D toy law and returns $x=Bz$ with a fixed
# $B\in\mathbb R^{d\times2}$, $B^\top B=I_2$ (`embedding(d)`). The target $\pi$ therefore lives on the plane
# $P=\mathrm{range}(B)$. Two maps come with it:
# $$\text{projection (plane coordinates)}\quad z=B^\top x,$$
# $$\text{distance off the plane}\quad \mathrm{dist}(x,P)=|x-BB^\top x| .$$
# The prior $\rho_0=\mathcal N(0,I_d)$ is not on $P$: its off-plane part $x-BB^\top x$ is a standard Gaussian in the
# $k=d-2$ orthogonal directions, so $\mathrm{dist}(x_0,P)$ has the $\chi_k$ law with mean
# $$\mathbb E\,\mathrm{dist}(x_0,P)=\sqrt2\,\frac{\Gamma\big(\frac{k+1}2\big)}{\Gamma\big(\frac k2\big)}\approx\sqrt{k-\tfrac12}.$$
# The flow must remove all of it: $\rho_T$ should sit on $P$, although it can only approach $P$, never lie on it. The
# reason is that the flow map is a **diffeomorphism** (a smooth bijection with a smooth inverse): the time-$T$ map of
# $\dot x=v(x,t)$ with a Lipschitz $v$ is one, and so is each Euler step $x\mapsto x-\frac h\lambda\nabla U(x,t_n)$ as
# long as $\frac h\lambda\,\mathrm{Lip}(\nabla U)<1$; the push-forward of a density by a diffeomorphism has a density
# (change of variables), and a measure with a density gives the plane mass 0. Smoothness alone would not do: the
# projection $x\mapsto BB^\top x$ is smooth and puts all the mass on $P$. Hence $\mathrm{KL}(\rho_T\|\pi)=\infty$ for
# every such flow, and the paper replaces it with the Lipschitz-regularised $D^L_{\rm KL}$ (7), which satisfies (8),
# $D^L_{\rm KL}(\rho_T\|\pi)\le L\,W_1(\rho_T,\pi)<\infty$.
#
# The settings for these toys in the authors' repository (method.md §8): $T=1$, $h=0.2$, $\lambda=0.1$, $\gamma=0.01$, $L=1$ in 7-D and
# 12-D, **25,000 iterations**, learning rates $10^{-4}$ ($U$) and $2\cdot10^{-5}$ ($\varphi$), data shifted/scaled
# a little differently and placed in the first two coordinates (here: a random plane, which makes no difference to
# an isotropic prior).

# %% [markdown]
# ## 2 What $\lambda$ and $L$ do: a speed limit (in theory)
#
# With both proximals the optimality system (20)–(21) has straight-line characteristics (22)–(29): the velocity is
# constant along each path and equals its final value,
# $$x_T-x_0=T\,v(x_T,T)=-\frac T\lambda\,\nabla U(x_T,T)=-\frac T\lambda\,\nabla\varphi^\ast(x_T).$$
# Since $\varphi^\ast$ is $L$-Lipschitz, **every particle moves at most**
# $$|x_T-x_0|\ \le\ \frac{T\,L}{\lambda}.$$
# Any transport plan from $\rho_0$ to $\pi$ has a root-mean-square displacement of at least $W_2(\rho_0,\pi)$, so
# the MFG solution **cannot** reach the data if $TL/\lambda<W_2(\rho_0,\pi)$. Large $TL/\lambda$ removes the
# limit, but then (i) large $L$ brings $D^L_{\rm KL}$ back towards the unbounded KL (inequality (8)), and (ii) small
# $\lambda$ weakens the kinetic term that keeps paths straight and step-size-independent.
#
# The chain above has three links, and each is a property of the *exact* MFG solution that a trained network
# need not have. The sweep below measures all three in every cell:
#
# 1. **constant velocity**, $x_T-x_0=T\,v(x_T,T)$: the Burgers property (24), which needs $U$ to solve the HJ
#    equation (20). Measured by comparing the displacement $|x_T-x_0|$ with $T\,|v_{N-1}|$, the distance a particle
#    would travel in time $T$ at the speed of its last Euler step (equal for constant velocity), and by
#    $\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$ (1 iff constant velocity);
# 2. **the terminal condition** (21), $\nabla U(\cdot,T)=\nabla\varphi^\ast$: measured by $R_T$ (44),
#    `diagnostics.terminal_error`. $U(\cdot,T)$ is never in the loss (only $t_0,\dots,t_{N-1}$ are), so nothing trains it
#    directly; on MNIST (notebook 07, §7) $|\nabla U(x_N,T)|\approx0.1$ against $|\nabla\varphi(x_N)|\approx1.1$;
# 3. **the Lipschitz bound** $|\nabla\varphi|\le L$: imposed by the **soft** one-sided penalty (41),
#    $\gamma\,\mathrm{mean}\,\max(0,|\nabla\varphi|^2-L^2)$ with weight $\gamma$ (`gp_weight`, printed below). While the
#    samples are far from the data, a steeper $\varphi$ gains more in the DV term than it pays in the penalty, so the
#    measured slope $|\nabla\varphi|$ can exceed $L$ several times. Measured by $T\,|\nabla\varphi(x_T)|/\lambda$, the
#    limit that the discriminator's actual slope would impose.
#
# If all three held, $|x_T-x_0|=T|v_{N-1}|=T|\nabla\varphi(x_T)|/\lambda\le TL/\lambda$ for every particle (up to the
# Euler step: the flow's last velocity is taken at $(x_{N-1},t_{N-1})$, the terminal condition at $(x_N,T)$).

# %%
import math
import os
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from proxflow_edu import metrics
from proxflow_edu.course import plotting
from proxflow_edu.data import embedding, project_to_plane, sample_toy
from proxflow_edu.diagnostics import chord_kinetic_energy, path_kinetic_energy, terminal_error
# |grad phi(x)| per sample: phi's actual local Lipschitz constant
from proxflow_edu.diagnostics import discriminator_slope
from proxflow_edu.flow import euler_flow
from proxflow_edu.config import FlowConfig
from proxflow_edu.train import train
from proxflow_edu.course.parameters import check_parameters, parameter_defaults

# %% tags=["parameters"]
SMOKE = os.environ.get("PROXFLOW_SMOKE", "0") == "1"
seed = 0
datasets = ["pinwheel", "8gaussians"] if SMOKE else ["pinwheel", "moons", "8gaussians"]
dims = [12] if SMOKE else [7, 12]
n_iters = 20 if SMOKE else 300            # iterations of every W1+W2 run of section 3
# iterations of the sweep (section 4) and of the W1-only controls (section 5)
n_iters_sweep = 5 if SMOKE else n_iters
# as in the authors' runs (and notebook 05); the lecture default is "cosine"
lr_schedule = "constant"
n_train = 1_000 if SMOKE else 20_000      # training samples of pi
n_eval = 128 if SMOKE else 1_000          # samples for W2 / noise floor / distances
sweep_dataset = "8gaussians"              # the sweep runs in R^{sweep_dim}
sweep_dim = 12
lams = [0.1, 0.5] if SMOKE else [0.05, 0.1, 0.5]   # lambda grid (W2 proximal weight)
Ls = [1.0] if SMOKE else [0.5, 1.0, 5.0]            # L grid (W1 proximal, Lipschitz bound)
n_threads = 1   # torch threads: these MLPs are too small to gain from more, and 2 threads on a busy
                # 2-core machine can be several times slower than 1
DEFAULTS = parameter_defaults(globals())  # what papermill -p / -y may change, checked below

# %%
check_parameters(globals(), DEFAULTS)  # a wrong type or range fails here, naming the parameter

# %%
torch.set_num_threads(n_threads)
torch.manual_seed(seed)
# the paper's algorithm at the lecture budget: the course's well-posedness penalties (the
# defaults, notebook 08) off
base = FlowConfig.preset("lecture_toy_paper", seed=seed, log_every=10, lr_schedule=lr_schedule)
shown = ("T", "h", "lam", "L", "gp_weight", "batch_size", "disc_steps", "lr_potential",
         "lr_discriminator", "lr_schedule")
print(textwrap.fill("settings used here: "
                    + str({k: v for k, v in base.to_dict().items() if k in shown}),
                    width=100, subsequent_indent="  "))
print(f"{n_iters} iterations per run in section 3, {n_iters_sweep} in sections 4-5; the authors' "
      f"toy runs used {FlowConfig.preset('paper_toy_highdim').n_iters} (smoke mode: {SMOKE})")

data, test, floor = {}, {}, {}
for name in datasets + ([sweep_dataset] if sweep_dataset not in datasets else []):
    for d in sorted(set(dims + [sweep_dim])):
        data[name, d] = sample_toy(name, n_train, dim=d, seed=seed)
        test[name, d] = sample_toy(name, n_eval, dim=d, seed=seed + 1000)
        floor[name, d] = metrics.noise_floor(data[name, d], n_eval, seed=seed)

# %% [markdown]
# ### The data and the prior, seen from the plane and from off it

# %%
d = dims[-1]
B = embedding(d)
x0 = torch.randn(n_eval, d, generator=torch.Generator().manual_seed(seed))
axes = plotting.small_multiples(len(datasets) + 1, size=3.2, ncols=2)
for ax, name in zip(axes, datasets):
    y = test[name, d]
    z = project_to_plane(y)
    ax.scatter(z[:, 0], z[:, 1], s=3, c="0.4")
    ax.set(title=f"{name} in $\\mathbb{{R}}^{{{d}}}$, projected",
           xlabel="$z_1=(B^\\top x)_1$ (data units)", ylabel="$z_2$", aspect="equal",
           xlim=(-4, 4), ylim=(-4, 4))
k = d - 2
chi_mean = math.sqrt(2) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))
off0 = metrics.off_manifold_distance(x0)
axes[-1].hist(off0.numpy(), bins=40, color="0.6")
axes[-1].axvline(chi_mean, c="C3", label=f"$\\chi_{{{k}}}$ mean {chi_mean:.2f}")
axes[-1].set(title=f"prior: distance off the plane, $\\mathbb{{R}}^{{{d}}}$",
             xlabel="dist$(x_0,P)$ (data units)", ylabel="number of samples")
axes[-1].legend(fontsize=8)
plt.show()
off_data = max(metrics.off_manifold_distance(test[n, d]).max() for n in datasets)
print(f"off-plane distance of the data: max {off_data:.2e}; "
      f"of the prior: mean {off0.mean():.3f} (chi_{k} mean {chi_mean:.3f})")

# %% [markdown]
# ## 3 W1 ⊕ W2 on three manifolds in two dimensions
#
# Six runs of the full method (49) with the paper's algorithm at the lecture budget (preset `lecture_toy_paper`),
# except for a constant learning rate (the authors'
# choice; the lecture default decays it). For each we record the samples $x_N$, the $W_2$
# distance to held-out data against the noise floor, the distance off the plane, and the mean off-plane distance along
# the path, $t_n\mapsto\overline{\mathrm{dist}(x_n,P)}$.

# %%
def evaluate(r, x0, name, d):
    """Samples, fit, off-plane distance, displacement, energies and the three premises of the
    speed limit (§2)."""
    c = r.config
    flow = euler_flow(r.potential, x0, c.T, c.h, c.lam, keep_path=True)
    xT, path = flow.final, flow.states
    ok = bool(torch.isfinite(path).all())
    w2 = metrics.w2_distance(xT, test[name, d]) if ok else math.nan
    nan = math.nan
    ke = float(path_kinetic_energy(path, c.h)) if ok else nan
    return {"xT": xT, "path": path, "finite": ok, "w2": w2, "ratio": w2 / floor[name, d],
            "off": float(metrics.off_manifold_distance(xT).mean()) if ok else nan,
            "off_t": [float(metrics.off_manifold_distance(p).mean()) for p in path] if ok else [],
            "disp": float((xT - x0).norm(dim=1).mean()) if ok else nan,
            "disp_max": float((xT - x0).norm(dim=1).max()) if ok else nan,
            "ke": ke, "ke_ratio": ke / float(chord_kinetic_energy(path, c.T)) if ok else nan,
            # premise 3: phi's measured slope, and the limit T |grad phi| / lambda it imposes
            "slope": float(discriminator_slope(r.discriminator, xT).mean()) if ok else nan,
            # premise 1: how far a particle would travel in time T at the speed of its last Euler
            # step, |v_{N-1}|
            "final_speed_disp": float(c.T * flow.velocities[-1].norm(dim=1).mean()) if ok else nan,
            # premise 2: the terminal condition (21), R_T (44)
            "R_T": terminal_error(r.potential, r.discriminator, xT, c.T) if ok else nan,
            "stopped": r.diverged_at, "reason": r.divergence_reason}


prior_x0 = {d: torch.randn(n_eval, d, generator=torch.Generator().manual_seed(seed + 7))
            for d in sorted(set(dims + [sweep_dim]))}
runs, evals = {}, {}
t0 = time.perf_counter()
for name, d in tqdm([(n, d) for d in dims for n in datasets], desc="W1+W2 runs"):
    runs[name, d] = train(base.replace(variant="w1w2", n_iters=n_iters), data[name, d],
                          progress=True)
    evals[name, d] = evaluate(runs[name, d], prior_x0[d], name, d)
print(f"training + evaluation: {time.perf_counter() - t0:.0f} s")

# %%
axes = plotting.small_multiples(len(dims) * len(datasets), size=3.0, ncols=len(datasets))
for ax, (name, d) in zip(axes, [(n, d) for d in dims for n in datasets]):
    e = evals[name, d]
    plotting.plot_samples(e["xT"], test[name, d], ax=ax,
                          title=f"{name}, $\\mathbb{{R}}^{{{d}}}$: $W_2$/floor {e['ratio']:.2f}")
    ax.set(xlim=(-4, 4), ylim=(-4, 4))
plt.gcf().suptitle("W1 ⊕ W2: generated samples projected on the data plane (data units)")
plt.show()

lines = ["| data | $d$ | $W_2$ | noise floor | $W_2$/floor | prior $W_2$ "
         "| off-plane, prior → $x_N$ | mean displacement | stopped |",
         "|---|---|---|---|---|---|---|---|---|"]
for (name, d), e in evals.items():
    stopped = e["stopped"] if e["stopped"] is not None else "–"
    lines.append(f"| {name} | {d} | {e['w2']:.3f} | {floor[name, d]:.3f} | {e['ratio']:.2f} "
                 f"| {metrics.w2_distance(prior_x0[d], test[name, d]):.3f} "
                 f"| {e['off_t'][0]:.3f} → {e['off']:.4f} | {e['disp']:.3f} | {stopped} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ### Distance off the plane along the flow
#
# On a straight constant-speed path $x(t)=(1-s)\,x_0+s\,x_T$, $s=t/T$, the off-plane part is the same interpolation
# of the end points' off-plane parts $a=x_0-BB^\top x_0$, $b=x_T-BB^\top x_T$, so by the triangle inequality
# $$(1-s)\,|a|-s\,|b|\ \le\ \mathrm{dist}(x(t),P)\ \le\ (1-s)\,|a|+s\,|b| .$$
# When the flow lands close to the plane ($|b|$ small) this band (shaded) is narrow around the straight line to zero
# (dashed): the MFG solution (22)–(29) removes the off-plane distance **at a constant rate**. A curve outside the band
# means the particles do not move along straight lines at constant speed.

# %%
fig, axs = plt.subplots(len(dims), 1, figsize=(6.5, 3.6 * len(dims)), squeeze=False,
                        layout="constrained")
for ax, d in zip(axs[:, 0], dims):
    T, h = base.T, base.h
    ts = np.arange(round(T / h) + 1) * h
    for k_, name in enumerate(datasets):
        e = evals[name, d]
        ax.plot(ts, e["off_t"], "o-", c=f"C{k_}", label=name)
        a_, b_ = e["off_t"][0], e["off_t"][-1]
        ax.fill_between(ts, (1 - ts / T) * a_ - ts / T * b_, (1 - ts / T) * a_ + ts / T * b_,
                        color=f"C{k_}", alpha=0.12, lw=0)
    start = evals[datasets[0], d]["off_t"][0]
    ax.plot(ts, start * (1 - ts / T), "k--", lw=0.8, label="straight line to the plane")
    ax.set(xlabel="flow time $t_n$", ylabel="mean dist$(x_n,P)$ (data units)", yscale="linear",
           title=f"distance off the data plane along the flow, $\\mathbb{{R}}^{{{d}}}$")
    ax.legend(fontsize=8)
plt.show()
name_tr = datasets[0]
ax = plotting.plot_trajectories(
    evals[name_tr, dims[-1]]["path"], test[name_tr, dims[-1]],
    title=f"{name_tr}, $\\mathbb{{R}}^{{{dims[-1]}}}$: paths projected on the plane")
ax.set(xlabel="$z_1$ (data units)", ylabel="$z_2$ (data units)")
plt.show()

# %% [markdown]
# ## 4 A sweep over $\lambda$ and $L$
#
# On one data set in $\mathbb R^{12}$ we train (49) for every pair $(\lambda,L)$ of a $3\times3$ grid, all else equal
# (including $\gamma$, the seed and the iterations; the authors' repository uses $\lambda=0.1$, $L=1$, method.md §8). The speed limit
# $TL/\lambda$ of §2 is printed in each cell; compare it with $W_2(\rho_0,\pi)$, the root-mean-square displacement
# that any transport plan from the prior to the data needs, and with the three measured premises of §2 (table below).

# %%
sweep = {}
for lam in tqdm(lams, desc="lambda"):
    for L in Ls:
        key = (sweep_dataset, sweep_dim)
        if key in runs and lam == base.lam and L == base.L and n_iters_sweep == n_iters:
            r = runs[key]  # the same run as in section 3
        else:
            r = train(base.replace(variant="w1w2", lam=lam, L=L, n_iters=n_iters_sweep), data[key],
                      progress=True)
        sweep[lam, L] = (r, evaluate(r, prior_x0[sweep_dim], sweep_dataset, sweep_dim))
w2_prior = metrics.w2_distance(prior_x0[sweep_dim], test[sweep_dataset, sweep_dim])
print(f"W2(prior, data) = {w2_prior:.3f} in R^{sweep_dim} ({sweep_dataset}); noise floor "
      f"{floor[sweep_dataset, sweep_dim]:.3f}")

# %%
quantities = [("ratio", "$W_2$ / noise floor"), ("off", "mean off-plane distance"),
              ("disp", "mean displacement $|x_T-x_0|$"), ("ke", "$\\mathrm{KE}_h$"),
              ("slope", "mean slope $|\\nabla\\varphi(x_N)|$")]
fig, axs = plt.subplots(3, 2, figsize=(9, 12.6), layout="constrained")
for ax, (q, label) in zip(axs.flat, quantities):
    grid = np.array([[sweep[lam, L][1][q] for L in Ls] for lam in lams])
    im = ax.imshow(np.log10(grid), cmap="viridis", origin="lower")
    for i, lam in enumerate(lams):
        for j, L in enumerate(Ls):
            extra = {"disp": f"\n$TL/\\lambda$={base.T * L / lam:.3g}",
                     "slope": f"\n($L$={L:g})"}.get(q, "")
            ax.text(j, i, f"{grid[i, j]:.3g}{extra}", ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round", fc="w", ec="none", alpha=0.8))
    ax.set(xticks=range(len(Ls)), xticklabels=[f"{L:g}" for L in Ls], yticks=range(len(lams)),
           yticklabels=[f"{lam:g}" for lam in lams], xlabel="Lipschitz bound $L$",
           ylabel="$\\lambda$", title=label + " (colour: log$_{10}$)")
    fig.colorbar(im, ax=ax, shrink=0.8)
ax = axs.flat[len(quantities)]
for lam, mk in zip(lams, "os^"):
    cap = [base.T * L / lam for L in Ls]
    ax.plot(cap, [sweep[lam, L][1]["disp"] for L in Ls], mk + "-",
            label=f"mean, $\\lambda$={lam:g}")
    ax.plot(cap, [sweep[lam, L][1]["disp_max"] for L in Ls], mk + ":",
            c=ax.lines[-1].get_color(), alpha=0.6, label=f"max, $\\lambda$={lam:g}")
caps = [base.T * L / lam for lam in lams for L in Ls]
lim = [min(caps) * 0.7, max(caps) * 1.4]
ax.plot(lim, lim, "k--", lw=0.8, label="$|x_T-x_0| = TL/\\lambda$")
ax.axhline(w2_prior, c="C3", lw=0.8, label="$W_2(\\rho_0,\\pi)$")
ax.set(xscale="log", yscale="log", xlabel="speed limit $TL/\\lambda$ (data units)",
       ylabel="displacement $|x_T-x_0|$ (data units)", title="distance travelled vs the MFG bound")
ax.legend(fontsize=7)
fig.suptitle(f"sweep on {sweep_dataset} in $\\mathbb{{R}}^{{{sweep_dim}}}$, "
             f"{n_iters_sweep} iterations each; $W_2(\\rho_0,\\pi)$ = {w2_prior:.2f}, "
             f"noise floor {floor[sweep_dataset, sweep_dim]:.3f}")
plt.show()

axes = plotting.small_multiples(len(lams) * len(Ls), size=2.9, ncols=len(Ls))
for ax, (lam, L) in zip(axes, [(lam, L) for lam in lams for L in Ls]):
    e = sweep[lam, L][1]
    plotting.plot_samples(e["xT"], test[sweep_dataset, sweep_dim], ax=ax,
                          title=f"$\\lambda$={lam:g}, $L$={L:g}: $W_2$/fl. {e['ratio']:.2f}")
    ax.set(xlim=(-4, 4), ylim=(-4, 4))
    ax.get_legend().remove()
plt.gcf().suptitle("samples of the sweep, projected on the data plane (data units)")
plt.show()

# %%
rows = ["| $\\lambda$ | $L$ | limit $TL/\\lambda$ | mean (max) $\\lvert x_T-x_0\\rvert$ "
        "| 1: $T\\lvert v_{N-1}\\rvert$ | 1: $\\mathrm{KE}_h/\\mathrm{KE}_{\\rm chord}$ "
        "| 2: $R_T$ (44) | 3: slope $\\lvert\\nabla\\varphi(x_T)\\rvert$ "
        "| 3: $T\\lvert\\nabla\\varphi\\rvert/\\lambda$ | $W_2$/floor | off-plane "
        "| $\\mathrm{KE}_h$ |", "|" + "---|" * 12]
for lam in lams:
    for L in Ls:
        r, e = sweep[lam, L]
        rows.append(f"| {lam:g} | {L:g} | {base.T * L / lam:.3g} "
                    f"| {e['disp']:.2f} ({e['disp_max']:.2f}) "
                    f"| {e['final_speed_disp']:.2f} | {e['ke_ratio']:.2f} | {e['R_T']:.2f} "
                    f"| {e['slope']:.2f} ({e['slope'] / L:.2g} $L$) "
                    f"| {base.T * e['slope'] / lam:.3g} | {e['ratio']:.2f} | {e['off']:.3f} "
                    f"| {e['ke']:.3g} |"
                    + (f" stopped at {r.diverged_at}" if r.diverged_at is not None else ""))
display(Markdown(f"**Sweep on {sweep_dataset} in $\\mathbb R^{{{sweep_dim}}}$**, "
                 f"{n_iters_sweep} iterations per cell, $n={n_eval}$ samples; "
                 f"$W_2(\\rho_0,\\pi)$ = {w2_prior:.3f}. The columns 1–3 are the premises of §2: "
                 "constant velocity, terminal condition (21), Lipschitz bound.\n\n"
                 + "\n".join(rows)))


def sweep_reading():
    """The reading of the sweep, generated from the numbers above (nothing typed in by hand)."""
    cells = [(lam, L) for lam in lams for L in Ls]
    ev = {k: sweep[k][1] for k in cells}
    cap = {k: base.T * k[1] / k[0] for k in cells}
    over = [k for k in cells if ev[k]["disp"] > cap[k]]
    fmt_cells = lambda ks: ", ".join(f"($\\lambda$={a:g}, $L$={b:g})" for a, b in ks) or "none"
    out = [f"- **Mean displacement above the limit $TL/\\lambda$:** {len(over)} of {len(cells)} "
           "cells "
           f"({fmt_cells(over)})."]
    off_speed = [k for k in cells
                 if abs(ev[k]["final_speed_disp"] - ev[k]["disp"]) > 0.2 * ev[k]["disp"]]
    slower = [k for k in off_speed if ev[k]["final_speed_disp"] < ev[k]["disp"]]
    ke_ratios = [ev[k]["ke_ratio"] for k in cells]
    out.append(f"- **Premise 1 (constant velocity):** in {len(off_speed)} of {len(cells)} cells "
               f"the displacement and $T|v_{{N-1}}|$ differ by more than 20 % "
               f"(in {len(slower)} of them the last step is the slower: the particles decelerate); "
               "$\\mathrm{KE}_h/\\mathrm{KE}_{\\rm chord}$ ranges from "
               f"{min(ke_ratios):.2f} to {max(ke_ratios):.2f} (1 = constant velocity).")
    rel_rt = {k: ev[k]["R_T"] / ev[k]["slope"] for k in cells}
    verdict = ("the network's $\\nabla U(\\cdot,T)$ does not carry the discriminator's gradient "
               "in any cell." if min(rel_rt.values()) > 0.5
               else "the terminal condition holds only roughly.")
    out.append(f"- **Premise 2 (terminal condition):** $R_T$ is {min(rel_rt.values()):.2f}–"
               f"{max(rel_rt.values()):.2f} times the mean slope $|\\nabla\\varphi(x_T)|$ "
               "(0 if $\\nabla U(\\cdot,T)=\\nabla\\varphi$), so " + verdict)
    steep = [k for k in cells if ev[k]["slope"] > k[1]]
    steepest = max(cells, key=lambda k: ev[k]["slope"] / k[1])
    out.append(f"- **Premise 3 (Lipschitz bound):** the measured slope exceeds $L$ in {len(steep)} "
               f"of {len(cells)} cells; the largest is "
               f"{ev[steepest]['slope'] / steepest[1]:.2g} $L$ (cell {fmt_cells([steepest])}).")
    if over:
        causes = []
        for k in over:
            why = [n for n, bad in (("1", k in off_speed),
                                    ("2", rel_rt[k] > 0.5), ("3", ev[k]["slope"] > k[1])) if bad]
            causes.append(f"{fmt_cells([k])}: premise{'s' if len(why) > 1 else ''} "
                          f"{', '.join(why) or '(none)'}")
        out.append("- **Where the limit is broken, which premises fail:** " + "; ".join(causes)
                   + ". The soft penalty is only one of the reasons: a flow that decelerates "
                   "(premise 1) or whose $\\nabla U(\\cdot,T)$ ignores $\\varphi$ (premise 2) is "
                   "not bound by $L$ at all.")
    for L in Ls:
        kes = [ev[lam, L]["ke"] for lam in lams]
        w2s = [ev[lam, L]["ratio"] for lam in lams]
        out.append(f"- $L$ = {L:g}: as $\\lambda$ grows from {lams[0]:g} to {lams[-1]:g}, "
                   "$\\mathrm{KE}_h$ goes " + " → ".join(f"{x:.3g}" for x in kes)
                   + " and $W_2$/floor " + " → ".join(f"{x:.2f}" for x in w2s) + ".")
    best = min(cells, key=lambda k: ev[k]["ratio"])
    paper_cell = (0.1, 1.0)
    if paper_cell in ev:
        rank = sorted(cells, key=lambda k: ev[k]["ratio"]).index(paper_cell) + 1
        out.append(f"- The authors' cell ($\\lambda$=0.1, $L$=1) ranks {rank} of {len(cells)} in "
                   f"$W_2$/floor ({ev[paper_cell]['ratio']:.2f}); the best is {fmt_cells([best])} "
                   f"({ev[best]['ratio']:.2f}).")
    return "\n".join(out)


display(Markdown("**Reading the sweep (generated from the table).**\n\n" + sweep_reading()))

# %% [markdown]
# **Why the numbers come out like this.** A decrease of $\mathrm{KE}_h$ with $\lambda$ proves little on its own: every
# cell starts from the same seed, hence the same initial $U$, and $v=-\nabla U/\lambda$ makes the initial kinetic
# energy scale like $1/\lambda^2$ whatever the loss; section 5 separates that scaling from the W2 proximal. The speed
# limit of §2 is a statement about the exact MFG solution, and the reading above says which of its premises this run
# violates. Training enforces none of them directly: the network's $U(\cdot,T)$ is an extrapolation in $t$ (only
# $t_0,\dots,t_{N-1}$ are in the loss), only the kinetic term pushes towards constant velocity, and the penalty on the
# slope of $\varphi$ is soft. A hard Lipschitz constraint (spectral normalisation, or a much larger $\gamma$, exercise
# 1) would enforce premise 3 only; premises 1–2 need the flow to converge to the HJ solution. Three values per axis
# and one seed are not enough to rank close cells.

# %% [markdown]
# ## 5 The W2 proximal at fixed $\lambda$: a W1-only control
#
# Notebook 05 does the full four-way ablation (46)–(49) in $\mathbb R^{12}$, including the blow-up without the W1
# proximal; it is not repeated here. This section asks a narrower question that the sweep cannot answer: **how much
# of the change of $\mathrm{KE}_h$ across the sweep is the W2 proximal, and how much is the factor $1/\lambda$ in
# $v=-\nabla U/\lambda$?** For every $\lambda$ of the sweep (at $L$ = `base.L`) we train W1 only (48) with the same
# seed, data, $\lambda$ and iterations. W1 only has no $\lambda\,\mathrm{KE}_h$ in its loss, so $\lambda$ only rescales
# its $U$; any difference between the two columns at the same $\lambda$ is the kinetic term.

# %%
L_ctrl = base.L if base.L in Ls else Ls[0]
control = {}
for lam in tqdm(lams, desc="W1-only controls"):
    r = train(base.replace(variant="w1", lam=lam, L=L_ctrl, n_iters=n_iters_sweep),
              data[sweep_dataset, sweep_dim], progress=True)
    control[lam] = (r, evaluate(r, prior_x0[sweep_dim], sweep_dataset, sweep_dim))
rows = ["| $\\lambda$ | $\\mathrm{KE}_h$ W1⊕W2 | $\\mathrm{KE}_h$ W1 only | ratio "
        "| $\\mathrm{KE}_h/\\mathrm{KE}_{\\rm chord}$ W1⊕W2 | W1 only "
        "| mean $\\lvert x_T-x_0\\rvert$ W1⊕W2 | W1 only | $W_2$/floor W1⊕W2 | W1 only |",
        "|" + "---|" * 10]
for lam in lams:
    a, b = sweep[lam, L_ctrl][1], control[lam][1]
    rows.append(f"| {lam:g} | {a['ke']:.3g} | {b['ke']:.3g} | {a['ke'] / b['ke']:.2f} "
                f"| {a['ke_ratio']:.2f} | {b['ke_ratio']:.2f} | {a['disp']:.2f} | {b['disp']:.2f} "
                f"| {a['ratio']:.2f} | {b['ratio']:.2f} |")
ke_ratio_at = {lam: sweep[lam, L_ctrl][1]["ke"] / control[lam][1]["ke"] for lam in lams}
w1_ke = [control[lam][1]["ke"] for lam in lams]
w1_reading = ("it also decreases, so a falling $\\mathrm{KE}_h$ across $\\lambda$ is not by itself "
              "evidence of the W2 proximal." if all(x > y for x, y in zip(w1_ke, w1_ke[1:])) else
              "it does not decrease monotonically, so here the $1/\\lambda$ of the initial "
              "velocity does not survive training; the W2 proximal is the ratio column.")
display(Markdown(
    f"**W1 ⊕ W2 against W1 only at the same $\\lambda$** ($L$ = {L_ctrl:g}, "
    f"{n_iters_sweep} iterations, same seed)\n\n"
    + "\n".join(rows) + "\n\n"
    f"- At the same $\\lambda$, the kinetic term leaves W1 ⊕ W2 with "
    f"{min(ke_ratio_at.values()):.2f}–{max(ke_ratio_at.values()):.2f} times the kinetic energy of "
    "W1 only: that factor is the W2 proximal.\n"
    "- W1 only, without any kinetic term, goes " + " → ".join(f"{x:.3g}" for x in w1_ke)
    + f" in $\\mathrm{{KE}}_h$ as $\\lambda$ grows from {lams[0]:g} to {lams[-1]:g}: "
    + w1_reading))

# %% [markdown]
# ### Check: the W2 proximal at fixed $\lambda$
#
# Same seed, data, $\lambda$ and iterations, so the factor $1/\lambda$ of $v=-\nabla U/\lambda$ cancels: the kinetic
# term must lower $\mathrm{KE}_h$ clearly at every $\lambda$ and, in the default run, bring the paths closer to constant
# velocity ($\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$). Without $\lambda\,\mathrm{KE}_h$ in the potential's loss (42) the two
# runs would be the same computation, and this cell fails.

# %%
for lam in lams:
    a, b = sweep[lam, L_ctrl][1], control[lam][1]
    assert a["ke"] < 0.8 * b["ke"], ("W2 proximal: KE_h of W1+W2 vs W1 only", lam, a["ke"], b["ke"])
    if not SMOKE:
        assert a["ke_ratio"] < b["ke_ratio"], ("W2 proximal: KE/chord", lam, a["ke_ratio"],
                                               b["ke_ratio"])
print("W2-proximal check passed")

# %% [markdown]
# ## 6 Checks

# %%
# (a) Geometry, exact: B has orthonormal columns, projection inverts the embedding on the plane,
#     data lie on the plane, and the prior's off-plane distance has the chi_{d-2} mean (within 4
#     standard errors).
for d in sorted(set(dims + [sweep_dim])):
    B = embedding(d)
    assert torch.allclose(B.T @ B, torch.eye(2), atol=1e-6)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(project_to_plane(z @ B.T), z, atol=1e-5)
    for name in datasets:
        assert metrics.off_manifold_distance(test[name, d]).max() < 1e-5
    k = d - 2
    chi_mean = math.sqrt(2) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))
    chi_sd = math.sqrt(k - chi_mean**2)
    off = metrics.off_manifold_distance(prior_x0[d])
    assert abs(off.mean() - chi_mean) < 4 * chi_sd / math.sqrt(len(off)), (d, float(off.mean()),
                                                                           chi_mean)
print("geometry checks passed")

# %%
# (b) Learning: every W1+W2 run is finite and brings samples towards the data plane. Smoke mode
#     (20 iterations): at least 10 % of the prior's off-plane distance removed. Default: 90 %
#     removed and W2 at most half the prior's (seed 0, 300 iterations: 2.8x-5.0x closer; the 7-D
#     prior starts closer to the data, so its factors are the smaller).
for (name, d), e in evals.items():
    assert e["finite"] and runs[name, d].diverged_at is None, (name, d, e["reason"])
    assert e["off"] < 0.9 * e["off_t"][0], (name, d, e["off"], e["off_t"][0])
    if not SMOKE:
        w2_0 = metrics.w2_distance(prior_x0[d], test[name, d])
        # >= 2x closer than the prior, and >= 90 % of the off-plane distance removed
        assert e["w2"] < w2_0 / 2, (name, d, e["w2"], w2_0)
        assert e["off"] < 0.1 * e["off_t"][0], (name, d, e["off"], e["off_t"][0])
print("learning checks passed")

# %% [markdown]
# ## 7 Exercises
#
# 1. **Make the speed limit bind.** Retrain the cell $\lambda=0.5$, $L=0.5$ (limit $TL/\lambda=1$) with a stronger
#    gradient penalty, `gp_weight` $\in\{1, 10\}$. Does the measured slope $|\nabla\varphi(x_N)|$ come down to $L$?
#    Does the mean displacement now respect $TL/\lambda$, and what happens to $W_2$/floor and the off-plane distance?
#    *Hint:* `train(base.replace(variant="w1w2", lam=0.5, L=0.5, gp_weight=10.0, n_iters=n_iters_sweep),
#    data[sweep_dataset, sweep_dim])`, then `evaluate(r, prior_x0[sweep_dim], sweep_dataset, sweep_dim)`.
# 2. **Dimension dependence.** How does $W_2(\rho_0,\pi)$ — and hence the displacement the flow must provide — grow with
#    $d$? Derive it roughly from the $\chi_{d-2}$ law, then check with `metrics.w2_distance` for $d=2,7,12,32$.
#    *Hint:* the off-plane part contributes about $d-2$ to $\mathbb E|x_0-y|^2$.
# 3. **Straight or not?** For the pinwheel run in $\mathbb R^{12}$ compute the ratio
#    $\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$ (method.md §2) and compare the mean off-plane distance along the path with
#    the straight-line prediction $(1-t/T)\,\mathrm{dist}(x_0,P)$. *Hint:* `diagnostics.chord_kinetic_energy`.
# 4. **The authors' setting.** Train one data set in $\mathbb R^{12}$ with `FlowConfig.preset("paper_toy_highdim",
#    n_iters=...)` for as many iterations as you can afford and compare with the lecture defaults at equal time.
#    *Hint:* the authors' learning rates are 10–25× smaller; expect slower progress per iteration.
#
# Solutions: `notebooks/solutions/06_high_dim_manifolds_solutions.md`.

# %%
print(elapsed())

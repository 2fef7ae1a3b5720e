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
# # 05 · Learning a 2-D manifold in ℝ⁷ and ℝ¹²
#
# **Learning goals.** After this notebook you can
#
# 1. describe the toy targets of the paper (method.md §8): a 2-D distribution on a plane in $\mathbb R^d$, i.e. a
#    measure that is **singular** with respect to Lebesgue measure, and say why that is the hard case for KL-based flows;
# 2. look at samples in $\mathbb R^d$ through their **projection onto the data plane** and measure their **distance off
#    it**, also along the flow time $t$;
# 3. predict from the MFG optimality system how the two proximal weights act: $\lambda$ (W2, kinetic energy) and $L$
#    (W1, Lipschitz bound) together cap how far a particle can travel, $|x_T-x_0|\le TL/\lambda$; test it with a
#    small sweep over $(\lambda, L)$, and see why the soft Lipschitz penalty of the training loss weakens the cap;
# 4. say what goes wrong when either proximal is removed.
#
# **Prerequisites.** Notebooks 01–04 (problem (19), flow (39), training (40)–(42), the ablation (46)–(49)).
# **Estimated time.** 30 min reading; the default run trains 16 small models, a few minutes on a 2-core CPU
# (`PROXFLOW_SMOKE=1`: seconds, numbers then meaningless).

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
# The flow must remove all of it: $\rho_T$ should sit on $P$, although — being the push-forward of a density by a
# smooth map — it can only approach $P$, never lie on it. That is why $\mathrm{KL}(\rho_T\|\pi)=\infty$ for every
# flow, and why the paper replaces it with the Lipschitz-regularised $D^L_{\rm KL}$ (7), which satisfies (8),
# $D^L_{\rm KL}(\rho_T\|\pi)\le L\,W_1(\rho_T,\pi)<\infty$.
#
# The paper's settings for these toys (method.md §8): $T=1$, $h=0.2$, $\lambda=0.1$, $\gamma=0.01$, $L=1$ in 7-D and
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
# Two things stand between this statement and a trained network, and the sweep below measures both:
#
# * the Lipschitz bound is imposed by the **soft** one-sided penalty (41), $\gamma\,\mathrm{mean}\,\max(0,|\nabla\varphi|^2-L^2)$
#   and weight $\gamma$ (`gp_weight`, printed below). While the samples are far from the data, a steeper $\varphi$ gains more in the DV term than it
#   pays in the penalty, so the actual slope $|\nabla\varphi|$ can exceed $L$ several times;
# * (29) holds at the optimum of the game. After a few hundred iterations the discriminator is still moving and $U$
#   is not the HJ solution for it.

# %%
import math
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from proxflow_edu import metrics, plotting
from proxflow_edu.data import embedding, project_to_plane, sample_toy
from proxflow_edu.diagnostics import chord_kinetic_energy, discretization_gap, path_kinetic_energy
from proxflow_edu.diagnostics import discriminator_slope  # |grad phi(x)| per sample: phi's actual local Lipschitz constant
from proxflow_edu.flow import euler_flow
from proxflow_edu.train import FlowConfig, train
from proxflow_edu.parameters import check_parameters, parameter_defaults

# %% tags=["parameters"]
SMOKE = os.environ.get("PROXFLOW_SMOKE", "0") == "1"
seed = 0
datasets = ["pinwheel", "8gaussians"] if SMOKE else ["pinwheel", "moons", "8gaussians"]
dims = [12] if SMOKE else [7, 12]
n_iters = 20 if SMOKE else 300            # iterations of every W1+W2 run of section 3
n_iters_sweep = 5 if SMOKE else n_iters  # iterations of the sweep (section 4) and the one-sided runs (section 5)
lr_schedule = "constant"                  # as in the paper (and notebook 04); the lecture default is "cosine"
n_train = 1_000 if SMOKE else 20_000      # training samples of pi
n_eval = 128 if SMOKE else 1_000          # samples for W2 / noise floor / distances
sweep_dataset = "8gaussians"              # the sweep runs in R^{sweep_dim}
sweep_dim = 12
lams = [0.1, 0.5] if SMOKE else [0.05, 0.1, 0.5]   # lambda grid (W2 proximal weight)
Ls = [1.0] if SMOKE else [0.5, 1.0, 5.0]            # L grid (W1 proximal, Lipschitz bound)
h_fine_steps = 40 if SMOKE else 320      # discretisation gap in section 5: h = T/5 against h = T/h_fine_steps
n_threads = 1   # torch threads: these MLPs are too small to gain from more, and 2 threads on a busy
                # 2-core machine can be several times slower than 1
DEFAULTS = parameter_defaults(globals())  # what papermill -p / -y may change, checked below

# %%
check_parameters(globals(), DEFAULTS)  # a wrong type or range fails here, naming the parameter

# %%
torch.set_num_threads(n_threads)
torch.manual_seed(seed)
base = FlowConfig(seed=seed, log_every=10, lr_schedule=lr_schedule)
print("settings used here:", {k: v for k, v in base.to_dict().items() if k in
      ("T", "h", "lam", "L", "gp_weight", "batch_size", "disc_steps", "lr_potential", "lr_discriminator",
       "lr_schedule")})
print(f"{n_iters} iterations per run in section 3, {n_iters_sweep} in sections 4-5; the paper's toy runs used "
      f"{FlowConfig.preset('paper_toy_highdim').n_iters} (smoke mode: {SMOKE})")

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
axes = plotting.small_multiples(len(datasets) + 1, size=3.2)
for ax, name in zip(axes, datasets):
    y = test[name, d]
    z = project_to_plane(y)
    ax.scatter(z[:, 0], z[:, 1], s=3, c="0.4")
    ax.set(title=f"{name} in $\\mathbb{{R}}^{{{d}}}$, projected", xlabel="$z_1=(B^\\top x)_1$ (data units)",
           ylabel="$z_2$", aspect="equal", xlim=(-4, 4), ylim=(-4, 4))
k = d - 2
chi_mean = math.sqrt(2) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))
off0 = metrics.off_manifold_distance(x0)
axes[-1].hist(off0.numpy(), bins=40, color="0.6")
axes[-1].axvline(chi_mean, c="C3", label=f"$\\chi_{{{k}}}$ mean {chi_mean:.2f}")
axes[-1].set(title=f"prior: distance off the plane, $\\mathbb{{R}}^{{{d}}}$", xlabel="dist$(x_0,P)$ (data units)",
             ylabel="number of samples")
axes[-1].legend(fontsize=8)
plt.show()
print(f"off-plane distance of the data: max {max(metrics.off_manifold_distance(test[n, d]).max() for n in datasets):.2e}"
      f"; of the prior: mean {off0.mean():.3f} (chi_{k} mean {chi_mean:.3f})")

# %% [markdown]
# ## 3 W1 ⊕ W2 on three manifolds in two dimensions
#
# Six runs of the full method (49) at the lecture defaults, except for a constant learning rate (the paper's
# choice; the lecture default decays it). For each we record the samples $x_N$, the $W_2$
# distance to held-out data against the noise floor, the distance off the plane, and the mean off-plane distance along
# the path, $t_n\mapsto\overline{\mathrm{dist}(x_n,P)}$.

# %%
def evaluate(r, x0, name, d):
    c = r.config
    flow = euler_flow(r.potential, x0, c.T, c.h, c.lam, keep_path=True)
    xT, path = flow.final, flow.states
    ok = bool(torch.isfinite(path).all())
    w2 = metrics.w2_distance(xT, test[name, d]) if ok else math.nan
    return {"xT": xT, "path": path, "finite": ok, "w2": w2, "ratio": w2 / floor[name, d],
            "off": float(metrics.off_manifold_distance(xT).mean()) if ok else math.nan,
            "off_t": [float(metrics.off_manifold_distance(p).mean()) for p in path] if ok else [],
            "disp": float((xT - x0).norm(dim=1).mean()) if ok else math.nan,
            "disp_max": float((xT - x0).norm(dim=1).max()) if ok else math.nan,
            "ke": float(path_kinetic_energy(path, c.h)) if ok else math.nan,
            "slope": float(discriminator_slope(r.discriminator, xT).mean()) if ok else math.nan,
            "stopped": r.diverged_at, "reason": r.divergence_reason}


prior_x0 = {d: torch.randn(n_eval, d, generator=torch.Generator().manual_seed(seed + 7))
            for d in sorted(set(dims + [sweep_dim]))}
runs, evals = {}, {}
t0 = time.perf_counter()
for name, d in tqdm([(n, d) for d in dims for n in datasets], desc="W1+W2 runs"):
    runs[name, d] = train(base.replace(variant="w1w2", n_iters=n_iters), data[name, d], progress=True)
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

lines = ["| data | $d$ | $W_2$ | noise floor | $W_2$/floor | prior $W_2$ | off-plane, prior → $x_N$ | mean displacement | stopped |",
         "|---|---|---|---|---|---|---|---|---|"]
for (name, d), e in evals.items():
    lines.append(f"| {name} | {d} | {e['w2']:.3f} | {floor[name, d]:.3f} | {e['ratio']:.2f} "
                 f"| {metrics.w2_distance(prior_x0[d], test[name, d]):.3f} | {e['off_t'][0]:.3f} → {e['off']:.4f} "
                 f"| {e['disp']:.3f} | {e['stopped'] if e['stopped'] is not None else '–'} |")
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
fig, axs = plt.subplots(1, len(dims), figsize=(5.2 * len(dims), 3.6), squeeze=False, layout="constrained")
for ax, d in zip(axs[0], dims):
    T, h = base.T, base.h
    ts = np.arange(round(T / h) + 1) * h
    for k_, name in enumerate(datasets):
        e = evals[name, d]
        ax.plot(ts, e["off_t"], "o-", c=f"C{k_}", label=name)
        a_, b_ = e["off_t"][0], e["off_t"][-1]
        ax.fill_between(ts, (1 - ts / T) * a_ - ts / T * b_, (1 - ts / T) * a_ + ts / T * b_, color=f"C{k_}",
                        alpha=0.12, lw=0)
    start = evals[datasets[0], d]["off_t"][0]
    ax.plot(ts, start * (1 - ts / T), "k--", lw=0.8, label="straight line to the plane")
    ax.set(xlabel="flow time $t_n$", ylabel="mean dist$(x_n,P)$ (data units)", yscale="linear",
           title=f"distance off the data plane along the flow, $\\mathbb{{R}}^{{{d}}}$")
    ax.legend(fontsize=8)
plt.show()
name_tr = datasets[0]
ax = plotting.plot_trajectories(evals[name_tr, dims[-1]]["path"], test[name_tr, dims[-1]],
                                title=f"{name_tr}, $\\mathbb{{R}}^{{{dims[-1]}}}$: paths projected on the plane")
ax.set(xlabel="$z_1$ (data units)", ylabel="$z_2$ (data units)")
plt.show()

# %% [markdown]
# ## 4 A sweep over $\lambda$ and $L$
#
# On one data set in $\mathbb R^{12}$ we train (49) for every pair $(\lambda,L)$ of a $3\times3$ grid, all else equal
# (including $\gamma$ and the iterations; the paper's value is $\lambda=0.1$, $L=1$). The speed limit $TL/\lambda$ of
# §2 is printed in each cell; compare it with $W_2(\rho_0,\pi)$, the root-mean-square displacement that any transport
# plan from the prior to the data needs.

# %%
sweep = {}
for lam in tqdm(lams, desc="lambda"):
    for L in Ls:
        key = (sweep_dataset, sweep_dim)
        if key in runs and lam == base.lam and L == base.L and n_iters_sweep == n_iters:
            r = runs[key]  # the same run as in section 3
        else:
            r = train(base.replace(variant="w1w2", lam=lam, L=L, n_iters=n_iters_sweep), data[key], progress=True)
        sweep[lam, L] = (r, evaluate(r, prior_x0[sweep_dim], sweep_dataset, sweep_dim))
w2_prior = metrics.w2_distance(prior_x0[sweep_dim], test[sweep_dataset, sweep_dim])
print(f"W2(prior, data) = {w2_prior:.3f} in R^{sweep_dim} ({sweep_dataset}); noise floor "
      f"{floor[sweep_dataset, sweep_dim]:.3f}")

# %%
quantities = [("ratio", "$W_2$ / noise floor"), ("off", "mean off-plane distance"),
              ("disp", "mean displacement $|x_T-x_0|$"), ("ke", "$\\mathrm{KE}_h$"),
              ("slope", "mean slope $|\\nabla\\varphi(x_N)|$")]
fig, axs = plt.subplots(2, 3, figsize=(14, 8.4), layout="constrained")
for ax, (q, label) in zip(axs.flat, quantities):
    grid = np.array([[sweep[lam, L][1][q] for L in Ls] for lam in lams])
    im = ax.imshow(np.log10(grid), cmap="viridis", origin="lower")
    for i, lam in enumerate(lams):
        for j, L in enumerate(Ls):
            extra = {"disp": f"\n$TL/\\lambda$={base.T * L / lam:.3g}", "slope": f"\n($L$={L:g})"}.get(q, "")
            ax.text(j, i, f"{grid[i, j]:.3g}{extra}", ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round", fc="w", ec="none", alpha=0.8))
    ax.set(xticks=range(len(Ls)), xticklabels=[f"{L:g}" for L in Ls], yticks=range(len(lams)),
           yticklabels=[f"{lam:g}" for lam in lams], xlabel="Lipschitz bound $L$", ylabel="$\\lambda$",
           title=label + " (colour: log$_{10}$)")
    fig.colorbar(im, ax=ax, shrink=0.8)
ax = axs.flat[len(quantities)]
for lam, mk in zip(lams, "os^"):
    cap = [base.T * L / lam for L in Ls]
    ax.plot(cap, [sweep[lam, L][1]["disp"] for L in Ls], mk + "-", label=f"mean, $\\lambda$={lam:g}")
    ax.plot(cap, [sweep[lam, L][1]["disp_max"] for L in Ls], mk + ":", c=ax.lines[-1].get_color(), alpha=0.6,
            label=f"max, $\\lambda$={lam:g}")
caps = [base.T * L / lam for lam in lams for L in Ls]
lim = [min(caps) * 0.7, max(caps) * 1.4]
ax.plot(lim, lim, "k--", lw=0.8, label="$|x_T-x_0| = TL/\\lambda$")
ax.axhline(w2_prior, c="C3", lw=0.8, label="$W_2(\\rho_0,\\pi)$")
ax.set(xscale="log", yscale="log", xlabel="speed limit $TL/\\lambda$ (data units)",
       ylabel="displacement $|x_T-x_0|$ (data units)", title="distance travelled vs the MFG bound")
ax.legend(fontsize=7)
fig.suptitle(f"sweep on {sweep_dataset} in $\\mathbb{{R}}^{{{sweep_dim}}}$, {n_iters_sweep} iterations each; "
             f"$W_2(\\rho_0,\\pi)$ = {w2_prior:.2f}, noise floor {floor[sweep_dataset, sweep_dim]:.3f}")
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
for lam in lams:
    for L in Ls:
        r, e = sweep[lam, L]
        print(f"lambda={lam:<5g} L={L:<4g} TL/lambda={base.T * L / lam:6.3g}  mean |x_T-x_0|={e['disp']:.3f} "
              f"(max {e['disp_max']:.3f})  slope |grad phi|={e['slope']:.3g} ({e['slope'] / L:.2g} L)  "
              f"W2/floor={e['ratio']:.2f}  off-plane={e['off']:.3f}  KE_h={e['ke']:.3g}"
              + (f"  STOPPED at {r.diverged_at}" if r.diverged_at is not None else ""))
over = [(lam, L) for lam in lams for L in Ls if sweep[lam, L][1]["disp"] > base.T * L / lam]
print(f"\ncells whose MEAN displacement exceeds the MFG speed limit T L / lambda: {over or 'none'}")
print("KE_h decreases with lambda at every L:",
      all(sweep[a, L][1]["ke"] > sweep[b, L][1]["ke"] for L in Ls for a, b in zip(lams, lams[1:])))
print("the measured slope of phi exceeds L in", sum(sweep[k_][1]["slope"] > k_[1] for k_ in sweep), "of", len(sweep),
      "cells")

# %% [markdown]
# **Reading the sweep** (the printout above has the numbers of this run).
#
# * **The speed limit does not bind as the theory says.** Where $TL/\lambda$ is below $W_2(\rho_0,\pi)$ the exact
#   MFG solution could not reach the data, yet the trained flows travel further than $TL/\lambda$. The reason is the
#   measured slope of $\varphi$: the soft penalty lets it exceed $L$, most of all for small $L$, so the *effective*
#   limit is $T\,|\nabla\varphi|/\lambda$, not $TL/\lambda$. A hard Lipschitz constraint (spectral normalisation, or a
#   much larger $\gamma$) would enforce the bound; the paper's penalty does not.
# * **$\lambda$ does what the W2 proximal should:** at fixed $L$ the kinetic energy falls as $\lambda$ grows (part of
#   this is the scaling $v=-\nabla U/\lambda$, the rest is learned). With our short budget the largest $\lambda$ also
#   approaches the data more slowly: a strong kinetic penalty trades sample quality for short, cheap paths.
# * **$L$ far above the data's scale hurts:** with a large $L$ the penalty barely acts, the discriminator gets steep,
#   and the flow receives strong, noisy forces — compare the $L=5$ column's $W_2$/floor and $\mathrm{KE}_h$ with the
#   others. This is the road back to the unregularised failure of §5 and notebook 04.
# * The paper's choice $\lambda=0.1$, $L=1$ sits in the good region of this small grid; so do its neighbours with a
#   smaller $L$ or $\lambda$. Three values per axis and one seed are not enough to rank close cells — see exercise 1.

# %% [markdown]
# ## 5 Without each proximal
#
# On the sweep's data set we now train the two one-sided variants at the default $(\lambda,L)$, for the same number
# of iterations, and compare with W1 ⊕ W2 (notebook 04 does the full four-way ablation with longer runs):
#
# * **W2 only (47)** — no Lipschitz bound. The discriminator can grow without limit in the off-plane directions
#   (§1: $\mathrm{KL}(\rho_T\|\pi)=\infty$); its DV estimate and the potential's gradients grow, the samples are pushed
#   by an ever stronger and noisier force. The paper's W2-only toy runs produced NaN after 8,900–24,400 iterations in
#   7-D/12-D (method.md §8); in our few hundred iterations look for the growth, not the NaN.
# * **W1 only (48)** — no kinetic energy. The terminal cost is finite, but nothing selects the straight, constant-speed
#   flow among the infinitely many that reach the same $\rho_T$: paths bend, $\mathrm{KE}_h$ is larger, and samples
#   depend on the step size.

# %%
ablate = {"w1w2": sweep[base.lam, base.L][0]} if (base.lam, base.L) in sweep else {
    "w1w2": train(base.replace(variant="w1w2", n_iters=n_iters_sweep), data[sweep_dataset, sweep_dim], progress=True)}
for v in tqdm(["w2", "w1"], desc="one-sided runs"):
    ablate[v] = train(base.replace(variant=v, n_iters=n_iters_sweep), data[sweep_dataset, sweep_dim], progress=True)
abl_eval = {v: evaluate(r, prior_x0[sweep_dim], sweep_dataset, sweep_dim) for v, r in ablate.items()}
for v, e in abl_eval.items():
    r, c = ablate[v], ablate[v].config
    chord = float(chord_kinetic_energy(e["path"], c.T)) if e["finite"] else math.nan
    gap = (discretization_gap(r.potential, prior_x0[sweep_dim], c.T, c.h, c.lam, h_fine=c.T / h_fine_steps).relative
           if e["finite"] else math.nan)
    print(f"{v:<5} W2/floor={e['ratio']:.2f}  off-plane={e['off']:.3f}  KE_h={e['ke']:.3g}  KE_h/KE_chord="
          f"{e['ke'] / chord:.2f}  disc. gap (h=T/5 vs T/{h_fine_steps})={gap:.3f}  max DV estimate="
          f"{max(r.history['divergence']):.3g}  max |grad J_G|={max(r.history['grad_norm_potential']):.3g}"
          + (f"  STOPPED at iteration {r.diverged_at}: {r.divergence_reason}" if r.diverged_at is not None else ""))

# %%
fig, axs = plt.subplots(1, 4, figsize=(17, 3.8), layout="constrained")
for ax, v in zip(axs[:3], ["w1w2", "w2", "w1"]):
    e = abl_eval[v]
    if e["finite"]:
        plotting.plot_trajectories(e["path"], test[sweep_dataset, sweep_dim], ax=ax, n_paths=80,
                                   title=f"{v}: $W_2$/floor {e['ratio']:.2f}, off-plane {e['off']:.3f}")
        ax.set(xlim=(-4, 4), ylim=(-4, 4), xlabel="$z_1$ (data units)", ylabel="$z_2$ (data units)")
plotting.plot_history({v: r.history for v, r in ablate.items()}, "divergence", ax=axs[3], logy=True,
                      title="DV estimate during training (symlog)")
axs[3].set_ylabel("DV estimate of the terminal cost")
fig.suptitle(f"{sweep_dataset} in $\\mathbb{{R}}^{{{sweep_dim}}}$: paths projected on the data plane, and training curves")
plt.show()

# %% [markdown]
# **What to look for** (default run; the printout has the numbers): W2-only's DV estimate climbs steadily on the log
# scale while the two W1 runs level off at order one — the start of the blow-up that notebook 04 follows until
# `train()` stops it; its samples are the furthest from the data. W1-only reaches the data about as well as W1 ⊕ W2
# in $W_2$, but its paths are much more expensive and crooked ($\mathrm{KE}_h$ and $\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$):
# it solves the terminal problem by one of the many non-straight flows that the missing W2 proximal no longer rules
# out. Each proximal fixes a different defect; only together do they give a finite terminal cost *and* a well-posed,
# nearly straight flow.

# %% [markdown]
# ## 6 Checks

# %%
# (a) Geometry, exact: B has orthonormal columns, projection inverts the embedding on the plane, data lie on the plane,
#     and the prior's off-plane distance has the chi_{d-2} mean (within 4 standard errors).
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
    assert abs(off.mean() - chi_mean) < 4 * chi_sd / math.sqrt(len(off)), (d, float(off.mean()), chi_mean)
print("geometry checks passed")

# %%
# (b) Learning: every W1+W2 run is finite and brings samples towards the data plane. Smoke mode (20 iterations):
#     at least 10 % of the prior's off-plane distance removed. Default: 90 % removed and W2 4x smaller than the prior's.
for (name, d), e in evals.items():
    assert e["finite"] and runs[name, d].diverged_at is None, (name, d, e["reason"])
    assert e["off"] < 0.9 * e["off_t"][0], (name, d, e["off"], e["off_t"][0])
    if not SMOKE:
        w2_0 = metrics.w2_distance(prior_x0[d], test[name, d])
        assert e["w2"] < 0.25 * w2_0, (name, d, e["w2"], w2_0)                     # >= 4x closer than the prior
        assert e["off"] < 0.1 * e["off_t"][0], (name, d, e["off"], e["off_t"][0])  # >= 90 % of the distance removed
# (c) The W2 proximal at work: at every L the path energy KE_h decreases as lambda grows.
for L in Ls:
    kes = [sweep[lam, L][1]["ke"] for lam in lams]
    assert all(a > b for a, b in zip(kes, kes[1:])), (L, kes)
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
# 4. **The paper's setting.** Train one data set in $\mathbb R^{12}$ with `FlowConfig.preset("paper_toy_highdim",
#    n_iters=...)` for as many iterations as you can afford and compare with the lecture defaults at equal time.
#    *Hint:* the paper's learning rates are 10–25× smaller; expect slower progress per iteration.
#
# Solutions: `notebooks/solutions/05_high_dim_manifolds_solutions.md`.

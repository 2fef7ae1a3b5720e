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
# # 05 · Ablation: what each proximal does
#
# **Learning goals.** After this notebook you can
#
# 1. write the four training objectives (46)–(49) and say which term each switch of `FlowConfig.variant` removes;
# 2. explain why, **without the W1 proximal**, the Donsker–Varadhan estimate of $\mathrm{KL}(\rho_T\|\pi)$ has no upper
#    bound when the data $\pi$ live on a plane in $\mathbb R^{d}$ (the "blow-up" of the paper's unregularised and
#    W2-only runs), and how `train()` detects and stops such a run;
# 3. explain why, **without the W2 proximal**, the flow is not unique and its paths need not be straight, and measure
#    that with the kinetic energy $\mathrm{KE}_h$, a straightness index and the discretisation gap;
# 4. judge generated samples by their Wasserstein-2 distance to data **against the sampling noise floor**, and by their
#    distance off the data plane.
#
# **Prerequisites.** The problem (19), the Euler flow (39) and the training losses (40)–(42) (notebooks 01–03).
# **Estimated time.** 30 min reading; Run All trains 8 small models (`PROXFLOW_SMOKE=1`: tiny budgets, numbers then
# meaningless). The cell below gives the run times last measured by `make run`; the last cell prints this run's.

# %% tags=["remove-input"]
# the run times last measured by `make run` (notebooks/timings.json); the clock starts here
from IPython.display import Markdown, display

from proxflow_edu.course.timing import elapsed, notebook_timer, run_time_note

notebook_timer()
display(Markdown(run_time_note("05_ablation")))

# %% [markdown]
# ## 1 Four objectives, two switches
#
# All four variants move prior samples $x_0\sim\rho_0=\mathcal N(0,I_d)$ with the same flow
# $\dot x=v(x,t)=-\nabla_x U_\theta(x,t)/\lambda$, discretised by forward Euler (39),
# $$x_{n+1}=x_n-\frac h\lambda\nabla_xU_\theta(x_n,t_n),\qquad n=0,\dots,N-1,\ N=T/h .$$
# Each iteration makes 5 ascent steps on the discriminator objective (40)–(41)
# $$J_D(\omega)=\frac1M\sum_i\varphi_\omega(x_N^i)-\log\frac1M\sum_j e^{\varphi_\omega(y^j)}-\gamma\,\mathrm{GP}(\omega),$$
# $$\mathrm{GP}(\omega)=\frac1M\sum_i\max\big(0,|\nabla_x\varphi_\omega(\hat x^i)|^2-L^2\big),$$
# then one descent step on the potential objective (42)
# $$J_G(\theta)=\frac1M\sum_i\varphi(x_N^i(\theta))+\lambda\,\mathrm{KE}_h(\theta),$$
# $$\mathrm{KE}_h=\frac1M\sum_i\sum_{n=0}^{N-1}h\,\tfrac12\big|v(x_n^i,t_n)\big|^2 .$$
# The ablation (46)–(49) switches the two regularisers on and off:
#
# | eq. | `variant` | discriminator: W1 proximal ($\gamma\,\mathrm{GP}$, Lipschitz bound $L$) | potential: W2 proximal ($\lambda\,\mathrm{KE}_h$) |
# |---|---|---|---|
# | (46) | `"unregularized"` | no (plain DV estimate of KL) | no |
# | (47) | `"w2"` | no | yes |
# | (48) | `"w1"` | yes | no |
# | (49) | `"w1w2"` | yes | yes |
#
# In all four $v=-\nabla U/\lambda$ with the same $\lambda$; without the KE term $\lambda$ only rescales $U$.

# %% [markdown]
# ## 2 Why the W1 proximal keeps the terminal cost finite
#
# Our target $\pi$ is a 2-D distribution placed on a plane in $\mathbb R^{d}$ (for $d>2$), so it is **singular** with
# respect to Lebesgue measure. The generated law $\rho_T$ is the push-forward of a Gaussian by the Euler map, which
# (for a smooth $U$ and small $h/\lambda$) is a diffeomorphism, so $\rho_T$ has a density on all of $\mathbb R^d$ and
# $\rho_T\not\ll\pi$: $\mathrm{KL}(\rho_T\|\pi)=+\infty$. In the dual (DV) form this is visible directly: take
# $\varphi_c(x)=c\,\mathrm{dist}(x,\text{plane})$; it is $0$ on $\mathrm{supp}\,\pi$, so
# $$\mathbb E_{\rho_T}[\varphi_c]-\log\mathbb E_\pi[e^{\varphi_c}]=c\,\mathbb E_{\rho_T}[\mathrm{dist}(x,\text{plane})]\xrightarrow[c\to\infty]{}\infty .$$
# An unconstrained discriminator can therefore push the estimate up without bound, and its gradient — the force
# $-\nabla\varphi$ that the potential loss feeds into the flow — grows with it. This is the failure of (46) and (47).
# The terminal condition (30) of the unregularised MFG, $\delta\mathrm{KL}(\rho\|\pi)/\delta\rho=\log(\rho/\pi)+1$,
# is infinite off $\mathrm{supp}\,\pi$ for the same reason.
#
# With the Lipschitz constraint, the dual (7) runs over $\Gamma_L=\{\mathrm{Lip}(\varphi)\le L\}$ and inequality (8)
# $$0\le D^L_{\mathrm{KL}}(\rho_T\|\pi)\le\min\{\mathrm{KL}(\rho_T\|\pi),\ L\,W_1(\rho_T,\pi)\}$$
# keeps it finite even for mutually singular measures; the terminal condition $U(\cdot,T)=\varphi^\ast$ of (21) is
# $L$-Lipschitz, so the final velocity is bounded, $|v(x,T)|\le L/\lambda$.
#
# **What the training loss actually sees.** Everything above is about the law $\pi$. Training only ever sees samples of it:
# the empirical measure $\hat\pi=\frac1n\sum_j\delta_{y_j}$ of the $n$ = `n_train` training points here (20,000 in the
# default run; 6,000 images for MNIST in notebook 07). $\hat\pi$ is a finite sum of Dirac masses, **singular in every
# dimension**, $\mathbb R^2$ included, so $\mathrm{KL}(\rho_T\|\hat\pi)=\infty$ for any $\rho_T$ with a density, and an
# unconstrained discriminator could in principle grow without bound even in 2-D, by memorising the training points
# ($\varphi_c(x)=c\,\mathrm{dist}(x,\{y_j\})$ plays the role of the plane's distance). What keeps this from happening
# quickly is the discriminator's limited capacity and the fresh minibatches, not the divergence. The W1 proximal does
# not depend on such luck: $D^L_{\rm KL}(\rho_T\|\hat\pi)\le L\,W_1(\rho_T,\hat\pi)<\infty$ for every sample set.
#
# In $\mathbb R^2$ the 8-Gaussian *law* has a density everywhere and $\mathrm{KL}(\rho_T\|\pi)<\infty$ — but it is
# *huge* for mass between the modes: with component standard deviation $\sigma=0.1$, a sample at distance $r$ from the
# nearest centre costs about $r^2/(2\sigma^2)=50\,r^2$ nats. The discriminator may grow that steep, and without the
# kinetic term nothing damps the flow's reaction to its gradient, so in 2-D the variants without W2 are the less
# tame ones (compare the gradient norms below), and an unregularised run can run away if trained long enough. The
# kinetic term alone is enough there: the 2-D W2-only runs in the authors' repository were fine (method.md §8).
#
# **How `train()` reports a failure.** With a numerically stable `logsumexp` (unlike the authors' naive
# `log(mean(exp))`, method.md §6 d6) the blow-up does not produce NaN; it shows as a divergence estimate that climbs
# without bound (towards $10^5$–$10^6$ if nothing stops it). `train()` stops a run cleanly when the estimate exceeds
# `FlowConfig.max_divergence` (or when anything becomes non-finite), keeps the weights from before the failing
# iteration and records `result.diverged_at` and `result.divergence_reason`. The notebook goes on.

# %% [markdown]
# ## 3 Why the W2 proximal gives straight, step-size-independent paths
#
# With the kinetic term, the optimality system is (20), the HJ equation and the continuity equation, with the terminal condition (21):
# $$-\partial_tU+\frac{|\nabla U|^2}{2\lambda}=0,\quad U(x,T)=\varphi^\ast(x),\qquad
# \partial_t\rho-\tfrac1\lambda\nabla\cdot(\rho\nabla U)=0 .$$
# Differentiating HJ gives the pressureless Burgers equation (24), $\partial_tv+(v\cdot\nabla)v=0$: the velocity is
# constant along each path, which is a straight line, in the start-point form (22), (27),
# $$x(t)=x(0)-\frac t\lambda\nabla U(x(0),0)$$
# (the end-point form (29), $x(t)=x(T)+\frac{T-t}\lambda\nabla\varphi^\ast(x(T))$, is the one notebook 03 tests).
# Forward Euler with the exact $v$ then reproduces $x(t_n)$ for **every** $h$ (discretisation invariance), and the
# Cauchy–Schwarz bound of §2 of method.md holds with equality:
# $$\mathrm{KE}_h=\frac1M\sum_i\sum_n\frac{|x^i_{n+1}-x^i_n|^2}{2h}\ \ge\ \frac1M\sum_i\frac{|x^i_N-x^i_0|^2}{2T}=:\mathrm{KE}_{\rm chord}.$$
# Without the kinetic term the Hamiltonian is $+\infty$ off $p=0$: there is no HJ equation and infinitely many flows
# carry $\rho_0$ to the same $\rho_T$; nothing penalises detours or uneven speed.
#
# We measure, on the same prior samples for every variant:
#
# | quantity | definition | ideal |
# |---|---|---|
# | $W_2$ / floor | $W_2(\hat\rho_T^{\,n},\hat\pi^{\,n})$ divided by $W_2(\hat\pi^{\,n},\hat\pi'^{\,n})$ (two independent data sets of the same size $n$) | $\approx1$ for $\rho_T=\pi$; the optimum of (19) stops at a proximal point $\rho_T^\ast\neq\pi$ (notebook 04, §4), so somewhat above 1, more for larger $\lambda$ |
# | off-plane | mean of $\lvert x_N-BB^\top x_N\rvert$, $B$ the data plane's orthonormal basis | $0$ |
# | $\mathrm{KE}_h$, $\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$ | path energy, and its ratio to the chord energy | ratio $1$ |
# | straightness | $\sum_i\text{length}_i/\sum_i\lvert x_N^i-x_0^i\rvert-1$ | $0$ |
# | disc. gap | $\overline{\lvert x_T^{h=T/5}-x_T^{h=T/320}\rvert}\,/\,\overline{\lvert x_T^{h=T/320}-x_0\rvert}$, same $x_0$ | $0$ |

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

from proxflow_edu import diagnostics, metrics
from proxflow_edu.course import plotting
from proxflow_edu.data import sample_toy
from proxflow_edu.flow import euler_flow
from proxflow_edu.config import FlowConfig
from proxflow_edu.train import train
from proxflow_edu.course.parameters import check_parameters, parameter_defaults

# %% tags=["parameters"]
SMOKE = os.environ.get("PROXFLOW_SMOKE", "0") == "1"
seed = 0
dataset = "8gaussians"
dims = [2, 12]
variants = ["unregularized", "w2", "w1", "w1w2"]
# iterations in R^d, d > 2, of the two W1 variants (48), (49)
n_iters = 20 if SMOKE else 1200
# ... of (46), (47): a cap, they are expected to stop earlier
n_iters_no_w1 = 5 if SMOKE else 800
# iterations of every variant in R^2 (nothing blows up there)
n_iters_2d = 5 if SMOKE else 400
# the authors' choice; "cosine" (lecture default) damps the blow-up
lr_schedule = "constant"
n_train = 1_000 if SMOKE else 20_000     # training samples of pi
n_eval = 128 if SMOKE else 1_000         # samples for W2, noise floor and the path diagnostics
max_divergence = 1e3                     # FlowConfig.max_divergence: the blow-up detector
log_every = 10
h_fine_steps = 40 if SMOKE else 320      # discretisation gap: h = T/5 against h = T/h_fine_steps
# check: W1+W2 in R^12 within this factor of the noise floor (the course's goal is 2; see the
# check cell)
w2_factor_max = 3.0
n_threads = 1   # torch threads: these MLPs are too small to gain from more, and 2 threads on a busy
                # 2-core machine can be several times slower than 1
DEFAULTS = parameter_defaults(globals())  # what papermill -p / -y may change, checked below

# %%
check_parameters(globals(), DEFAULTS)  # a wrong type or range fails here, naming the parameter

# %% [markdown]
# **Settings.** Every run uses the paper's algorithm at the lecture budget, the preset `lecture_toy_paper`
# (= `FlowConfig()`: every well-posedness option off; notebook 08, §4 trains the course's straight recipe beside
# it), printed below, and changes only `variant`,
# `n_iters`, `max_divergence`, `log_every` and the learning-rate schedule: we keep the rates constant like the authors,
# because the lecture default (cosine decay to 5 %) also slows down the blow-up we want to see. The toy runs in the
# authors' repository (method.md §8) used **25,000 iterations** (50,000 for some), $\lambda=0.5$, $\gamma=0.1$ in 2-D and $\lambda=0.1$, $\gamma=0.01$ in 7-D/12-D, a constant learning rate
# $10^{-4}$ ($U$) / $2\cdot10^{-5}$ ($\varphi$) — available as `FlowConfig.preset("paper_toy_highdim")`. Our budget is a
# few minutes of a shared 2-core CPU, so we train for the number of iterations printed below, **20–60× fewer than
# the authors**, with larger learning rates (the lecture defaults, $10^{-3}$ / $5\cdot10^{-4}$, printed below), kept
# constant (`lr_schedule` above). A failure that needs 10,000+ iterations in their runs may therefore not appear here;
# we then look at its early signs instead.

# %%
torch.set_num_threads(n_threads)
torch.manual_seed(seed)
base = FlowConfig.preset("lecture_toy_paper", seed=seed, max_divergence=max_divergence,
                          log_every=log_every, lr_schedule=lr_schedule)
shown = ("T", "h", "lam", "L", "gp_weight", "batch_size", "disc_steps", "lr_potential",
         "lr_discriminator", "lr_schedule", "max_divergence")
print(textwrap.fill("lecture defaults: "
                    + str({k: v for k, v in base.to_dict().items() if k in shown}),
                    width=100, subsequent_indent="  "))
shown_paper = ("lam", "gp_weight", "n_iters", "lr_potential", "lr_discriminator", "lr_schedule")
paper_highdim = FlowConfig.preset("paper_toy_highdim").to_dict()
print(textwrap.fill("authors' repository (7-D/12-D): "
                    + str({k: v for k, v in paper_highdim.items() if k in shown_paper}),
                    width=100, subsequent_indent="  "))
print(f"iterations here: R^2 {n_iters_2d}; R^d, d > 2: {n_iters} (W1 variants), "
      f"at most {n_iters_no_w1} (variants without W1); smoke mode: {SMOKE}")

# training set, and held-out data for W2
data = {d: sample_toy(dataset, n_train, dim=d, seed=seed) for d in dims}
test = {d: sample_toy(dataset, n_eval, dim=d, seed=seed + 1000) for d in dims}
floor = {d: metrics.noise_floor(data[d], n_eval, seed=seed) for d in dims}
for d in dims:
    print(f"R^{d:<2}: {n_train} training samples, W2 noise floor at n={n_eval}: {floor[d]:.4f}")

# %% [markdown]
# ## 4 Train the eight runs
#
# Same data, same seed (hence the same initial networks and minibatches) for all four variants in each dimension.

# %%
runs = {}
jobs = [(d, v) for d in dims for v in variants]
t0 = time.perf_counter()
for d, v in tqdm(jobs, desc="ablation runs"):
    iters = n_iters_2d if d == 2 else n_iters if v in ("w1", "w1w2") else n_iters_no_w1
    runs[d, v] = train(base.replace(variant=v, n_iters=iters), data[d], progress=True)
print(f"total training time: {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ### How did each run end?
#
# `train()` never raises on a blow-up: it sets `diverged_at` (the iteration) and `divergence_reason` (the cause).

# %%
for (d, v), r in runs.items():
    div = np.array(r.history["divergence"])
    status = (f"STOPPED at iteration {r.diverged_at} ({r.divergence_reason})"
              if r.diverged_at is not None else f"finished {r.iterations_done} iterations")
    print(f"R^{d:<2} {v:<14} {status}\n"
          f"     divergence estimate: first {div[0]:.3g}, max {div.max():.3g}, last {div[-1]:.3g}; "
          f"max |grad U-loss| {max(r.history['grad_norm_potential']):.3g}; {r.wall_time:.0f} s")

# %% [markdown]
# ## 5 Evaluate on the same prior samples
#
# For each dimension we draw one set of $n$ prior samples $x_0$ and push it through every trained flow.

# %%
def evaluate(r, x0, y, floor_d):
    """Metrics of one run on prior samples x0 against held-out data y."""
    c = r.config
    flow = euler_flow(r.potential, x0, c.T, c.h, c.lam, keep_path=True)
    xT, path = flow.final, flow.states
    row = {"dim": x0.shape[1], "variant": c.variant, "iters": r.iterations_done,
           "stopped": r.diverged_at, "xT": xT, "path": path}
    if not torch.isfinite(path).all():
        row.update(w2=math.nan, ratio=math.nan, off=math.nan, ke=math.nan, ke_ratio=math.nan,
                   straight=math.nan, gap=math.nan)
        return row
    gap = diagnostics.discretization_gap(r.potential, x0, c.T, c.T / 5, c.lam,
                                         h_fine=c.T / h_fine_steps)
    ke = float(diagnostics.path_kinetic_energy(path, c.h))
    chord = float(diagnostics.chord_kinetic_energy(path, c.T))
    w2 = metrics.w2_distance(xT, y)
    row.update(w2=w2, ratio=w2 / floor_d, off=float(metrics.off_manifold_distance(xT).mean()),
               ke=ke, chord=chord, ke_ratio=ke / chord, straight=diagnostics.straightness(path),
               gap=gap.relative, gap_obj=gap)
    return row


rows, prior_ref = {}, {}
for d in dims:
    x0 = runs[d, variants[0]].prior(n_eval, seed=seed + 7)   # the same x0 for every variant
    prior_ref[d] = {"w2": metrics.w2_distance(x0, test[d]),
                    "off": float(metrics.off_manifold_distance(x0).mean())}
    for v in tqdm(variants, desc=f"evaluate R^{d}", leave=False):
        rows[d, v] = evaluate(runs[d, v], x0, test[d], floor[d])

# %%
def fmt(x, spec=".3g"):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


lines = ["| $d$ | variant | eq. | iterations | stopped at | $W_2$ | $W_2$/floor | off-plane "
         "| $\\mathrm{KE}_h$ | $\\mathrm{KE}_h/\\mathrm{KE}_{\\rm chord}$ | straightness "
         f"| disc. gap $T/5$ vs $T/{h_fine_steps}$ |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
eq = {"unregularized": "(46)", "w2": "(47)", "w1": "(48)", "w1w2": "(49)"}
for d in dims:
    lines.append(f"| {d} | prior $\\rho_0$ | | | | {fmt(prior_ref[d]['w2'])} "
                 f"| {fmt(prior_ref[d]['w2'] / floor[d])} | {fmt(prior_ref[d]['off'])} | | | | |")
    for v in variants:
        s = rows[d, v]
        lines.append(f"| {d} | `{v}` | {eq[v]} | {s['iters']} | {fmt(s['stopped'], 'd')} "
                     f"| {fmt(s['w2'])} | {fmt(s['ratio'], '.2f')} | {fmt(s['off'])} "
                     f"| {fmt(s['ke'])} | {fmt(s['ke_ratio'], '.3f')} "
                     f"| {fmt(s['straight'], '.3f')} | {fmt(s['gap'], '.3f')} |")
table = "\n".join(lines)
floors = ", ".join(f"$R^{{{d}}}$: {floor[d]:.3f}" for d in dims)
display(Markdown(f"**Ablation on {dataset}, $n={n_eval}$ evaluation samples, noise floor "
                 f"{floors}** (smoke mode: {SMOKE})\n\n" + table))
print(table)  # the same table as plain text (survives any renderer)

# %% [markdown]
# ## 6 Pictures
#
# ### Samples, projected on the data plane
# Grey: held-out data; blue: generated $x_N$ (coordinates $z=B^\top x$ in the data plane; for $d=12$ the ten
# off-plane coordinates are not shown here — see the histogram further down).

# %%
axes = plotting.small_multiples(len(dims) * len(variants), size=3.2, ncols=2)
for ax, (d, v) in zip(axes, jobs):
    s = rows[d, v]
    if torch.isfinite(s["xT"]).all():
        title = f"{v}, $\\mathbb{{R}}^{{{d}}}$: $W_2$/floor {fmt(s['ratio'], '.2f')}"
        plotting.plot_samples(s["xT"], test[d], ax=ax, title=title)
        ax.set(xlim=(-4, 4), ylim=(-4, 4))
    else:
        ax.set_title(f"{v}, R^{d}: non-finite samples")
plt.gcf().suptitle(f"{dataset}: generated samples after training "
                   "(coordinates in the data plane, same units as data)")
plt.show()

# %% [markdown]
# ### Training histories (log scale)
#
# The DV estimate of the terminal cost, the gradient norm of the potential loss $J_G$ and the kinetic energy
# $\mathrm{KE}_h$ of the training batch, logged every `log_every` iterations. A cross marks the iteration at which a
# run was stopped; the dashed line is `max_divergence`. The y-axis is symmetric-log (linear within $\pm10^{-2}$),
# because the DV estimate of a well-trained W1 run fluctuates around small values, sometimes below zero.

# %%
keys = [("divergence", "DV estimate of the terminal cost"),
        ("grad_norm_potential", "$|\\nabla_\\theta J_G|$"),
        ("kinetic_energy", "$\\mathrm{KE}_h$ (training batch)")]
fig, axs = plt.subplots(len(keys), len(dims), figsize=(4.5 * len(dims), 3.2 * len(keys)),
                        squeeze=False, layout="constrained")
for i, d in enumerate(dims):
    for j, (key, label) in enumerate(keys):
        ax = axs[j, i]
        plotting.plot_history({v: runs[d, v].history for v in variants}, key, ax=ax, logy=True,
                              title=f"{label}, $\\mathbb{{R}}^{{{d}}}$")
        for k, v in enumerate(variants):
            r = runs[d, v]
            if r.diverged_at is not None:
                ax.plot(r.history["iteration"][-1], r.history[key][-1], "x", ms=10, c=f"C{k}")
        if key == "divergence":
            ax.axhline(max_divergence, ls="--", c="k", lw=0.8)
        ax.set_ylabel("dimensionless" if key != "kinetic_energy" else "data units$^2$ / time")
plt.show()

# %% [markdown]
# ### Distance off the data plane ($\mathbb R^{d}$, $d>2$)
#
# The prior $\mathcal N(0,I_d)$ has a mean off-plane distance of about $\sqrt{d-2}$; a perfect flow brings it to 0.

# %%
high = [d for d in dims if d > 2]
if high:
    fig, axs = plt.subplots(1, len(high), figsize=(5.5 * len(high), 3.6), squeeze=False,
                            layout="constrained")
    for ax, d in zip(axs[0], high):
        x0 = rows[d, variants[0]]["path"][0]
        bins = np.logspace(-2.5, 1.5, 50)
        ax.hist(metrics.off_manifold_distance(x0).numpy(), bins=bins, histtype="step", color="k",
                label="prior $x_0$")
        for k, v in enumerate(variants):
            x = rows[d, v]["xT"]
            if torch.isfinite(x).all():
                ax.hist(metrics.off_manifold_distance(x).clamp_min(1e-4).numpy(), bins=bins,
                        histtype="step", color=f"C{k}", label=v)
        ax.set(xscale="log", xlabel="distance to the data plane (data units)",
               ylabel="number of samples",
               title=f"off-plane distance of $x_N$, $\\mathbb{{R}}^{{{d}}}$")
        ax.legend(fontsize=8)
    plt.show()

# %% [markdown]
# ### Discretisation invariance
#
# The same prior samples pushed with the training step $h=T/5$ (end points: dots) and with $h=T/320$ (end of each
# segment), projected on the data plane (the off-plane part of the difference is not drawn, but it is in the
# table's gap). A straight constant-speed flow (exact HJ solution) would give zero-length segments.

# %%
d_show = dims[-1]
axes = plotting.small_multiples(len(variants), size=3.2, ncols=2)
for ax, v in zip(axes, variants):
    s = rows[d_show, v]
    if "gap_obj" not in s:
        ax.set_title(f"{v}: non-finite samples")
        continue
    g = s["gap_obj"]
    from proxflow_edu.data import project_to_plane
    zc, zf = project_to_plane(g.x_coarse[:300]), project_to_plane(g.x_fine[:300])
    ax.plot(torch.stack([zc[:, 0], zf[:, 0]]), torch.stack([zc[:, 1], zf[:, 1]]), c="C3", lw=0.6)
    ax.scatter(zc[:, 0], zc[:, 1], s=3, c="C0")
    ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal", xlabel="$z_1$ (data units)", ylabel="$z_2$",
           title=f"{v}: gap {fmt(s['gap'], '.3f')} (relative)")
plt.gcf().suptitle(f"$x_T$ at $h=T/5$ (dots) vs $h=T/{h_fine_steps}$ (segment ends), "
                   f"$\\mathbb{{R}}^{{{d_show}}}$")
plt.show()

# %% [markdown]
# ## 7 What happened in this run, next to the paper's claims
#
# The cell below states, from the numbers above, which runs were stopped and how the four variants compare. Read it
# together with the paper's claims (method.md §7.1, §8):
#
# * **MNIST** (paper, Fig. 2): the unregularised and W2-only runs "fail in the middle of training"; the authors' logs
#   show NaN at iteration ~136 (W2-only) and ~148 (unregularised), after the divergence estimate had risen to 53 / 80.
# * **Toys** (authors' pickles): W2-only gives NaN in 7-D/12-D after **8,900–24,400 iterations** (Moons 12-D: 8,900;
#   Pinwheel 7-D: 24,400); 2-D W2-only is fine; every W1 ⊕ W2 run stays finite.
# * **W1-only vs W1 ⊕ W2** (MNIST): the paper's text says W1-only has "substantially higher kinetic energy"; the
#   authors' repository logs about twice as much (23.9 vs 12.2, their code's KE), and their stored weights, re-evaluated
#   with a correct sampler (method.md §7.1), change more under step refinement (42 % vs 36 % at $h=1$ vs $1/64$) — so
#   the authors' own W1 ⊕ W2 flow was far from discretisation invariant.
#
# Two differences of principle: the NaNs of the authors' code most probably come from their naive `log(mean(exp(φ)))`
# overflowing after the estimate has blown up (method.md §6 d6); with `logsumexp` the same failure shows as an estimate
# that keeps climbing, which `max_divergence` catches. And our runs are 20–60× shorter than theirs.

# %% tags=["remove-input"]
def summary(d):
    out = []
    no_w1 = [v for v in ("unregularized", "w2") if (d, v) in runs]
    w1 = [v for v in ("w1", "w1w2") if (d, v) in runs]
    space = f"$\\mathbb R^{{{d}}}$"
    for v in no_w1:
        r = runs[d, v]
        div = r.history["divergence"]
        grad_max = max(r.history["grad_norm_potential"])
        if r.diverged_at is not None:
            out.append(f"- `{v}` in {space} **was stopped at iteration {r.diverged_at}** "
                       f"({r.divergence_reason}); the last healthy iterations had "
                       f"potential-gradient norms up to {grad_max:.3g}.")
        else:
            half = div[len(div) // 2]
            out.append(f"- `{v}` in {space} did **not** reach `max_divergence`="
                       f"{max_divergence:g} in {r.iterations_done} iterations; its DV estimate "
                       f"went from {div[0]:.3g} to {div[-1]:.3g} (mid-run {half:.3g}, "
                       f"max {max(div):.3g}), its potential-gradient norm reached {grad_max:.3g}.")
    for v in w1:
        r = runs[d, v]
        end = "stopped at " + str(r.diverged_at) if r.diverged_at is not None else "finished"
        out.append(f"- `{v}` in {space}: max DV estimate {max(r.history['divergence']):.3g}, "
                   f"max potential-gradient norm {max(r.history['grad_norm_potential']):.3g}, "
                   f"{end}.")
    s = {v: rows[d, v] for v in variants}
    if ("w1" in s and "w1w2" in s
            and not math.isnan(s["w1"]["ke"]) and not math.isnan(s["w1w2"]["ke"])):
        a, b = s["w1"], s["w1w2"]
        out.append(f"- W1-only vs W1 ⊕ W2: $\\mathrm{{KE}}_h$ {a['ke']:.3g} vs {b['ke']:.3g}, "
                   f"KE/chord {a['ke_ratio']:.3f} vs {b['ke_ratio']:.3f}, discretisation gap "
                   f"{a['gap']:.3f} vs {b['gap']:.3f}, $W_2$/floor {a['ratio']:.2f} vs "
                   f"{b['ratio']:.2f}.")
    return "\n".join(out)


display(Markdown("\n\n".join(f"**$\\mathbb R^{{{d}}}$**\n\n" + summary(d) for d in dims)))

# %% [markdown]
# **How to read it.** What to expect, and why, before the cell below says what *this* run did:
#
# * **Without the W1 proximal, in $\mathbb R^{12}$,** nothing bounds the discriminator off the data plane (§2): its DV
#   estimate and the gradient of the potential loss grow until the estimate crosses `max_divergence` and `train()`
#   stops the run. The authors' W2-only toy runs took 8,900–24,400 iterations to reach NaN (authors' repository,
#   method.md §8) with learning rates 10–25× smaller than ours, so here it can happen within a few hundred. It
#   appears as a climbing estimate, not as NaN, because `logsumexp` does not overflow.
# * **In $\mathbb R^2$** the KL against the law is finite (against the empirical training set it is not, §2), so no
#   variant *needs* to blow up; without the kinetic term nothing bounds the flow's speed, so expect larger
#   potential gradients and kinetic energies there. Whether an unregularised 2-D run crosses `max_divergence` within
#   a short budget depends on the seed — GAN-type training is chaotic, and even a change of floating-point round-off
#   can decide such borderline cases.
# * **W1-only vs W1 ⊕ W2:** both have a finite terminal cost, but only W1 ⊕ W2 selects the straight constant-speed flow
#   among all flows that reach the same $\rho_T$ (the non-uniqueness of §3): compare $\mathrm{KE}_h$,
#   $\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$, straightness and the gap. On MNIST the authors' repository shows the same
#   ordering (W1-only: about twice the logged KE, more change under step refinement; §7 above).
# * **W1 ⊕ W2 is not yet the straight HJ solution** after a short run: short training, a soft Lipschitz penalty and 5
#   Euler steps all keep $\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$ above 1, the gap above 0 and the samples off the plane;
#   notebook 06 looks at the off-plane distance more closely.

# %% tags=["remove-input"]
def reading():
    """What this run shows, one bullet per point above, generated from `runs` and `rows`
    (no number typed in)."""
    out = []
    d_hi, d_lo = max(dims), min(dims)
    paper = FlowConfig.preset("paper_toy_highdim")
    fast = (base.lr_potential / paper.lr_potential,
            base.lr_discriminator / paper.lr_discriminator)
    if d_hi > 2:
        w1_max = max(max(runs[d_hi, v].history["divergence"]) for v in ("w1", "w1w2"))
        for v in ("unregularized", "w2"):
            r, row = runs[d_hi, v], rows[d_hi, v]
            div = r.history["divergence"]
            head = (f"**was stopped at iteration {r.diverged_at}**" if r.diverged_at is not None
                    else f"was **not** stopped in {r.iterations_done} iterations")
            out.append(f"- `{v}` in $\\mathbb R^{{{d_hi}}}$ {head}; its DV estimate went from "
                       f"{div[0]:.3g} to a maximum of {max(div):.3g} (the two W1 runs: at most "
                       f"{w1_max:.3g}); $W_2$/floor of its last weights {fmt(row['ratio'], '.2f')} "
                       f"(W1 ⊕ W2: {fmt(rows[d_hi, 'w1w2']['ratio'], '.2f')}).")
        out.append(f"- Our learning rates are {fast[0]:.0f}× ($U$) and {fast[1]:.0f}× "
                   "($\\varphi$) the authors' (method.md §8).")
    no_ke, ke = ("unregularized", "w1"), ("w2", "w1w2")
    stopped_2d = [v for v in variants if runs[d_lo, v].diverged_at is not None]
    ke_lo = {v: rows[d_lo, v]["ke"] for v in variants}
    gn_lo = {v: max(runs[d_lo, v].history["grad_norm_potential"]) for v in variants}
    finite = all(not math.isnan(ke_lo[v]) for v in variants)
    stopped_text = ", ".join(f"`{v}`" for v in stopped_2d) or "none"
    ke_text = ""
    if finite:
        ordering = ("every run without it has more kinetic energy than every run with it"
                    if min(ke_lo[v] for v in no_ke) > max(ke_lo[v] for v in ke)
                    else "the ordering is mixed in this run")
        ke_text = (f"Without the kinetic term, $\\mathrm{{KE}}_h$ is "
                   f"{', '.join(f'{ke_lo[v]:.3g}' for v in no_ke)} (`{no_ke[0]}`, `{no_ke[1]}`) "
                   f"against {', '.join(f'{ke_lo[v]:.3g}' for v in ke)} with it "
                   f"(`{ke[0]}`, `{ke[1]}`): {ordering}; the largest potential-gradient norms are "
                   f"{', '.join(f'`{v}` {gn_lo[v]:.3g}' for v in variants)}.")
    out.append(f"- In $\\mathbb R^{{{d_lo}}}$: stopped runs: {stopped_text}. " + ke_text)
    for d in dims:
        a, b = rows[d, "w1"], rows[d, "w1w2"]
        if math.isnan(a["ke"]) or math.isnan(b["ke"]):
            continue
        lower = ", ".join(f"{'lower' if b[k] < a[k] else 'not lower'} in {label}"
                          for k, label in (("ke", "KE"), ("ke_ratio", "KE/chord"),
                                           ("straight", "straightness"), ("gap", "gap")))
        out.append(f"- W1-only vs W1 ⊕ W2 in $\\mathbb R^{{{d}}}$: $W_2$/floor {a['ratio']:.2f} vs "
                   f"{b['ratio']:.2f}; $\\mathrm{{KE}}_h$ {a['ke']:.3g} vs {b['ke']:.3g} "
                   f"({a['ke'] / b['ke']:.2g}×); KE/chord {a['ke_ratio']:.3f} vs "
                   f"{b['ke_ratio']:.3f}; straightness {a['straight']:.3f} vs {b['straight']:.3f}; "
                   f"gap {a['gap']:.3f} vs {b['gap']:.3f}. W1 ⊕ W2 is {lower}.")
    b = rows[d_hi, "w1w2"]
    if not math.isnan(b["ke"]):
        out.append(f"- W1 ⊕ W2 in $\\mathbb R^{{{d_hi}}}$: KE/chord {b['ke_ratio']:.3f} "
                   f"(1 = straight), gap {b['gap']:.3f} (0 = invariant), mean off-plane distance "
                   f"{b['off']:.3g} (prior: {prior_ref[d_hi]['off']:.3g}).")
    return "\n".join(out)


display(Markdown(f"**What this run shows** (generated; smoke mode: {SMOKE})\n\n" + reading()))

# %% [markdown]
# **Beyond the paper's algorithm.** The course's well-posedness options, and the paper's algorithm beside
# them, are notebook 08: §4 on toys, §6 on MNIST.

# %% [markdown]
# ## 8 Checks

# %%
# (a) Mathematics: Cauchy-Schwarz KE_h >= KE_chord and the triangle inequality straightness >= 0
#     for every trained flow; and the discretisation gap of the table, checked on two flows whose
#     Euler solutions are known in closed form (same T, coarse step T/5 and fine step
#     T/h_fine_steps as the table):
#     * U = b.x: constant velocity -b/lambda, a straight constant-speed flow, so the gap must
#       vanish for every h;
#     * U = c|x|^2/2 (time-independent): x_N = (1 - h c/lambda)^N x_0, so the gap is
#       |q_h - q_fine| |x_0| with q = (1 - h c/lambda)^(T/h), and relative to the fine
#       displacement |q_fine - 1| |x_0|.
for key, s in rows.items():
    if math.isnan(s["ke"]):
        continue
    assert s["ke"] >= s["chord"] * (1 - 1e-5), (key, s["ke"], s["chord"])
    assert s["straight"] >= -1e-5, (key, s["straight"])
T_c, lam_c, c_c = base.T, base.lam, 0.2
x0_c = torch.randn(64, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
b_c = torch.linspace(-1, 1, 12, dtype=torch.float64)
lin = diagnostics.discretization_gap(lambda x, t: x @ b_c, x0_c, T_c, T_c / 5, lam_c,
                                     h_fine=T_c / h_fine_steps)
quad = diagnostics.discretization_gap(lambda x, t: 0.5 * c_c * x.pow(2).sum(1), x0_c, T_c,
                                      T_c / 5, lam_c, h_fine=T_c / h_fine_steps)
q = {n: (1 - (T_c / n) * c_c / lam_c) ** n for n in (5, h_fine_steps)}
gap_expected = abs(q[5] - q[h_fine_steps]) * float(x0_c.norm(dim=1).mean())
relative_expected = abs(q[5] - q[h_fine_steps]) / abs(q[h_fine_steps] - 1)
print(f"closed forms: linear U gap {lin.mean_distance:.1e} (0); quadratic U gap "
      f"{quad.mean_distance:.6f} (closed form {gap_expected:.6f}), relative {quad.relative:.6f} "
      f"(closed form {relative_expected:.6f})")
assert lin.mean_distance < 1e-9, lin.mean_distance
assert abs(quad.mean_distance - gap_expected) < 1e-10 * max(1.0, gap_expected), (
    quad.mean_distance, gap_expected)
assert abs(quad.relative - relative_expected) < 1e-10, quad.relative
# (b) the noise floor is a W2 between two samples of the same law: positive, and W2(y, y) = 0
assert all(f > 0 for f in floor.values())
assert metrics.w2_distance(test[dims[0]], test[dims[0]]) < 1e-6
# (c) bookkeeping of train(): a stopped run says when and why, and kept its last good weights
for (d, v), r in runs.items():
    if r.diverged_at is not None:
        assert r.divergence_reason and r.iterations_done == r.diverged_at, r.divergence_reason
    else:
        assert r.iterations_done == r.config.n_iters
print("math and bookkeeping checks passed")

# %%
# (d) Training quality of the full W1 (+) W2 method (49); looser in smoke mode, where training is
#     a few steps.
d_hi = max(dims)
s = rows[d_hi, "w1w2"]
assert torch.isfinite(s["xT"]).all(), "W1+W2 produced non-finite samples"
assert runs[d_hi, "w1w2"].diverged_at is None, runs[d_hi, "w1w2"].divergence_reason
if SMOKE:
    # a few steps must already move samples towards the data (prior W2 is several noise floors away)
    assert s["w2"] < prior_ref[d_hi]["w2"], (s["w2"], prior_ref[d_hi]["w2"])
else:
    # The course's goal is W2 within 2x the sampling noise floor on 8 gaussians in R^12. With the
    # lecture settings and 1200 iterations our runs landed between about 1.9x and 2.4x (one seed,
    # small changes of the code or the schedule move it), so the assert uses a looser factor and
    # the cell says whether the goal was met.
    goal = 2.0
    verdict = ("goal (<= 2x) met" if s["ratio"] <= goal
               else f"goal (<= 2x) NOT met in {s['iters']} iterations")
    print(f"W1+W2 in R^{d_hi}: W2 = {s['w2']:.4f}, noise floor = {floor[d_hi]:.4f}, "
          f"ratio {s['ratio']:.2f}: {verdict}")
    assert s["ratio"] <= w2_factor_max, s["ratio"]
    assert s["off"] < 0.1 * prior_ref[d_hi]["off"], (s["off"], prior_ref[d_hi]["off"])
print("training-quality checks passed")

# %% [markdown]
# ## 9 Exercises
#
# 1. **Does a decaying learning rate save W2-only?** Retrain `"w2"` in $\mathbb R^{12}$ with the lecture default
#    `lr_schedule="cosine"`, 1200 iterations and `max_divergence=1e6`. Does it stop? Plot its divergence estimate on a
#    log scale next to the constant-rate run above, and compare $W_2$/floor. *Hint:*
#    `base.replace(variant="w2", n_iters=1200, lr_schedule="cosine", max_divergence=1e6)`, then
#    `plotting.plot_history({...}, "divergence", logy=True)`. Budget about a minute.
# 2. **The witness of the blow-up.** For the trained unregularised discriminator in $\mathbb R^{12}$, compare
#    $\varphi$ on data points with $\varphi$ on the same points moved off the plane by a distance $s$. How fast does
#    $\varphi$ grow with $s$, and how does that compare with the W1 runs ($L=1$)? *Hint:* build an off-plane unit
#    vector $u$ with `u - B @ (B.T @ u)` for `B = proxflow_edu.data.embedding(12)`; evaluate
#    `runs[12, v].discriminator(y + s * u)` under `torch.no_grad()`.
# 3. **How strong must W1 be?** Repeat the W1-only run in $\mathbb R^{12}$ with $L\in\{1, 10, 100\}$. Which limit of
#    (48) do you approach as $L\to\infty$, and what do the histories show? *Hint:* `base.replace(variant="w1", L=...)`;
#    compare with inequality (8).
# 4. **Invariance at the authors' $\lambda$.** The authors' repository uses $\lambda=0.5$ in 2-D (method.md §8). Retrain `"w1"` and `"w1w2"` in
#    $\mathbb R^2$ with `lam=0.5` and compare $\mathrm{KE}_h/\mathrm{KE}_{\rm chord}$ and the discretisation gap.
#    *Hint:* reuse `evaluate`.
#
# Solutions: `notebooks/solutions/05_ablation_solutions.md`.

# %%
print(elapsed())

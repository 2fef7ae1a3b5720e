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
# # 04 · What "proximal" and "well-posed" mean
#
# The paper's title has two words the other notebooks use without defining: *proximal* and *well-posed*. This
# notebook defines both and checks each claim on problems whose answer is known in closed form. Read it after
# notebook 03 (the optimality system).
#
# **Learning goals.** After this notebook you can
#
# 1. write the proximal operator as an implicit (backward-Euler) step and its value as the Moreau envelope, and
#    say why the implicit step is stable where the explicit one is not;
# 2. read problem (19) as a proximal step twice over: the W2 proximal (one JKO step of length $T/\lambda$) of the
#    W1 proximal of KL, and read the particles' end points as proximal points of $\varphi^\ast$ (Hopf–Lax);
# 3. solve a W1 ⊕ W2 problem by hand (two Gaussians on a line), see that the proximal **biases** the answer
#    ($\rho_T^\ast\neq\pi$) by a formula, and check a trained flow against it;
# 4. state what Theorem 4.2 and Lemma 4.1 prove, and what they do not; check the Lasry–Lions argument numerically;
# 5. test uniqueness empirically: flows trained from different seeds, widths and steps agree with W1 ⊕ W2 and
#    disagree without the kinetic energy;
# 6. see where the theory stops: characteristics that cross (Remark 4.1).
#
# Equation numbers are the paper's (arXiv 2407.11901), as reconstructed in `method.md`. The cell below gives the run
# times last measured by `make run`; the last cell prints this run's.

# %% tags=["remove-input"]
# the run times last measured by `make run` (notebooks/timings.json); the clock starts here
from IPython.display import Markdown, display

from proxflow_edu.course.timing import elapsed, notebook_timer, run_time_note

notebook_timer()
display(Markdown(run_time_note("04_proximal_and_well_posed")))

# %%
import itertools
import os
import time

import matplotlib.pyplot as plt
import torch

from IPython.display import Markdown, display

from proxflow_edu import diagnostics
from proxflow_edu.course import plotting
from proxflow_edu.data import sample_toy
from proxflow_edu.flow import euler_flow
from proxflow_edu.objectives import lipschitz_kl_dual
from proxflow_edu.course.parameters import check_parameters, parameter_defaults
from proxflow_edu.config import FlowConfig
from proxflow_edu.train import train

# %% tags=["parameters"]
SMOKE = os.environ.get("PROXFLOW_SMOKE", "0") == "1"
seed = 0
n_iters_1d = 30 if SMOKE else 600  # training iterations of the 1-D flows of section 4
# training iterations of each flow of the uniqueness study (section 6)
n_iters_2d = 10 if SMOKE else 600
# flows per variant in section 6: seeds, then a narrower network, then a finer step
n_runs_2d = 2 if SMOKE else 4
n_mc = 20_000  # Monte-Carlo samples for the closed-form checks
DEFAULTS = parameter_defaults(globals())  # what papermill -p / -y may change, checked below

# %%
check_parameters(globals(), DEFAULTS)  # a wrong type or range fails here, naming the parameter
torch.manual_seed(seed)
gen = torch.Generator().manual_seed(seed)
t_start = time.perf_counter()
print(f"smoke mode: {SMOKE}")

# %% [markdown]
# ## 1 · The proximal operator is an implicit step
#
# For a function $f$ and a step $\tau>0$ the **proximal operator** and its value, the **Moreau envelope**, are
# $$\operatorname{prox}_{\tau f}(x)=\arg\min_y\Big\{f(y)+\frac{|y-x|^2}{2\tau}\Big\},\qquad
# f_\tau(x)=\min_y\Big\{f(y)+\frac{|y-x|^2}{2\tau}\Big\}.$$
# Setting the derivative in $y$ to zero gives $y=x-\tau\nabla f(y)$: the proximal point is one **backward-Euler**
# step of the gradient flow $\dot x=-\nabla f(x)$, with the gradient taken at the *new* point. The envelope is a smoothed
# $f$ with $\nabla f_\tau(x)=(x-\operatorname{prox}_{\tau f}(x))/\tau$, defined even where $f$ has a kink.
#
# Two closed forms. For $f(y)=|y|$ the prox is soft-thresholding, $\operatorname{sign}(x)\max(|x|-\tau,0)$, and the
# envelope is the Huber function ($x^2/(2\tau)$ for $|x|\le\tau$, $|x|-\tau/2$ beyond). For $f(y)=\frac a2y^2$ the prox
# is $x/(1+\tau a)$: it contracts for every $\tau$, while the explicit step $x-\tau ax=(1-\tau a)x$ blows up once
# $\tau a>2$. That unconditional stability is why a proximal step is a good building block.

# %%
xs = torch.linspace(-3, 3, 61, dtype=torch.float64)
# brute-force minimisation over a fine grid
ys = torch.linspace(-6, 6, 120_001, dtype=torch.float64)
tau = 0.7
objective = ys.abs()[None, :] + (ys[None, :] - xs[:, None]) ** 2 / (2 * tau)
prox_grid, envelope_grid = ys[objective.argmin(dim=1)], objective.min(dim=1).values
soft = xs.sign() * (xs.abs() - tau).clamp_min(0)
huber = torch.where(xs.abs() <= tau, xs**2 / (2 * tau), xs.abs() - tau / 2)
print(f"|y|: max |prox - soft-threshold| = {(prox_grid - soft).abs().max():.1e}, "
      f"max |envelope - Huber| = {(envelope_grid - huber).abs().max():.1e}")
assert (prox_grid - soft).abs().max() < 1e-3 and (envelope_grid - huber).abs().max() < 1e-6
# the envelope's gradient is (x - prox) / tau
slope = torch.gradient(envelope_grid, spacing=(xs,))[0]
assert torch.allclose(slope[1:-1], ((xs - soft) / tau)[1:-1], atol=0.06)

a = 3.0
quadratic = a * ys**2 / 2
for tau_q in (0.1, 0.5, 1.0):
    # the closed forms: one step maps x to factor * x
    explicit, implicit = 1 - tau_q * a, 1 / (1 + tau_q * a)
    # the proximal point by brute force, as for |y| above: minimise f(y) + |y - x|^2 / (2 tau)
    # over the grid
    prox_q = ys[(quadratic[None, :] + (ys[None, :] - xs[:, None]) ** 2 / (2 * tau_q)).argmin(dim=1)]
    print(f"f = {a:g} y^2/2, tau = {tau_q}: explicit factor {explicit:+.2f}, "
          f"implicit (prox) factor {implicit:.2f}; "
          f"max |grid prox - implicit * x| = {(prox_q - implicit * xs).abs().max():.1e}")
    assert (prox_q - implicit * xs).abs().max() < 1e-4  # the grid spacing is 1e-4
# tau a = 3 > 2: ten explicit steps (gradient by autograd) amplify, ten proximal steps
# (grid minimisation) contract
x_exp = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
x_imp = torch.tensor(1.0, dtype=torch.float64)
for _ in range(10):
    (grad_f,) = torch.autograd.grad(a * x_exp**2 / 2, x_exp)
    x_exp = (x_exp - 1.0 * grad_f).detach().requires_grad_()
    x_imp = ys[(quadratic + (ys - x_imp) ** 2 / 2).argmin()]
print(f"tau = 1, ten steps from x = 1: explicit {x_exp.item():+.0f}, implicit {x_imp.item():.1e}")
assert abs(x_exp.item()) > 100 and abs(x_imp.item()) < 1e-3

# %% [markdown]
# ## 2 · Problem (19) is a proximal step of a proximal
#
# Replace points by probability measures and $|y-x|^2$ by $W_2^2$. The W2 proximal of a functional $\mathcal F$ at
# $\rho_0$ is $\arg\min_\rho\{\mathcal F(\rho)+\frac{1}{2\tau}W_2^2(\rho_0,\rho)\}$; repeated, it is the **JKO scheme**,
# the backward-Euler scheme of the Wasserstein gradient flow of $\mathcal F$. By Benamou–Brenier (method.md §2),
# $$\inf_v\Big\{\lambda\int_0^T\!\!\int\tfrac12|v|^2\rho\,dx\,dt+D(\rho_T\|\pi)\Big\}
# =\inf_{\rho}\Big\{D(\rho\|\pi)+\frac{\lambda}{2T}W_2^2(\rho_0,\rho)\Big\}:$$
# problem (19) is **one JKO step of length $\tau=T/\lambda$** of the terminal cost, taken from the prior. This is how the
# paper builds the method: (10)–(11) define the combined W1 and W2 proximal of $D_f$ as the right side, (12) is its
# computable form (the left side, with $D^L$ through its dual (7)), and (13) states the result,
# $\rho_T=\operatorname{prox}^{W_2}_{(T/\lambda)D^L}(\rho_0)$.
#
# The terminal cost is itself a proximal. The Lipschitz-regularised divergence (6) is an infimal convolution, the
# W1 analogue of the Moreau envelope: $D^L(\rho\|\pi)=\inf_\eta\{\mathrm{KL}(\eta\|\pi)+L\,W_1(\rho,\eta)\}$, and the
# minimising $\eta$ ((14)–(16): $\tilde\rho\propto e^{\varphi^\ast}\pi$ for KL) is its proximal point. So the method
# composes the two, which is the paper's (15): $\tilde\rho=\operatorname{prox}^{W_1}\big(\operatorname{prox}^{W_2}
# (\rho_0)\big)$, a W1 proximal point of the W2 proximal point, i.e. a W2 proximal step of the W1 proximal of KL. The W1 part makes the cost finite and smooth between
# mutually singular measures (notebook 02); the W2 part makes the step well-posed (sections 5–6 below).
#
# **Hopf–Lax: each particle takes a proximal step.** With $\varphi^\ast$ fixed, the HJ equation of (20) with terminal
# condition (21) is solved by the Hopf–Lax formula
# $$U(x,0)=\inf_y\Big\{\varphi^\ast(y)+\frac{\lambda|x-y|^2}{2T}\Big\},$$
# the Moreau envelope of $\varphi^\ast$ with step $T/\lambda$, and the straight characteristics (22)–(29) end at its
# minimiser: $x_T=\operatorname{prox}_{(T/\lambda)\varphi^\ast}(x_0)$. We check both for
# $\varphi^\ast(y)=\frac a2|y|^2$, where $U(x,t)=\frac{a\lambda|x|^2}{2(\lambda+a(T-t))}$ (method.md §9), by integrating
# the flow $v=-\nabla U/\lambda$ with the package's Euler loop and by minimising over a grid.

# %%
lam_hl, T_hl, a_hl = 0.5, 1.0, 0.8


def hopf_lax(x: torch.Tensor, t: float | torch.Tensor, a: float = a_hl) -> torch.Tensor:
    """U(x, t) = a lam |x|^2 / (2 (lam + a (T - t))), the solution of the HJ equation with
    U(., T) = a|x|^2/2."""
    t = torch.as_tensor(t, dtype=x.dtype)
    return a * lam_hl * x.flatten(1).pow(2).sum(1) / (2 * (lam_hl + a * (T_hl - t)))


x0_line = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
flow_end = euler_flow(hopf_lax, x0_line, T_hl, T_hl / 7, lam_hl).final
objective = a_hl * ys[None, :] ** 2 / 2 + lam_hl * (x0_line - ys[None, :]) ** 2 / (2 * T_hl)
prox_end, envelope = ys[objective.argmin(dim=1)], objective.min(dim=1).values
print(f"max |x_T(flow) - prox(x_0)| = {(flow_end[:, 0] - prox_end).abs().max():.1e}; "
      f"max |U(x,0) - Moreau envelope| = {(hopf_lax(x0_line, 0.0) - envelope).abs().max():.1e}")
assert (flow_end[:, 0] - prox_end).abs().max() < 1e-3
assert (hopf_lax(x0_line, 0.0) - envelope).abs().max() < 1e-6

# %% [markdown]
# ## 3 · Two Gaussians on a line: D^L in closed form
#
# Take $P=\mathcal N(s,\sigma^2)$ and $\pi=\mathcal N(m,\sigma^2)$. Among linear discriminators $\varphi(x)=cx$ with
# $|c|\le L$ the DV objective (7) is $c(s-m)-c^2\sigma^2/2$, maximal at $c^\ast=\mathrm{clip}((s-m)/\sigma^2,\pm L)$; this
# bounds $D^L$ from below. Taking $\eta$ among the translates $\mathcal N(u,\sigma^2)$ in (6) bounds it from above by
# $\inf_u\{\frac{(u-m)^2}{2\sigma^2}+L|s-u|\}$. Both bounds are the same Huber function of $s-m$, so
# $$D^L_{\rm KL}\big(\mathcal N(s,\sigma^2)\,\|\,\mathcal N(m,\sigma^2)\big)=
# \begin{cases}\frac{(s-m)^2}{2\sigma^2}&|s-m|\le L\sigma^2\\[2pt] L|s-m|-\frac{L^2\sigma^2}{2}&\text{else,}\end{cases}$$
# quadratic (KL) near the target, linear ($L\,W_1$) far from it: the W1 proximal caps the slope at $L$. We check the
# formula against the package's DV estimator (40) maximised over $c$ on samples.

# %%
sigma, m_target = 1.0, 2.0


def d_lipschitz_kl(s: torch.Tensor | float, L: float, m: float = m_target,
                   sig: float = sigma) -> torch.Tensor:
    """D^L_KL(N(s, sig^2) || N(m, sig^2)): Huber in s - m with threshold L sig^2."""
    d = torch.as_tensor(s, dtype=torch.float64) - m
    return torch.where(d.abs() <= L * sig**2, d**2 / (2 * sig**2), L * d.abs() - L**2 * sig**2 / 2)


z_p = torch.randn(n_mc, generator=gen, dtype=torch.float64)
z_q = torch.randn(n_mc, generator=gen, dtype=torch.float64)
cs = torch.linspace(-1, 1, 201, dtype=torch.float64)
for s_test, L_test in ((1.5, 1.0), (-1.0, 1.0), (0.0, 0.5)):
    x_p, y_q = s_test + sigma * z_p, m_target + sigma * z_q
    dv = torch.stack([lipschitz_kl_dual(c * L_test * x_p, c * L_test * y_q) for c in cs])
    print(f"s = {s_test:+.1f}, L = {L_test}: max over |c| <= L of the DV estimate {dv.max():.4f}, "
          f"closed form {d_lipschitz_kl(s_test, L_test):.4f}")
    assert abs(dv.max() - d_lipschitz_kl(s_test, L_test)) < 0.03

# %% [markdown]
# ## 4 · A W1 ⊕ W2 problem solved by hand, and a trained flow against it
#
# Now the full problem (19) (the paper's (10)–(12) in dynamic form) with $\rho_0=\mathcal N(0,\sigma^2)$ and
# $\pi=\mathcal N(m,\sigma^2)$, $m>0$. The optimal flow is a translation by some $s$ (both terms prefer keeping the
# variance; exercise 2 proves it for every $\rho$), so (19) becomes
# $\min_s\{\frac{\lambda s^2}{2T}+D^L(s)\}$. Setting the derivative to zero in each branch of the Huber function:
# $$s^\ast=\min\Big(\frac{m}{1+\lambda\sigma^2/T},\ \frac{TL}{\lambda}\Big).$$
# The first branch is the KL regime; the second is a **speed limit**: the particles move at speed $|v|=|\nabla\varphi^\ast|
# /\lambda\le L/\lambda$ for the time $T$. Either way $s^\ast<m$: **the proximal biases the answer**, $\rho_T^\ast
# =\mathcal N(s^\ast,\sigma^2)\neq\pi$, by an amount the student can compute. This $\rho_T^\ast$ is the W2 proximal point
# of (13).
#
# **The discriminator does not become flat.** The optimum ends at the proximal point $\rho_T^\ast\neq\pi$, so the
# terminal condition (21) is the optimal discriminator between $\rho_T^\ast$ and $\pi$: the linear $\varphi^\ast=c^\ast x$ of
# section 3 with $c^\ast=\mathrm{clip}((s^\ast-m)/\sigma^2,\pm L)$. In both branches $|c^\ast|=\lambda s^\ast/T$: with
# constant velocity $-\nabla\varphi^\ast/\lambda$ for the time $T$, **$|\nabla\varphi^\ast|=\lambda|x_T-x_0|/T$**, not 0. A
# flow that reached $\pi$ would have $\varphi^\ast$ flat and could not have moved. (Notebooks 01, 05 and 07 refer to
# this section for the bias of the W2 proximal.)
#
# We check $s^\ast$ by minimising over a grid and $|c^\ast|=\lambda s^\ast/T$ by maximising the DV estimate at
# $\rho_T^\ast$ as in section 3, then train two 1-D flows (one in each regime) and compare their mean displacement with
# $s^\ast$. The flows use the paper's algorithm, the preset `lecture_toy_paper` (= `FlowConfig()`): the course's
# straight recipe would add the velocity-change penalty (notebook 08), which is not part of (19).

# %%
lam_1d, T_1d = 0.5, 1.0
# L, gradient-penalty weight
regimes = {"KL regime (L = 5)": (5.0, 1.0), "speed limit (L = 0.5)": (0.5, 10.0)}
s_grid = torch.linspace(-1, 4, 50_001, dtype=torch.float64)
data_1d = m_target + sigma * torch.randn(20_000, 1, generator=gen)
cs_fine = torch.linspace(-1, 1, 401, dtype=torch.float64)
rows_1d = {}
for name, (L_1d, gamma_1d) in regimes.items():
    s_star = min(m_target / (1 + lam_1d * sigma**2 / T_1d), T_1d * L_1d / lam_1d)
    objective_1d = lam_1d * s_grid**2 / (2 * T_1d) + d_lipschitz_kl(s_grid, L_1d)
    s_numeric = s_grid[objective_1d.argmin()].item()
    assert abs(s_numeric - s_star) < 1e-3, (s_numeric, s_star)
    # the optimal discriminator between rho_T^* = N(s^*, sigma^2) and pi, by maximising the DV
    # estimate over phi = c x
    x_p, y_q = s_star + sigma * z_p, m_target + sigma * z_q
    dv = torch.stack([lipschitz_kl_dual(c * L_1d * x_p, c * L_1d * y_q) for c in cs_fine])
    c_opt = (cs_fine[dv.argmax()] * L_1d).item()
    # |grad phi*| = lam s*/T
    assert abs(abs(c_opt) - lam_1d * s_star / T_1d) < 0.05, (c_opt, lam_1d * s_star / T_1d)
    cfg = FlowConfig.preset("lecture_toy_paper", variant="w1w2", lam=lam_1d, T=T_1d, h=0.2, L=L_1d,
                            gp_weight=gamma_1d, n_iters=n_iters_1d, seed=seed)
    run = train(cfg, data_1d, progress=True)
    x0_1d = run.prior(4000, seed=seed + 1)
    moved = run.sample(4000, seed=seed + 1) - x0_1d
    rows_1d[name] = dict(s_star=s_star, c_opt=c_opt, mean=moved.mean().item(),
                         spread=moved.std().item(), time=run.wall_time)
print(f"{'':24s} {'s* (closed form)':>16s} {'c* (DV max)':>11s} {'lam s*/T':>9s} "
      f"{'mean x_T - x_0':>15s} {'std':>6s} {'train s':>8s}   (target mean m = {m_target})")
for name, r in rows_1d.items():
    print(f"{name:24s} {r['s_star']:16.3f} {r['c_opt']:11.3f} {lam_1d * r['s_star'] / T_1d:9.3f} "
          f"{r['mean']:15.3f} {r['spread']:6.3f} {r['time']:8.1f}")
if not SMOKE:  # a trained flow finds the biased optimum, not the data
    for r in rows_1d.values():
        assert abs(r["mean"] - r["s_star"]) < 0.1, r
        assert r["s_star"] < m_target - 0.5 and r["spread"] < 0.1, r

# %% [markdown]
# ## 5 · Well-posed: what Theorem 4.2 proves
#
# A problem is **well-posed** (Hadamard) when a solution exists, is unique and depends continuously on the data. The
# paper proves one of the three, for one setting:
#
# * **Lemma 4.1 (monotonicity of (21)).** If $\varphi_i^\ast$ is the optimal discriminator for $\rho_i$ ($i=1,2$),
#   then $\int(\varphi_1^\ast-\varphi_2^\ast)\,d(\rho_1-\rho_2)\ge0$. Proof: $\varphi_1^\ast$ is optimal for $\rho_1$, so
#   $\mathbb E_{\rho_1}\varphi_1^\ast-\Lambda[\varphi_1^\ast]\ge\mathbb E_{\rho_1}\varphi_2^\ast-\Lambda[\varphi_2^\ast]$;
#   add the same inequality with 1 and 2 swapped.
# * **Theorem 4.2 (uniqueness).** On the torus, two *classical* (smooth) solutions $(U_1,\rho_1)$, $(U_2,\rho_2)$ of the
#   system (20) with terminal condition (21) coincide. Lasry–Lions: with $\bar U=U_1-U_2$, $\bar\rho=\rho_1-\rho_2$, the HJ
#   and continuity equations give
#   $$\frac{d}{dt}\int\bar U\,\bar\rho\,dx=-\int(\rho_1+\rho_2)\frac{|\nabla U_1-\nabla U_2|^2}{2\lambda}\,dx\le0 .$$
#   At $t=0$, $\bar\rho=0$; at $t=T$ the left side is $\int(\varphi_1^\ast-\varphi_2^\ast)\,d\bar\rho\ge0$ by Lemma 4.1.
#   A non-increasing function that starts at 0 and ends $\ge0$ is constant, so $\nabla U_1=\nabla U_2$ wherever the
#   particles are: same velocity, same $\rho$, same terminal data, same $U$.
#
# What it does not prove: existence, uniqueness on $\mathbb R^d$, uniqueness among non-smooth solutions (Remark 4.1), or
# anything about the trained networks (a ReLU CNN is not $C^2$). "Well-posed" in the title is this uniqueness, plus the
# finiteness of $D^L$ for singular measures (notebook 02). Without the kinetic term there is no HJ equation and no
# such argument: every flow that ends at the optimal $\rho_T$ is optimal.
#
# Both steps of the argument can be checked on closed forms. **Lemma 4.1** on the Gaussians of section 3: for
# translates, $\int cx\,d(\rho_1-\rho_2)=c(s_1-s_2)$, so the lemma says $(c^\ast(s_1)-c^\ast(s_2))(s_1-s_2)\ge0$, i.e.
# $c^\ast$ is non-decreasing. We do not assume the closed form: as in section 3 we find $c^\ast(s)$ by maximising the DV
# estimate (40) over $|c|\le L$ on samples (the same samples of $\pi$ for every $s$: one $\Lambda$, as in the proof),
# evaluate the pairing $\int(\varphi_1^\ast-\varphi_2^\ast)\,d(\rho_1-\rho_2)$ on the samples, and compare $c^\ast$ with
# $\mathrm{clip}((s-m)/\sigma^2,\pm L)$. **The Lasry–Lions identity** on two Hopf–Lax solutions ($\varphi_i=\frac{a_i}2|x|^2$): we
# integrate both flows with the Euler loop and compare the change of $\int\bar U\bar\rho$ with the integrated dissipation.

# %%
s_pairs = torch.linspace(-1, 5, 13, dtype=torch.float64)
cs_lemma = torch.linspace(-1, 1, 101, dtype=torch.float64)
y_q = m_target + sigma * z_q  # one sample of pi for every s
for L_test in (0.5, 1.0, 1.5):
    c_star = []
    # c*(s): maximise the DV estimate over phi = c x, |c| <= L (section 3)
    for s_test in s_pairs.tolist():
        x_p = s_test + sigma * z_p
        dv = torch.stack([lipschitz_kl_dual(c * L_test * x_p, c * L_test * y_q) for c in cs_lemma])
        c_star.append(L_test * cs_lemma[dv.argmax()])
    c_star = torch.stack(c_star)
    # the pairing int (phi_1 - phi_2) d(rho_1 - rho_2) on the samples, phi_i = c*(s_i) x
    mean_p = s_pairs + sigma * z_p.mean()
    pairing = (c_star[:, None] - c_star[None, :]) * (mean_p[:, None] - mean_p[None, :])
    closed = ((s_pairs - m_target) / sigma**2).clamp(-L_test, L_test)
    print(f"L = {L_test}: min pairing {pairing.min():.1e}, max |c*(DV) - clip((s - m) / sigma^2)| "
          f"{(c_star - closed).abs().max():.3f}")
    assert pairing.min() >= -1e-12  # Lemma 4.1
    # the tolerance: Monte-Carlo error (the tilted mean of e^{c y}) and the c grid
    assert (c_star - closed).abs().max() < 0.1
print("Lemma 4.1 holds on every pair of translates (L = 0.5, 1, 1.5)")

a1, a2, n_steps_ll = 0.8, -0.3, 400  # two terminal data (a2 > -lam/T: no crossing)
x0_ll = torch.randn(n_mc, 1, generator=gen, dtype=torch.float64)
h_ll = T_hl / n_steps_ll
p1 = euler_flow(lambda x, t: hopf_lax(x, t, a1), x0_ll, T_hl, h_ll, lam_hl, keep_path=True).states
p2 = euler_flow(lambda x, t: hopf_lax(x, t, a2), x0_ll, T_hl, h_ll, lam_hl, keep_path=True).states
times = torch.arange(n_steps_ll + 1, dtype=torch.float64) * (T_hl / n_steps_ll)


def u_bar(x: torch.Tensor, t: float) -> torch.Tensor:
    return hopf_lax(x, t, a1) - hopf_lax(x, t, a2)


def grad_u(x: torch.Tensor, t: float, a: float) -> torch.Tensor:  # grad_x of hopf_lax, by hand
    return a * lam_hl * x[:, 0] / (lam_hl + a * (T_hl - t))


pairing_t = torch.stack([u_bar(p1[n], t).mean() - u_bar(p2[n], t).mean()
                         for n, t in enumerate(times.tolist())])
dissipation = torch.stack([((grad_u(p1[n], t, a1) - grad_u(p1[n], t, a2)) ** 2).mean()
                           + ((grad_u(p2[n], t, a1) - grad_u(p2[n], t, a2)) ** 2).mean()
                           for n, t in enumerate(times.tolist())]) / (2 * lam_hl)
integrated = torch.trapezoid(dissipation, times)
print(f"int U_bar rho_bar: {pairing_t[0]:.2e} at t = 0, {pairing_t[-1]:.4f} at t = T; "
      f"-int_0^T dissipation dt = {-integrated:.4f}")
assert abs(pairing_t[0]) < 1e-12
assert abs(pairing_t[-1] - pairing_t[0] + integrated) < 0.01 * integrated
assert (pairing_t[1:] - pairing_t[:-1]).max() <= 1e-9  # non-increasing in t, as the identity says
# these two terminal data are not monotone in the sense of Lemma 4.1 (see below)
assert pairing_t[-1] < 0

# %% [markdown]
# These two quadratic terminal data do not come from one divergence, so Lemma 4.1 need not hold for them: here
# $\int\bar U\bar\rho$ ends negative, and the two solutions differ, as they may. With the terminal condition (21) of
# one divergence the end value would be $\ge0$ and the same identity would force the two to coincide.
#
# ## 6 · Uniqueness, empirically
#
# Theorem 4.2 says the optimal flow of W1 ⊕ W2 is unique; without the kinetic energy ("w1", (48)) every flow that
# reaches the optimal $\rho_T$ is optimal. We train both from several seeds, then a narrower network and a finer
# step, on 8 Gaussians in $\mathbb R^2$, with the paper's algorithm (preset `lecture_toy_paper` = `FlowConfig()`):
# the course's options (notebook 08) act on W1 ⊕ W2 only, so with them on the comparison would credit the W2
# proximal with what they do. Both variants then differ by the kinetic energy $\lambda\,\mathrm{KE}_h$ alone. We push
# the **same** prior samples through every flow. Well-posedness should show as maps $x_0\mapsto x_T$ that agree with
# W1 ⊕ W2 and disagree without it. The disagreement is the mean distance between the end points of two flows, relative
# to the mean distance travelled, over all pairs of runs.

# %%
data_2d = sample_toy("8gaussians", 20_000, dim=2, seed=seed)
x0_2d = torch.randn(1000, 2, generator=gen)
settings = [dict(seed=seed + k) for k in range(max(n_runs_2d - 2, 2))]
settings += [dict(seed=seed + 10, potential_width=32), dict(seed=seed + 11, h=0.1)]
settings = settings[:n_runs_2d]
maps, disagreement, straightness = {}, {}, {}
for variant in ("w1w2", "w1"):
    maps[variant], straightness[variant] = [], []
    for kw in settings:
        cfg = FlowConfig.preset("lecture_toy_paper", variant=variant, lam=0.5, n_iters=n_iters_2d,
                                **kw)
        r = train(cfg, data_2d, progress=True)
        path = euler_flow(r.potential, x0_2d, cfg.T, cfg.h, cfg.lam, keep_path=True)
        maps[variant].append(path.final)
        ke_ratio = (diagnostics.path_kinetic_energy(path.states, cfg.h)
                    / diagnostics.chord_kinetic_energy(path.states, cfg.T))
        straightness[variant].append(ke_ratio.item())
    travel = torch.stack([(x - x0_2d).norm(dim=1).mean() for x in maps[variant]]).mean()
    pairs = [(a - b).norm(dim=1).mean() / travel
             for a, b in itertools.combinations(maps[variant], 2)]
    disagreement[variant] = torch.stack(pairs)
    print(f"{variant:5s}: disagreement of the maps over {len(pairs)} pairs of runs: "
          f"mean {disagreement[variant].mean():.3f}, max {disagreement[variant].max():.3f} "
          f"(relative to the distance travelled); KE_h/chord per run "
          + ", ".join(f"{k:.2f}" for k in straightness[variant]))

axes = plotting.small_multiples(2, size=4.0)
for ax, variant in zip(axes, maps):
    for x_T, colour in zip(maps[variant][:2], ("C0", "C3")):
        ax.scatter(x_T[:200, 0], x_T[:200, 1], s=4, c=colour)
    ax.plot(torch.stack([maps[variant][0][:200, 0], maps[variant][1][:200, 0]]),
            torch.stack([maps[variant][0][:200, 1], maps[variant][1][:200, 1]]), c="0.6", lw=0.5)
    ax.set(title=f'"{variant}": where two runs send the same $x_0$', xlabel="$x_1$", ylabel="$x_2$",
           aspect="equal")
plt.show()
ratio = (disagreement["w1w2"].mean() / disagreement["w1"].mean()).item()
if ratio < 0.7:
    verdict = (f"The W1 ⊕ W2 runs agree more: their maps differ by "
               f"{disagreement['w1w2'].mean():.2f} of the distance travelled, the W1-only runs by "
               f"{disagreement['w1'].mean():.2f}.")
else:
    verdict = ("**At this budget uniqueness does not show in the maps**: the W1 ⊕ W2 runs "
               f"differ by {disagreement['w1w2'].mean():.2f} of the distance travelled, the "
               f"W1-only runs by {disagreement['w1'].mean():.2f} (ratio {ratio:.2f}). A unique "
               f"optimum does not make short runs agree: {n_iters_2d} iterations leave both far "
               "from it, and the points near a boundary between two modes go to either mode in "
               "either variant.")
display(Markdown(verdict + " What does differ is the paths: KE$_h$/chord is "
                 f"{min(straightness['w1w2']):.2f}–{max(straightness['w1w2']):.2f} with "
                 f"W1 ⊕ W2 and {min(straightness['w1']):.2f}–{max(straightness['w1']):.2f} "
                 "without the kinetic energy, which leaves the paths undetermined."))
if not SMOKE:  # the kinetic energy selects straighter paths (1 = straight)
    assert sum(straightness["w1w2"]) < sum(straightness["w1"]), straightness

# %% [markdown]
# Grey segments join the end points of the same $x_0$ under two runs. Where they are long, two runs send the same
# prior sample to different places. The theorem is about the optimum; a trained network is only near it, so the
# measurement above tests how near. (In 1-D the map test would say nothing: a flow map on a line is monotone, and only
# one monotone map pushes one law onto another, so even W1-only runs agree there; only their paths can differ.)
#
# ## 7 · Where the theory stops: characteristics that cross
#
# The characteristics (22)–(29) are straight lines $x(t)=y+\frac{T-t}\lambda\nabla\varphi^\ast(y)$, labelled by their end
# point $y=x(T)$. They stay apart as long as $y\mapsto x(t)$ is one-to-one. The W1 proximal makes $\varphi^\ast$
# $L$-Lipschitz, which bounds the speed, but it says nothing about curvature: a Lipschitz terminal cost may be
# **concave**, and where it is, the characteristics run towards each other. Take the smoothed $-L|x|$,
# $$\varphi^\ast(y)=-L\sqrt{y^2+\varepsilon^2},\qquad|\nabla\varphi^\ast|<L,$$
# an admissible discriminator that pushes mass away from $0$ (e.g. from the gap between two modes). Then
# $\partial x(t)/\partial y=1-\frac{(T-t)L}{\lambda}\frac{\varepsilon^2}{(y^2+\varepsilon^2)^{3/2}}$ first vanishes at $y=0$, at
# $$t^\ast=T-\frac{\lambda\varepsilon}{L},$$
# which lies in $(0,T)$ whenever $\lambda\varepsilon<TL$. Before $t^\ast$ several characteristics pass through the same
# points: the Hopf–Lax formula picks one of them for each $x$, and at $x=0$ it has two, $y=\pm y^\ast$ with
# $\sqrt{y^{\ast2}+\varepsilon^2}=TL/\lambda$. So $U(\cdot,0)$ has a kink at $0$ and the optimal flow tears the prior in two:
# particles just left of $0$ go to $-y^\ast$, those just right to $+y^\ast$. No classical solution exists on $[0,T]$
# (Remark 4.1), and Theorem 4.2 has nothing to say. We check $t^\ast$ on the characteristics and the jump on the
# Hopf–Lax minimisers (a grid again). (The concave quadratic of exercise 4 is worse, $U$ blows up, but it is not
# Lipschitz, so the W1 proximal excludes it; the point here is that it does not exclude concavity.)

# %%
lam_c, T_c, L_c, eps_c = 0.5, 1.0, 1.0, 0.2


def phi_concave(y: torch.Tensor) -> torch.Tensor:
    """A smoothed -L|y|: L-Lipschitz and concave."""
    return -L_c * (y**2 + eps_c**2).sqrt()


# end points x(T) of the characteristics
y_end = torch.linspace(-3, 3, 6001, dtype=torch.float64, requires_grad=True)
(grad_phi,) = torch.autograd.grad(phi_concave(y_end).sum(), y_end)
y_end = y_end.detach()
t_line = torch.linspace(0, T_c, 1001, dtype=torch.float64)
# the times t at which two characteristics have crossed
folded = [t for t in t_line.tolist() if (y_end + (T_c - t) / lam_c * grad_phi).diff().min() <= 0]
t_star_c = T_c - lam_c * eps_c / L_c
print(f"characteristics cross for t <= {max(folded):.3f}; "
      f"closed form t* = T - lam eps / L = {t_star_c:.3f}")
assert abs(max(folded) - t_star_c) < 2e-3

x0_c = torch.linspace(-0.5, 0.5, 100, dtype=torch.float64)  # no grid point at 0
hopf_lax_c = phi_concave(ys)[None, :] + lam_c * (x0_c[:, None] - ys[None, :]) ** 2 / (2 * T_c)
end_c = ys[hopf_lax_c.argmin(dim=1)]
y_star_c = ((T_c * L_c / lam_c) ** 2 - eps_c**2) ** 0.5
print(f"Hopf-Lax end points: up to {end_c[x0_c < 0].max():.3f} from x_0 < 0, "
      f"from {end_c[x0_c > 0].min():.3f} for x_0 > 0; closed form of the jump: +-{y_star_c:.3f}")
assert end_c[x0_c < 0].max() < -y_star_c + 1e-3 and end_c[x0_c > 0].min() > y_star_c - 1e-3

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for y in torch.linspace(-2.5, 2.5, 41).tolist():
    g = -L_c * y / (y**2 + eps_c**2) ** 0.5
    ax.plot([0, T_c], [y + T_c / lam_c * g, y], c="C3" if abs(y) < y_star_c else "0.6", lw=0.7)
ax.axvline(t_star_c, c="k", ls=":", lw=1)
ax.set(xlabel="$t$", ylabel="$x(t)$",
       title=r"characteristics of $\varphi^\ast=-L\sqrt{y^2+\varepsilon^2}$ ($t^\ast$ dotted)")
plt.show()

# %%
print(f"notebook run time: {time.perf_counter() - t_start:.0f} s (smoke mode: {SMOKE})")

# %% [markdown]
# ## Exercises
#
# 1. **(pen and paper)** Derive the soft-thresholding prox of $f(y)=|y|$ from the optimality condition
#    $0\in\partial f(y)+(y-x)/\tau$, and the Huber envelope from it.
# 2. **(pen and paper)** In section 4, show that the optimal flow is a translation: among Gaussians
#    $\mathcal N(\mu,\tau^2)$ both $W_2^2(\rho_0,\cdot)=\mu^2+(\tau-\sigma)^2$ and the KL term are minimised in $\tau$ at
#    $\tau=\sigma$.
# 3. Change `m_target` to 4 and `lam_1d` to 1: which regime is each $L$ in now? Predict $s^\ast$, then rerun section 4.
# 4. **A concave cost without a Lipschitz bound.** For $\varphi^\ast=\frac a2|x|^2$ the characteristics are
#    $x(t)=x(T)\big(1+\frac{a(T-t)}\lambda\big)$. For $\lambda=0.5$, $T=1$ and $a=-0.8$, compute the time $t^\ast$ at which
#    they all meet, and evaluate `hopf_lax` with `a=-0.8` at $t$ just below and above $t^\ast$. Then integrate the flow
#    from $t=0$ with `euler_flow`: what happens to the particles, why is the "optimal" flow meaningless here, and why is
#    this $\varphi^\ast$ not a terminal condition the W1 proximal can produce (compare section 7)?
# 5. In section 6, add a run with `lam=2.0` to the W1 ⊕ W2 list. Does it agree with the others? Should it?
#
# Solutions: `notebooks/solutions/04_proximal_and_well_posed_solutions.md`.

# %%
print(elapsed())

"""Mutation tests: break the package's math on purpose and check that the notebooks' check cells notice.

Each case runs one notebook in smoke mode through papermill with an extra first code cell that monkeypatches one
formula of ``proxflow_edu`` inside the notebook's kernel, before the notebook's own imports. Modules import functions
by name (``from .objectives import kinetic_energy``), so the patch replaces the name in the defining module *and* in
every module that imported it (the notebook's own ``from proxflow_edu.objectives import ...`` then picks up the
mutant). The test passes only if the run fails with an ``AssertionError`` in the expected check cell: a crash
elsewhere, or a run that passes, means the check would not catch that mistake.

Mutations and the check cells they must trip (smoke mode):

* ``kinetic_energy`` without its 1/2: 01's closed-form Euler-step check, 03's Hopf-Lax "Euler is exact" check;
* ``hj_residual_pointwise`` with the authors' sign (+|grad U|^2/(2 lambda)): 03's Hopf-Lax residual check;
* ``gradient_penalty`` two-sided, (|g|^2 - L^2)^2 or |.| instead of relu: 02's linear-phi penalty check;
* ``potential_step`` without lambda KE_h in its loss (KE measured but detached, or replaced by 0): 06's check
  of section 5 (W1+W2 against W1 only at the same lambda); with 0, also 01's hand-made iteration check;
* ``velocity_change`` without its 1/2, ``hj_penalty`` uncentred: 08's closed-form check of the three penalties;
* ``lipschitz_kl_dual`` with P and Q swapped (the same value for two translates, the discriminator of the other
  direction): 04's check of Lemma 4.1 on numerically optimal discriminators (sections 3 and 4 still pass).

A mutation may also replace a line of the notebook's own source (``replace``: the line, its mutant), for the math a
notebook states itself: 04's proximal point of a y^2/2 written as the prox of a y^2 fails the brute-force minimisation
of the proximal objective.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"


@dataclass(frozen=True)
class Mutation:
    name: str
    patch: str = ""  # the body of a function run in the kernel before the notebook's first cell
    replace: tuple[str, str] | None = None  # or: a piece of the notebook's source (in exactly one cell) and its mutant


KE_WITHOUT_HALF = Mutation("kinetic_energy without the 1/2", """
    import proxflow_edu, proxflow_edu.algorithm as algorithm, proxflow_edu.objectives as objectives
    original = objectives.kinetic_energy

    def mutant(velocities, h):
        return 2 * original(velocities, h)

    for module in (objectives, algorithm, proxflow_edu):
        module.kinetic_energy = mutant
""")
HJ_CODE_SIGN = Mutation("hj_residual_pointwise with the code's sign", """
    import proxflow_edu.diagnostics as diagnostics
    from proxflow_edu.nets import space_time_gradient

    def mutant(potential, x, t, lam, create_graph=False):  # d_t U + |grad U|^2 / (2 lambda): the authors' sign (§6 c)
        grad_x, d_t = space_time_gradient(potential, x.detach(), t, create_graph)
        return d_t + grad_x.flatten(1).pow(2).sum(dim=1) / (2 * lam)

    diagnostics.hj_residual_pointwise = mutant  # hj_residual looks it up in diagnostics at call time
""")
GP_SQUARED = Mutation("gradient_penalty two-sided, squared", """
    import proxflow_edu, proxflow_edu.algorithm as algorithm, proxflow_edu.objectives as objectives

    def mutant(grad_phi, L):
        return (grad_phi.flatten(1).pow(2).sum(dim=1) - L**2).pow(2).mean()

    for module in (objectives, algorithm, proxflow_edu):
        module.gradient_penalty = mutant
""")
GP_ABS = Mutation("gradient_penalty two-sided, absolute value", """
    import proxflow_edu, proxflow_edu.algorithm as algorithm, proxflow_edu.objectives as objectives

    def mutant(grad_phi, L):
        return (grad_phi.flatten(1).pow(2).sum(dim=1) - L**2).abs().mean()

    for module in (objectives, algorithm, proxflow_edu):
        module.gradient_penalty = mutant
""")
KE_DETACHED_IN_LOSS = Mutation("potential_step: lambda KE_h detached (measured, no gradient)", """
    import proxflow_edu.algorithm as algorithm
    original = algorithm.kinetic_energy

    def mutant(velocities, h):
        return original(velocities, h).detach()

    algorithm.kinetic_energy = mutant  # only the loss of Algorithm 2; the notebook's own kinetic_energy is intact
""")
KE_ZERO_IN_LOSS = Mutation("potential_step: lambda KE_h replaced by 0", """
    import proxflow_edu.algorithm as algorithm
    original = algorithm.kinetic_energy

    def mutant(velocities, h):
        return 0 * original(velocities, h)

    algorithm.kinetic_energy = mutant
""")
VELOCITY_CHANGE_WITHOUT_HALF = Mutation("velocity_change without the 1/2", """
    import proxflow_edu.wellposed as wellposed
    original = wellposed.velocity_change

    def mutant(velocities):
        return 2 * original(velocities)

    wellposed.velocity_change = mutant
""")
HJ_PENALTY_UNCENTRED = Mutation("hj_penalty without centring", """
    import proxflow_edu.wellposed as wellposed

    def mutant(potential, x, t, lam, T, create_graph=True):
        return T * wellposed.hj_residual_pointwise(potential, x, t, lam, create_graph).pow(2).mean()

    wellposed.hj_penalty = mutant
""")
DV_SWAPPED = Mutation("lipschitz_kl_dual with P and Q swapped", """
    import proxflow_edu.objectives as objectives
    original = objectives.lipschitz_kl_dual

    def mutant(phi_generated, phi_target):  # E_Q phi - log E_P e^phi: the divergence of the other direction
        return original(phi_target, phi_generated)

    objectives.lipschitz_kl_dual = mutant  # the notebook's estimator; training (algorithm) keeps the original
""")
PROX_OF_A_Y2 = Mutation("prox of a y^2 / 2 written as the prox of a y^2",
                        replace=("implicit = 1 - tau_q * a, 1 / (1 + tau_q * a)",
                                 "implicit = 1 - tau_q * a, 1 / (1 + 2 * tau_q * a)"))

# (mutation, notebook, a line of the check cell that must raise AssertionError)
CASES = [
    (KE_WITHOUT_HALF, "01_w2_proximal_straight_lines", "x1_expected = (1 - h_q * c_q / lam_q) * x0_q"),
    (KE_WITHOUT_HALF, "03_mfg_optimality", 'print("Hopf-Lax checks passed")'),
    (HJ_CODE_SIGN, "03_mfg_optimality", "r_true = diagnostics.hj_residual_pointwise(U_true, x_hl, t, lam_hl)"),
    (GP_SQUARED, "02_w1_proximal_singular_measures", "# 3. Gradient penalty of a linear phi"),
    (GP_ABS, "02_w1_proximal_singular_measures", "# 3. Gradient penalty of a linear phi"),
    (KE_DETACHED_IN_LOSS, "06_high_dim_manifolds", "assert a[\"ke\"] < 0.8 * b[\"ke\"]"),
    (KE_ZERO_IN_LOSS, "01_w2_proximal_straight_lines",
     "u_step = potential_step(potential, discriminator, opt_u, x0, cfg)"),
    (KE_ZERO_IN_LOSS, "06_high_dim_manifolds", "assert a[\"ke\"] < 0.8 * b[\"ke\"]"),
    (VELOCITY_CHANGE_WITHOUT_HALF, "08_straight_flows_in_practice",
     'print("closed-form checks of the three penalties passed")'),
    (HJ_PENALTY_UNCENTRED, "08_straight_flows_in_practice",
     'print("closed-form checks of the three penalties passed")'),
    (DV_SWAPPED, "04_proximal_and_well_posed", "assert pairing.min() >= -1e-12  # Lemma 4.1"),
    (PROX_OF_A_Y2, "04_proximal_and_well_posed", "assert (prox_q - implicit * xs).abs().max() < 1e-4"),
]


def _with_mutation(notebook: nbformat.NotebookNode, mutation: Mutation) -> nbformat.NotebookNode:
    if mutation.replace is not None:
        original, mutant = mutation.replace
        hits = [c for c in notebook.cells if c.cell_type == "code" and original in c.source]
        assert len(hits) == 1 and hits[0].source.count(original) == 1, f"{original!r} is not in exactly one place"
        hits[0].source = hits[0].source.replace(original, mutant)
    if mutation.patch:
        body = textwrap.indent(textwrap.dedent(mutation.patch).strip(), "    ")
        source = f"# MUTATION: {mutation.name}\ndef _mutate():\n{body}\n\n\n_mutate()\ndel _mutate"
        notebook.cells.insert(0, nbformat.v4.new_code_cell(source))
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("mutation, name, check_line", CASES,
                         ids=[f"{m.name} -> {n[:2]}" for m, n, _ in CASES])
def test_a_mutation_fails_a_check_cell(mutation: Mutation, name: str, check_line: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXFLOW_SMOKE", "1")
    source = NOTEBOOK_DIR / f"{name}.py"
    cells = [c.source for c in jupytext.read(source).cells if c.cell_type == "code"]
    assert sum(check_line in c for c in cells) == 1, f"{name}: the check line {check_line!r} is not in exactly one cell"
    src = tmp_path / f"{name}.mutated.ipynb"
    nbformat.write(_with_mutation(jupytext.read(source), mutation), src)
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(str(src), str(tmp_path / f"{name}.out.ipynb"), kernel_name="python3",
                                   cwd=str(NOTEBOOK_DIR), progress_bar=False, execution_timeout=300)
    err = info.value
    assert err.ename == "AssertionError", (
        f"{name} with '{mutation.name}': cell {err.cell_index} raised {err.ename}: {err.evalue} (not a check)")
    assert check_line in err.source, (
        f"{name} with '{mutation.name}': the assertion that fired is in another cell:\n{err.source[:400]}")

"""The shipped models against their reference methods, in the physical limit.

* Water: harmonic frequencies, IR intensities, Raman activities and depolarization
  ratios at δ = 1e-3 Å against the B3LYP/aug-cc-pVDZ harmonic analysis at the data's
  level (``data/water_b3lyp_harmonic.json``, made by
  ``md_examples/water_reference_harmonic.py``), and the same numbers at δ = 1e-2 Å
  (a smooth surface does not care about the step).
* Copper: the force constant of one displaced atom of the ideal fcc lattice against
  EMT, the model's reference, at steps from 1e-4 to 1e-2 Å, and the phonon band
  structure (ase.phonons) against EMT's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from ase_mpnn import MPNNCalculator
from ase_mpnn.spectra.harmonic import harmonic_analysis

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference():
    return json.loads((ROOT / "data" / "water_b3lyp_harmonic.json").read_text())


@pytest.fixture(scope="module")
def b3lyp(reference):
    return reference["finite_difference"][0]  # δ = 1e-3 Å, central differences


@pytest.fixture(scope="module", params=["painn_water", "nequip_water"])
def water_harmonic(request):
    calc = MPNNCalculator(ROOT / "models" / f"{request.param}.pt", dtype=torch.float64)
    fine = harmonic_analysis(molecule("H2O"), calc, fmax=1e-5, delta=1e-3)
    wide = harmonic_analysis(fine.atoms, calc, optimize=False, delta=1e-2)
    return request.param, fine, wide


def test_water_harmonic_frequencies_match_b3lyp(water_harmonic, b3lyp):
    name, fine, wide = water_harmonic
    np.testing.assert_allclose(fine.frequencies_cm1, b3lyp["frequencies_cm1"], atol=5.0, err_msg=name)
    np.testing.assert_allclose(wide.frequencies_cm1, fine.frequencies_cm1, atol=1.0, err_msg=name)


def test_water_ir_and_raman_match_b3lyp(water_harmonic, b3lyp):
    name, fine, wide = water_harmonic
    np.testing.assert_allclose(fine.ir_intensities_km_mol, b3lyp["ir_intensities_km_mol"], rtol=0.05,
                               err_msg=name)
    np.testing.assert_allclose(fine.raman_activities, b3lyp["raman_activities_A4_per_amu"], rtol=0.10,
                               err_msg=name)
    np.testing.assert_allclose(fine.depolarization_ratios, b3lyp["depolarization_ratios"], atol=0.03,
                               err_msg=name)
    # The step does not matter for a smooth model (1 % and 0.01 as a sanity bound).
    np.testing.assert_allclose(wide.ir_intensities_km_mol, fine.ir_intensities_km_mol, rtol=0.01)
    np.testing.assert_allclose(wide.raman_activities, fine.raman_activities, rtol=0.01)


def test_b3lyp_reference_is_step_independent_and_matches_the_analytic_hessian(reference, b3lyp):
    wide = reference["finite_difference"][1]  # δ = 5e-3 Å, five-point stencil
    np.testing.assert_allclose(wide["frequencies_cm1"], b3lyp["frequencies_cm1"], atol=1.0)
    np.testing.assert_allclose(reference["analytic_hessian_frequencies_cm1"], b3lyp["frequencies_cm1"],
                               atol=2.0)


def _load_check_script():
    """md_examples/check_shipped_models.py: the copper checks live there, printed for the card."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_shipped_models",
                                                  ROOT / "md_examples" / "check_shipped_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK = _load_check_script()


def test_copper_force_constant_matches_emt_at_every_step():
    model = MPNNCalculator(ROOT / "models" / "painn_copper.pt", dtype=torch.float64)
    for step in (1e-4, 1e-3, 1e-2):
        reference = CHECK.self_force_constant(EMT(), step)
        assert CHECK.self_force_constant(model, step) == pytest.approx(reference, rel=0.02), step


def test_copper_phonons_match_emt():
    """Phonons along Γ–X–W–K–Γ–L within 2 % of EMT (where above 20 % of the top frequency).

    The supercell must hold the force constants: ``ase.phonons`` interpolates between the
    supercell's q-points, exact only if the force constants vanish within half of it. The
    model reaches 2 messages × 4.5 Å = 9 Å, so 9×9×9 (23 Å across); in 5×5×5 the folded
    tail makes its long-wavelength acoustic branches up to 9 % too stiff.
    """
    path = bulk("Cu", "fcc", a=3.61).cell.bandpath("GXWKGL", npoints=60)
    model_calc = MPNNCalculator(ROOT / "models" / "painn_copper.pt", dtype=torch.float64)
    emt, model = (CHECK.copper_phonons_meV(calc, path.kpts).ravel() for calc in (EMT(), model_calc))
    significant = emt > 0.2 * emt.max()  # away from Γ, where both go to zero
    np.testing.assert_allclose(model[significant], emt[significant], rtol=0.02)
    # Near Γ the frequencies vanish: there the error counts against the band width.
    assert np.abs(model - emt)[~significant].max() < 0.02 * emt.max()


def test_copper_elastic_constants_match_emt():
    """C11, C12, C44 (the slopes of the acoustic branches at Γ) within 2 % of EMT."""
    reference = CHECK.elastic_constants(EMT())
    model = CHECK.elastic_constants(MPNNCalculator(ROOT / "models" / "painn_copper.pt", dtype=torch.float64))
    for name in ("C11", "C12", "C44"):
        assert model[name] == pytest.approx(reference[name], rel=0.02), (name, model[name], reference[name])

"""Smooth potential surfaces: no corners at the symmetric geometries where
equivariant features vanish (water, CO2, CH4, ideal fcc), for every architecture.

Harmonic frequencies, phonons and spectra are second derivatives: a corner makes
them depend on the finite-difference step and on the vibrational amplitude. The
weights are those of a fresh model (not trivially small: the old PaiNN norm fails
the same check with them, below), in float64.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import ase_mpnn
from ase_mpnn.testing import assert_smooth, force_constants_by_step, symmetric_scans
from conftest import ARCHITECTURES, SMALL_HYPERPARAMETERS, TEST_CUTOFF

SPECIES = ("H", "C", "O", "Cu")
SCANS = symmetric_scans()


def smooth_test_model(architecture: str, **overrides):
    torch.manual_seed(0)
    hyper = {**SMALL_HYPERPARAMETERS[architecture], **overrides}
    return ase_mpnn.build_model(architecture, SPECIES, cutoff=TEST_CUTOFF, **hyper).double().eval()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_surface_is_smooth_at_symmetric_geometries(architecture):
    model = smooth_test_model(architecture)
    for name, (atoms, direction) in SCANS.items():
        assert_smooth(model, atoms, direction, name=f"{architecture}, {name}")


@pytest.mark.parametrize("scan", ["water stretch", "water bend", "CO2 bend", "CH4 breathing",
                                  "fcc Cu, one atom along x"])
def test_check_fails_on_painn_with_the_old_norm(scan):
    """PaiNN's update block as published, ‖V v‖ = sqrt(|w|² + 1e-8), has a near-corner
    wherever a channel passes through zero: the check must see it on every scan."""
    model = smooth_test_model("painn", norm_softening=1e-4)
    atoms, direction = SCANS[scan]
    with pytest.raises(AssertionError, match="corner|spikes"):
        assert_smooth(model, atoms, direction, name=scan)


def test_old_norm_gives_step_dependent_force_constants_in_fcc():
    """The painn_copper symptom: one displaced atom of an ideal crystal, whose
    vectors vanish by symmetry, has force constants that change with the step."""
    atoms, direction = SCANS["fcc Cu, one atom along x"]
    old = force_constants_by_step(smooth_test_model("painn", norm_softening=1e-4), atoms, direction)
    new = force_constants_by_step(smooth_test_model("painn"), atoms, direction)
    assert abs(old[0] - old[-1]) > 0.5 * abs(old[0])
    assert abs(new[0] - new[-1]) < 1e-3 * abs(new[0])


def test_painn_file_without_norm_softening_loads_with_the_old_norm(tmp_path):
    """Files written before the smooth norm keep their numbers (and warn)."""
    model = smooth_test_model("painn", norm_softening=1e-4)
    path = ase_mpnn.save_model(model, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    header = json.loads(payload["header"])
    del header["config"]["hyperparameters"]["norm_softening"]
    payload["header"] = json.dumps(header)
    del payload["checksum"]  # files of that time had none (an edited header with one is refused)
    torch.save(payload, path)
    with pytest.warns(UserWarning, match="smooth vector norm"):
        loaded = ase_mpnn.load_model(path, dtype=torch.float64)
    assert loaded.representation.updates[0].softening_squared == pytest.approx(1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = ase_mpnn.load_model(ase_mpnn.save_model(smooth_test_model("painn"), tmp_path / "new.pt"))
    assert fresh.representation.updates[0].softening_squared == 1.0

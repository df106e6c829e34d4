"""Checks that any model, built-in or added by a user, must pass.

* :mod:`.physics`: symmetries (rotation, reflection, translation, permutation), forces
  and stress against finite differences, extensivity, continuity at the cutoff,
  isolated atoms, batched against single evaluation; :func:`check_model` runs them all.
* :mod:`.smoothness`: force constants that do not depend on the finite-difference step
  and curvature scans without spikes, at the symmetric geometries where corners hide.
* :mod:`.structures`: random H/O clusters and crystals, random rotations.

A new architecture, in a few lines::

    from ase_mpnn import build_model
    from ase_mpnn.testing import check_model
    check_model(build_model("myarch", ["H", "C", "O", "Cu"], cutoff=4.0).double())
"""

from .physics import (
    ALL_PROPERTIES,
    assert_batched_equals_single,
    assert_equivariant,
    assert_extensive,
    assert_forces_match_finite_differences,
    assert_isolated_atoms,
    assert_permutation_equivariant,
    assert_smooth_at_cutoff,
    assert_stress_matches_finite_strain,
    assert_translation_invariant,
    check_model,
    predict,
)
from .smoothness import (
    STEPS,
    CurvatureScan,
    assert_smooth,
    curvature_scan,
    force_constants_by_step,
    model_forces,
    symmetric_scans,
)
from .structures import random_crystal, random_molecule, random_positions, random_rotation

__all__ = [
    "ALL_PROPERTIES",
    "STEPS",
    "CurvatureScan",
    "assert_batched_equals_single",
    "assert_equivariant",
    "assert_extensive",
    "assert_forces_match_finite_differences",
    "assert_isolated_atoms",
    "assert_permutation_equivariant",
    "assert_smooth",
    "assert_smooth_at_cutoff",
    "assert_stress_matches_finite_strain",
    "assert_translation_invariant",
    "check_model",
    "curvature_scan",
    "force_constants_by_step",
    "model_forces",
    "predict",
    "random_crystal",
    "random_molecule",
    "random_positions",
    "random_rotation",
    "symmetric_scans",
]

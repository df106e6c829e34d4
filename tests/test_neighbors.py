"""Tests for ase_mpnn.model.neighbors against ase.neighborlist.neighbor_list."""

import itertools
import time
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ase_mpnn.model.neighbors import NeighborListError, VerletNeighborList, neighbor_list


def _pair_set(i, j, shifts):
    return sorted(zip(i.tolist(), j.tolist(), *np.asarray(shifts).T.tolist()))


def _distances(positions, cell, i, j, shifts):
    vectors = positions[j] - positions[i] + shifts @ cell
    return np.linalg.norm(vectors, axis=1)


def _sorted_distances(positions, cell, i, j, shifts):
    """Distances ordered like _pair_set, so the two can be compared entry by entry."""
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, i))
    return _distances(positions, cell, i, j, shifts)[order]


def assert_matches_ase(atoms: Atoms, cutoff: float, min_pairs: int = 1):
    positions = atoms.get_positions()
    cell = np.asarray(atoms.cell)
    i, j, shifts = neighbor_list(positions, cell, atoms.pbc, cutoff)
    for arr, ndim in ((i, 1), (j, 1), (shifts, 2)):
        assert arr.dtype == np.int64 and arr.ndim == ndim
    assert shifts.shape == (len(i), 3)

    ai, aj, ad, aS = ase_neighbor_list("ijdS", atoms, cutoff)
    assert len(ai) >= min_pairs, "test system is too sparse to be meaningful"
    assert _pair_set(i, j, shifts) == _pair_set(ai, aj, aS)
    # Our edge-vector convention must reproduce ASE's distances pair by pair.
    ours = _sorted_distances(positions, cell, i, j, shifts)
    order = np.lexsort((aS[:, 2], aS[:, 1], aS[:, 0], aj, ai))
    np.testing.assert_allclose(ours, ad[order], rtol=0, atol=1e-10)
    assert (ours < cutoff).all()
    # Shifts must vanish along every non-periodic direction.
    assert not shifts[:, ~atoms.pbc].any()
    return i, j, shifts


def _random_atoms(seed, n, cell, pbc, spread=(1.0, 1.0, 1.0)):
    rng = np.random.default_rng(seed)
    scaled = rng.random((n, 3)) * np.asarray(spread)
    cell = np.asarray(cell, dtype=float)
    # For non-periodic zero vectors, place atoms along a fixed box instead.
    box = np.where(np.linalg.norm(cell, axis=1)[:, None] > 0, cell, 8.0 * np.eye(3))
    return Atoms(f"Si{n}", positions=scaled @ box, cell=cell, pbc=pbc)


def test_molecule_non_periodic():
    atoms = molecule("CH3CH2OH")
    assert_matches_ase(atoms, 2.5, min_pairs=20)


def test_molecule_water_all_pairs():
    i, j, shifts = assert_matches_ase(molecule("H2O"), 5.0)
    assert len(i) == 6 and not shifts.any()


@pytest.mark.parametrize("seed", range(5))
def test_random_triclinic_periodic(seed):
    rng = np.random.default_rng(100 + seed)
    cell = 6.0 * np.eye(3) + rng.normal(scale=1.2, size=(3, 3))
    # Unwrapped positions (up to a cell outside) exercise the shift bookkeeping.
    atoms = _random_atoms(seed, 30, cell, True, spread=(2.0, 1.5, 1.0))
    atoms.positions -= 0.5 * cell.sum(axis=0)
    _, _, shifts = assert_matches_ase(atoms, 4.0, min_pairs=100)
    assert shifts.any()


@pytest.mark.parametrize("third", [[0.0, 0.0, 0.0], [0.0, 0.0, 15.0], [1.0, -2.0, 9.0]])
def test_slab_mixed_pbc(third):
    cell = np.array([[5.0, 0.0, 0.0], [1.3, 4.6, 0.0], third])
    atoms = _random_atoms(7, 25, cell, (True, True, False))
    atoms.positions[:, 2] = np.random.default_rng(8).uniform(-3.0, 9.0, size=len(atoms))
    _, _, shifts = assert_matches_ase(atoms, 3.5, min_pairs=50)
    assert shifts[:, :2].any()


def test_tiny_cubic_cell_sees_self_images():
    positions = [[0.1, 0.2, 0.3], [1.1, 0.9, 1.2]]
    atoms = Atoms("Cu2", positions=positions, cell=2.0 * np.eye(3), pbc=True)
    i, j, shifts = assert_matches_ase(atoms, 5.0)
    self_images = i == j
    assert self_images.any() and shifts[self_images].any(axis=1).all()
    # Several images of the same neighbor are listed separately.
    assert np.count_nonzero((i == 0) & (j == 1)) > 10


def test_tiny_triclinic_cell():
    cell = np.array([[2.1, 0.0, 0.0], [1.4, 1.9, 0.0], [0.6, 0.8, 1.7]])
    atoms = Atoms("Si2", scaled_positions=[[0.0, 0.0, 0.0], [0.3, 0.6, 0.2]], cell=cell, pbc=True)
    assert_matches_ase(atoms, 5.0, min_pairs=100)


def test_tiny_cell_in_slab():
    cell = np.array([[1.8, 0.0, 0.0], [0.5, 2.0, 0.0], [0.0, 0.0, 0.0]])
    atoms = _random_atoms(3, 3, cell, (True, True, False))
    assert_matches_ase(atoms, 4.5, min_pairs=50)


@pytest.mark.parametrize("cell_x", [[2.5, 0.0, 0.0], [2.4, 0.4, -0.3]])
def test_wire_1d_periodic(cell_x):
    cell = np.array([cell_x, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    atoms = _random_atoms(11, 6, cell, (True, False, False), spread=(3.0, 0.5, 0.5))
    _, _, shifts = assert_matches_ase(atoms, 4.0, min_pairs=20)
    assert shifts[:, 0].any()


def test_results_are_independent_copies():
    atoms = _random_atoms(0, 10, 5.0 * np.eye(3), True)
    first = neighbor_list(atoms.positions, atoms.cell, atoms.pbc, 3.0)
    snapshot = [a.copy() for a in first]
    neighbor_list(atoms.positions + 1.3, atoms.cell, atoms.pbc, 3.0)
    for a, b in zip(first, snapshot):
        np.testing.assert_array_equal(a, b)


def _random_walk_positions(rng, positions, n_steps):
    for step in range(n_steps):
        scale = 0.4 if step % 10 == 9 else 0.03  # occasional large jumps force rebuilds
        positions = positions + rng.normal(scale=scale, size=positions.shape)
        yield positions


@pytest.mark.parametrize("pbc", [True, (True, True, False)])
def test_verlet_matches_fresh_list_along_trajectory(pbc):
    rng = np.random.default_rng(42)
    cell = np.array([[7.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.5, 0.7, 6.8]])
    atoms = _random_atoms(5, 40, cell, pbc)
    numbers = atoms.numbers
    verlet = VerletNeighborList(cutoff=3.5, skin=0.6)
    n_steps = 40
    for positions in _random_walk_positions(rng, atoms.positions, n_steps):
        got = verlet.update(positions, cell, pbc, numbers)
        assert all(a.dtype == np.int64 for a in got)
        assert _pair_set(*got) == _pair_set(*neighbor_list(positions, cell, pbc, 3.5))
    assert 4 <= verlet.n_builds < n_steps


@pytest.mark.parametrize("pbc", [False, True])
def test_verlet_head_on_pairs(pbc):
    # Worst case for the skin logic: isolated pairs of atoms moving head-on,
    # towards or away from each other (across the periodic x boundary when
    # pbc=True), from separations spanning cutoff +- (skin + 0.1). Any rebuild
    # threshold looser than skin/2, or any shortcut that trusts pairs it should
    # recheck, gets at least one of these pairs wrong.
    cutoff, skin, step = 3.0, 0.5, 0.013
    separations = np.arange(cutoff - skin - 0.1, cutoff + skin + 0.1, 0.01)
    n_rows = 12  # pairs sit on a (y, z) grid, 7 A apart, so only partners interact
    n_cols = -(-2 * len(separations) // n_rows)
    cell = np.diag([20.0, 7.0 * n_rows, 7.0 * n_cols])
    pos, direction = [], []
    for k, (sep, sign) in enumerate(itertools.product(separations, (1.0, -1.0))):
        y, z = 7.0 * (k % n_rows) + 3.5, 7.0 * (k // n_rows) + 3.5
        if pbc:  # the pair is bonded through the x boundary; sign=1: approaching
            pos += [[0.1, y, z], [20.1 - sep, y, z]]
            direction += [[-sign, 0, 0], [sign, 0, 0]]
        else:
            pos += [[5.0, y, z], [5.0 + sep, y, z]]
            direction += [[sign, 0, 0], [-sign, 0, 0]]
    pos, direction = np.array(pos), step * np.array(direction, dtype=float)

    verlet = VerletNeighborList(cutoff=cutoff, skin=skin)
    n_steps = 40
    for _ in range(n_steps):
        got = verlet.update(pos, cell, pbc, None)
        assert _pair_set(*got) == _pair_set(*neighbor_list(pos, cell, pbc, cutoff))
        pos = pos + direction
    assert 2 <= verlet.n_builds < n_steps


def test_verlet_rebuilds_on_changes():
    atoms = _random_atoms(1, 20, 6.0 * np.eye(3), True)
    pos, cell, numbers = atoms.positions, np.asarray(atoms.cell), atoms.numbers
    verlet = VerletNeighborList(cutoff=3.0, skin=0.5)
    verlet.update(pos, cell, True, numbers)
    verlet.update(pos + 0.01, cell, True, numbers)
    assert verlet.n_builds == 1

    changed = numbers.copy()
    changed[3] = 8
    verlet.update(pos, cell, True, changed)
    assert verlet.n_builds == 2

    new_cell = 1.02 * cell
    got = verlet.update(pos, new_cell, True, changed)
    assert verlet.n_builds == 3
    assert _pair_set(*got) == _pair_set(*neighbor_list(pos, new_cell, True, 3.0))

    verlet.update(pos, new_cell, (True, True, False), changed)
    assert verlet.n_builds == 4
    verlet.update(pos[:-1], new_cell, (True, True, False), changed[:-1])
    assert verlet.n_builds == 5

    # A single atom moving just under skin/2 is reused, just beyond it is rebuilt.
    moved = pos[:-1].copy()
    moved[0, 0] += 0.24
    verlet.update(moved, new_cell, (True, True, False), changed[:-1])
    assert verlet.n_builds == 5
    moved = pos[:-1].copy()
    moved[0, 0] += 0.26
    verlet.update(moved, new_cell, (True, True, False), changed[:-1])
    assert verlet.n_builds == 6


def test_verlet_zero_skin():
    atoms = _random_atoms(2, 20, 6.0 * np.eye(3), True)
    verlet = VerletNeighborList(cutoff=3.0, skin=0.0)
    pos = atoms.positions
    for step in range(3):
        pos = pos + 1e-3
        got = verlet.update(pos, atoms.cell, True, atoms.numbers)
        assert _pair_set(*got) == _pair_set(*neighbor_list(pos, atoms.cell, True, 3.0))
    assert verlet.n_builds == 3
    verlet.update(pos, atoms.cell, True, atoms.numbers)
    assert verlet.n_builds == 3


def test_verlet_nan_positions_raise():
    atoms = _random_atoms(2, 10, 6.0 * np.eye(3), True)
    verlet = VerletNeighborList(cutoff=3.0, skin=0.5)
    verlet.update(atoms.positions, atoms.cell, True, atoms.numbers)
    bad = atoms.positions.copy()
    bad[4, 1] = np.nan
    with pytest.raises(NeighborListError, match=r"NaN or infinite values \(atoms 4\)"):
        verlet.update(bad, atoms.cell, True, atoms.numbers)


def test_error_nan_positions():
    pos = np.zeros((6, 3))
    pos[3, 0] = np.nan
    pos[5, 2] = np.inf
    message = r"positions contain NaN or infinite values \(atoms 3, 5\)"
    with pytest.raises(NeighborListError, match=message):
        neighbor_list(pos, np.eye(3) * 5, True, 3.0)


def test_error_pbc_with_zero_cell():
    atoms = molecule("H2O")
    atoms.pbc = True
    with pytest.raises(NeighborListError, match=r"zero \(no cell was set\).*set_cell.*pbc=False"):
        neighbor_list(atoms.positions, atoms.cell, atoms.pbc, 3.0)
    # Only the periodic direction matters.
    cell = np.diag([5.0, 5.0, 0.0])
    with pytest.raises(NeighborListError, match=r"vector\(s\) c "):
        neighbor_list(atoms.positions, cell, (False, True, True), 3.0)


def test_error_singular_cell():
    cell = np.array([[4.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    with pytest.raises(NeighborListError, match=r"linearly dependent.*singular"):
        neighbor_list(np.zeros((2, 3)), cell, True, 3.0)


@pytest.mark.parametrize("cutoff", [0.0, -1.0, float("nan")])
def test_error_bad_cutoff(cutoff):
    with pytest.raises(NeighborListError, match=r"cutoff must be a finite number > 0"):
        neighbor_list(np.zeros((2, 3)), np.eye(3), True, cutoff)
    with pytest.raises(NeighborListError, match=r"cutoff must be a finite number > 0"):
        VerletNeighborList(cutoff)


def test_error_negative_skin():
    with pytest.raises(NeighborListError, match=r"skin must be a finite number >= 0"):
        VerletNeighborList(3.0, skin=-0.1)


# --- bounded work: lists that would not fit in memory or time are refused up front -------

def _water_box(n_per_side: int = 16) -> Atoms:
    """n³ water molecules on a grid at 1 g/cm³ (16³: the 12,288-atom box of the benchmarks)."""
    spacing = (18.015 / 0.6022 / 1.0) ** (1 / 3)  # Å per molecule at 1 g/cm³
    grid = np.stack(np.meshgrid(*[np.arange(n_per_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing
    water = molecule("H2O").positions
    positions = (grid[:, None, :] + water[None]).reshape(-1, 3)
    return Atoms("OH2" * len(grid), positions=positions, cell=[n_per_side * spacing] * 3, pbc=True)


def test_large_water_box_is_not_refused():
    box = _water_box()
    assert len(box) == 12288
    from ase_mpnn.model.neighbors import estimate_neighbor_work

    estimate = estimate_neighbor_work(box.positions, box.cell.array, True, 5.5)
    i, _, _ = neighbor_list(box.positions, box.cell.array, True, 5.5)
    # The estimate is the right size (random-density model of a liquid: within 30 %).
    assert 0.7 < estimate.pairs / len(i) < 1.3
    assert estimate.images == 27


def test_nearly_singular_cell_is_refused_quickly_with_the_numbers():
    a = np.array([3.0, 0.0, 0.0])
    cell = np.array([a, a + [0.0, 1e-3, 0.0], [0.0, 0.0, 3.0]])  # passes the singularity check
    positions = np.random.default_rng(0).random((3, 3))
    start = time.perf_counter()
    with pytest.raises(NeighborListError, match=r"refused.*candidate pairs.*widths \(0\.001, 0\.001, 3 Å\)"):
        neighbor_list(positions, cell, True, 4.5)
    assert time.perf_counter() - start < 1.0  # unchecked, vesin took ~15 s here
    # A small cutoff on the same cell is cheap and still served.
    assert len(neighbor_list(positions, cell, True, 0.5)[0]) > 0


def test_huge_cutoff_on_a_molecule_finishes_with_all_pairs():
    atoms = molecule("CH3CH2OH")
    start = time.perf_counter()
    i, j, shifts = neighbor_list(atoms.positions, np.zeros((3, 3)), False, 5000.0)
    assert time.perf_counter() - start < 1.0  # unchecked: minutes (vesin's time grows like the cutoff³)
    n = len(atoms)
    assert len(i) == n * (n - 1) and not shifts.any()
    assert_matches_ase(atoms, 5000.0)


def test_huge_periodic_cutoff_is_refused_and_limits_can_be_raised(monkeypatch):
    box = _water_box(2)
    with pytest.raises(NeighborListError, match=r"about 1e\+19 pairs within the cutoff 1e\+06 Å.*ASE_MPNN_MAX_PAIRS"):
        neighbor_list(box.positions, box.cell.array, True, 1e6)
    # The limits are settings: lowered, an ordinary list is refused; raised, it is built.
    with pytest.raises(NeighborListError, match="limit of 10 pairs"):
        neighbor_list(box.positions, box.cell.array, True, 5.0, max_pairs=10)
    monkeypatch.setenv("ASE_MPNN_MAX_PAIRS", "10")
    with pytest.raises(NeighborListError, match="limit of 10 pairs"):
        neighbor_list(box.positions, box.cell.array, True, 5.0)
    assert len(neighbor_list(box.positions, box.cell.array, True, 5.0, max_pairs=1e9)[0]) > 0
    monkeypatch.setenv("ASE_MPNN_MAX_PAIRS", "many")
    with pytest.raises(NeighborListError, match="ASE_MPNN_MAX_PAIRS='many' is not a number"):
        neighbor_list(box.positions, box.cell.array, True, 5.0)


def test_verlet_reuses_its_result_until_a_shell_pair_crosses_the_cutoff():
    """The last result is handed out again while the same shell pairs are in, and
    replaced as soon as one crosses the cutoff (in either direction)."""
    cutoff, skin = 3.0, 0.5
    cell, pbc = np.zeros((3, 3)), False
    pos = np.array([[0.0, 0.0, 0.0], [2.9, 0.0, 0.0], [0.0, 2.0, 0.0]])  # 0-1 in the shell, 0-2 in the core
    verlet = VerletNeighborList(cutoff=cutoff, skin=skin)
    first = verlet.update(pos, cell, pbc, None)
    pos[1, 0] = 2.95  # still inside
    assert verlet.update(pos, cell, pbc, None) is first
    for x in (3.05, 2.98):  # out, then in again: no rebuild (moved < skin / 2), new results
        pos[1, 0] = x
        got = verlet.update(pos, cell, pbc, None)
        assert _pair_set(*got) == _pair_set(*neighbor_list(pos, cell, pbc, cutoff))
    assert verlet.n_builds == 1
    assert len(got[0]) == 4 and got is not first


def test_update_lists_equals_one_update_per_structure():
    """The stacked check for many beads gives each bead what its own list's update gives."""
    from ase_mpnn.model.neighbors import update_lists

    rng = np.random.default_rng(3)
    water = molecule("H2O")
    box = _random_atoms(4, 12, np.eye(3) * 4.0, True)
    for template in (water, box):
        beads = [template.copy() for _ in range(6)]
        batched = [VerletNeighborList(3.0, 0.5) for _ in beads]
        single = [VerletNeighborList(3.0, 0.5) for _ in beads]
        for step in range(8):
            for k, bead in enumerate(beads):
                bead.positions += rng.normal(scale=0.02 if k else 0.2, size=bead.positions.shape)
            if step == 4:
                beads[2].numbers[0] = 1 if beads[2].numbers[0] != 1 else 8
                beads[3].cell = beads[3].cell.array * 1.01
            got = update_lists(batched, beads)
            for lst, bead, pairs in zip(single, beads, got):
                assert _pair_set(*pairs) == _pair_set(*lst.update(bead.positions, bead.cell.array, bead.pbc,
                                                                  bead.numbers))
        assert sum(lst.n_builds for lst in batched) == sum(lst.n_builds for lst in single)
        assert min(lst.n_builds for lst in batched) < 8  # the stacked check did reuse lists
    beads[1].positions[0, 0] = np.nan
    with pytest.raises(NeighborListError, match="NaN"):
        update_lists(batched, beads)


def test_molecule_inside_the_cutoff_keeps_its_list_until_it_stretches_past_it():
    """A non-periodic molecule with every pair listed needs no rebuild while it fits in the
    cutoff, however far it drifts; stretched past the cutoff, the far pair leaves."""
    dimer = Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    nl = VerletNeighborList(3.0, 0.5)
    first = _pair_set(*nl.update(dimer.positions, dimer.cell.array, dimer.pbc, dimer.numbers))
    assert len(first) == 2
    for shift in (0.4, 5.0, 40.0):  # rigid drift, far beyond skin / 2
        moved = dimer.positions + shift
        assert _pair_set(*nl.update(moved, dimer.cell.array, dimer.pbc, dimer.numbers)) == first
    assert nl.n_builds == 1
    stretched = dimer.positions.copy()
    stretched[1, 2] = 3.2
    assert not _pair_set(*nl.update(stretched, dimer.cell.array, dimer.pbc, dimer.numbers))
    assert nl.n_builds == 2

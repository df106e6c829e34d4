"""Periodic neighbor lists built on vesin, with an optional Verlet skin.

Contract (the model code relies on every point of it):

* The list is *full*: every pair appears as both ``i -> j`` and ``j -> i``.
* A pair is listed when its distance is strictly smaller than ``cutoff``.
* The edge vector of pair ``k`` is
  ``D[k] = positions[j[k]] - positions[i[k]] + shifts[k] @ cell``,
  the same convention as ``ase.neighborlist.neighbor_list("ijS", ...)``.
* An atom is never paired with itself under a zero shift, but it *is* paired
  with its own periodic images when the cell is small enough for them to be
  within the cutoff.
* Shifts along non-periodic directions are always zero. Positions need not be
  wrapped into the cell; the shifts account for that.
* ``i`` and ``j`` are ``np.int64`` arrays of shape ``(n_pairs,)`` and ``shifts``
  is ``np.int64`` of shape ``(n_pairs, 3)``. The order of the pairs is
  unspecified.

Bounded work. Before building, :func:`estimate_neighbor_work` estimates from the
number density how many pairs the list will hold and how many candidate pairs the
cell-list search must examine (many periodic images when a cell is much thinner than
the cutoff, e.g. a nearly singular one). Lists above :data:`DEFAULT_MAX_PAIRS` pairs
(memory) or :data:`DEFAULT_MAX_CHECKS` candidate checks (time) are refused with the
numbers instead of running for minutes or exhausting memory; the environment variables
``ASE_MPNN_MAX_PAIRS`` and ``ASE_MPNN_MAX_PAIR_CHECKS`` (or the ``max_pairs`` and
``max_checks`` arguments) raise the limits.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import vesin

__all__ = [
    "DEFAULT_MAX_CHECKS",
    "DEFAULT_MAX_PAIRS",
    "NeighborEstimate",
    "NeighborListError",
    "VerletNeighborList",
    "estimate_neighbor_work",
    "neighbor_list",
]

PairList = tuple[np.ndarray, np.ndarray, np.ndarray]

# Relative tolerance below which periodic cell vectors count as linearly dependent.
_SINGULAR_TOL = 1e-10

#: Most pairs a list may hold. The list costs ~40 bytes a pair (≈ 0.8 GB at the limit)
#: and a model's forward and backward pass tens of times more per edge; a 12,288-atom
#: water box at a 5.5 Å cutoff has ~1e6 pairs. Override: ``ASE_MPNN_MAX_PAIRS``.
DEFAULT_MAX_PAIRS = 20_000_000
#: Most candidate pairs the cell-list search may examine (vesin: ≈ 5 ns each, so ≈ 10 s).
#: Override: ``ASE_MPNN_MAX_PAIR_CHECKS``.
DEFAULT_MAX_CHECKS = 2_000_000_000
_BYTES_PER_PAIR = 40  # i, j (int64) and shifts (3 × int64) of the returned list


class NeighborListError(ValueError):
    """Raised when a neighbor list cannot be built from the given inputs."""


# A vesin.NeighborList keeps its result buffers between calls, so reusing one per
# cutoff avoids allocation and setup cost, which dominates for a few atoms. The
# buffers are overwritten by every compute, hence one cache per thread.
_local = threading.local()
# Validating a cell costs more than the vesin call itself for tiny systems, and
# MD keeps the same cell for many steps, so remember the cells already accepted.
_valid_cells: dict[bytes, bool] = {}


def _vesin_calculator(cutoff: float) -> vesin.NeighborList:
    cache = getattr(_local, "calculators", None)
    if cache is None:
        cache = _local.calculators = {}
    calc = cache.get(cutoff)
    if calc is None:
        if len(cache) >= 16:  # bound the memory held by stale cutoffs
            cache.clear()
        calc = cache[cutoff] = vesin.NeighborList(cutoff=cutoff, full_list=True)
    return calc


def _as_pbc(pbc: np.ndarray | Sequence[bool] | bool) -> np.ndarray:
    arr = np.asarray(pbc, dtype=bool)
    if arr.ndim == 0:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,):
        raise NeighborListError(
            f"pbc must be a bool or three bools, got shape {np.shape(pbc)}"
        )
    return arr


def _check_cell(cell: np.ndarray, pbc: np.ndarray) -> None:
    key = cell.tobytes() + pbc.tobytes()
    if key in _valid_cells:
        return
    if not np.isfinite(cell).all():
        raise NeighborListError("cell contains NaN or infinite values")
    if pbc.any():
        vectors = cell[pbc]
        norms = np.linalg.norm(vectors, axis=1)
        names = np.array(["a", "b", "c"])[pbc]
        if (norms <= 0.0).any():
            raise NeighborListError(
                f"pbc is True along cell vector(s) {', '.join(names[norms <= 0.0])} but "
                "those vectors are zero (no cell was set). Give the system a cell, e.g. "
                "atoms.set_cell([a, b, c]), or set pbc=False in the non-periodic directions."
            )
        # Gram determinant over the squared norms: the squared sine-like volume of
        # the periodic vectors, which is scale free and works for 1, 2 or 3 of them.
        gram = vectors @ vectors.T
        if np.linalg.det(gram) / np.prod(norms**2) < _SINGULAR_TOL:
            raise NeighborListError(
                f"the periodic cell vectors ({', '.join(names)}) are linearly dependent, so "
                "the cell is singular: fix the cell with atoms.set_cell(...) or set "
                "pbc=False along the degenerate directions."
            )
    if len(_valid_cells) >= 64:
        _valid_cells.clear()
    _valid_cells[key] = True


@dataclass(frozen=True)
class NeighborEstimate:
    """What a neighbor list would cost, from the number density (an estimate, not a count).

    Attributes:
        pairs: expected pairs within the cutoff (memory of the list and of the model).
        checks: candidate pairs the cell-list search examines (time).
        images: periodic images of the cell within the cutoff (1 for a molecule).
        widths: perpendicular widths (Å) of the periodic cell directions, in order.
    """

    pairs: float
    checks: float
    images: float
    widths: tuple[float, ...]


def estimate_neighbor_work(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray | Sequence[bool] | bool, cutoff: float
) -> NeighborEstimate:
    """Estimate the size and search cost of the neighbor list of a structure.

    Periodic directions are described by the cell's perpendicular widths ``w``, the
    others by the extent ``L`` of the positions across them (perpendicular to the
    periodic vectors). Expected neighbors per atom: ``N · (4/3)π r³ / A · Π 1/max(L, 2r)``,
    ``A`` the volume (area, length) of the periodic part; checks: ``N²`` times the
    fraction of the (imaged) system a cell-list search with bins ≥ ``r`` visits, which
    grows like ``2r/w`` per thin periodic direction.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    pbc = _as_pbc(pbc)
    size, complement, widths = _cell_geometry(np.asarray(cell, dtype=np.float64), pbc)
    n = len(positions)
    r = float(cutoff)
    extents = np.ptp(positions @ complement.T, axis=0) if n and len(complement) else np.zeros(len(complement))

    neighbors = n * (4.0 / 3.0) * math.pi * r**3 / size
    fraction = 1.0
    for extent in extents:
        neighbors /= max(float(extent), 2.0 * r)
        fraction *= min(1.0, 3.0 * r / extent) if extent > 0 else 1.0
    pairs = n * neighbors
    if not pbc.any():
        pairs = min(pairs, float(n) * (n - 1))

    images = 1.0
    for width in widths:
        images *= 2 * math.ceil(r / width) + 1
        bin_width = width / max(1, math.floor(width / r))
        fraction *= (2 * math.ceil(r / bin_width) + 1) * bin_width / width
    return NeighborEstimate(pairs=pairs, checks=float(n) * n * fraction, images=images, widths=widths)


# MD keeps one cell for many steps: its geometry is computed once.
_geometries: dict[bytes, tuple[float, np.ndarray, tuple[float, ...]]] = {}


def _cell_geometry(cell: np.ndarray, pbc: np.ndarray) -> tuple[float, np.ndarray, tuple[float, ...]]:
    """Volume (area, length) of the periodic part, unit vectors of the other directions, widths."""
    key = cell.tobytes() + pbc.tobytes()
    found = _geometries.get(key)
    if found is not None:
        return found
    periodic = cell[pbc]
    if len(periodic):
        size = math.sqrt(max(float(np.linalg.det(periodic @ periodic.T)), 0.0))
        # The non-periodic directions: the orthogonal complement of the periodic vectors.
        complement = np.linalg.svd(periodic)[2][len(periodic):]
    else:
        size, complement = 1.0, np.eye(3)
    widths = []
    for k in range(len(periodic)):
        others = np.delete(periodic, k, axis=0)
        if len(others) == 0:
            widths.append(float(np.linalg.norm(periodic[k])))
        else:
            # The part of vector k outside the span of the others: the spacing of lattice planes.
            q = np.linalg.qr(others.T)[0]
            widths.append(float(np.linalg.norm(periodic[k] - q @ (q.T @ periodic[k]))))
    if len(_geometries) >= 64:
        _geometries.clear()
    found = _geometries[key] = (size, complement, tuple(widths))
    return found


def _limit(value: float | None, variable: str, default: float) -> float:
    if value is None:
        text = os.environ.get(variable)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise NeighborListError(f"{variable}={text!r} is not a number: set it to a count, e.g. 1e8") from None
    value = float(value)
    if not value > 0:
        raise NeighborListError(f"the limit {variable} must be a positive number, got {value}")
    return value


def _check_work(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float,
    max_pairs: float | None, max_checks: float | None,
) -> None:
    """Refuse, with the numbers, a list that would not fit in memory or finish in seconds."""
    estimate = estimate_neighbor_work(positions, cell, pbc, cutoff)
    pair_limit = _limit(max_pairs, "ASE_MPNN_MAX_PAIRS", DEFAULT_MAX_PAIRS)
    check_limit = _limit(max_checks, "ASE_MPNN_MAX_PAIR_CHECKS", DEFAULT_MAX_CHECKS)
    widths = ", ".join(f"{w:.3g}" for w in estimate.widths)
    geometry = (f"the periodic cell's perpendicular widths ({widths} Å) need {estimate.images:.2g} periodic images "
                f"within the cutoff" if estimate.widths else "no periodic directions")
    if estimate.pairs > pair_limit:
        gigabytes = estimate.pairs * _BYTES_PER_PAIR / 1e9
        raise NeighborListError(
            f"neighbor list refused: about {estimate.pairs:.2g} pairs within the cutoff {cutoff:g} Å for "
            f"{len(positions)} atoms ({gigabytes:.3g} GB for the list alone, far more in the model), above the "
            f"limit of {pair_limit:.2g} pairs; {geometry}. Check the cutoff (a model file's?) and the cell; if this "
            "is really meant, raise the limit with max_pairs=... or the environment variable ASE_MPNN_MAX_PAIRS."
        )
    if estimate.checks > check_limit:
        raise NeighborListError(
            f"neighbor list refused: about {estimate.checks:.2g} candidate pairs to examine for {len(positions)} "
            f"atoms at the cutoff {cutoff:g} Å (limit {check_limit:.2g}, about 10 s); {geometry}. A cell much "
            "thinner than the cutoff is usually a mistake (a nearly singular cell?): check atoms.cell. If this "
            "is really meant, raise the limit with max_checks=... or ASE_MPNN_MAX_PAIR_CHECKS."
        )


def _search_cutoff(positions: np.ndarray, pbc: np.ndarray, cutoff: float) -> float:
    """A cutoff with the same pairs that vesin handles fast.

    Without periodic directions every pair is at most the bounding-box diagonal apart,
    so a larger cutoff lists the same pairs; vesin's time grows like the cube of the
    cutoff over the molecule's size (a 5000 Å cutoff on one water: minutes). Rounded
    up to a power of two so the cache of vesin calculators stays small.
    """
    if pbc.any() or len(positions) == 0:
        return cutoff
    diagonal = float(np.linalg.norm(np.ptp(positions, axis=0)))
    enough = 2.0 ** math.ceil(math.log2(diagonal + 1.0))  # > diagonal
    return min(cutoff, enough)


def _check_cutoff(cutoff: float, name: str = "cutoff") -> float:
    cutoff = float(cutoff)
    if not (math.isfinite(cutoff) and cutoff > 0.0):
        raise NeighborListError(f"{name} must be a finite number > 0, got {cutoff}")
    return cutoff


def neighbor_list(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray | Sequence[bool],
    cutoff: float,
    max_pairs: float | None = None,
    max_checks: float | None = None,
) -> PairList:
    """Return ``i, j, shifts`` for all pairs closer than ``cutoff``.

    Args:
        positions: Cartesian positions, shape ``(n_atoms, 3)``.
        cell: cell vectors as rows, shape ``(3, 3)``. Rows along non-periodic
            directions are ignored and may be zero.
        pbc: periodicity along each cell vector (a bool applies to all three).
        cutoff: pair cutoff in the length unit of ``positions``.
        max_pairs: refuse lists estimated to hold more pairs (None: the environment
            variable ``ASE_MPNN_MAX_PAIRS`` or :data:`DEFAULT_MAX_PAIRS`).
        max_checks: refuse searches estimated to examine more candidate pairs (None:
            ``ASE_MPNN_MAX_PAIR_CHECKS`` or :data:`DEFAULT_MAX_CHECKS`).

    Returns:
        ``(i, j, shifts)`` following the module-level contract.

    Raises:
        NeighborListError: non-finite positions, a missing or singular cell in a
            periodic direction, a non-positive cutoff, or a list too large or too slow
            to build (see :func:`estimate_neighbor_work`).
    """
    cutoff = _check_cutoff(cutoff)
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise NeighborListError(f"positions must have shape (n_atoms, 3), got {positions.shape}")
    if not np.isfinite(positions).all():
        bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        shown = ", ".join(str(k) for k in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise NeighborListError(
            f"positions contain NaN or infinite values (atoms {shown}); the structure "
            "is broken, e.g. an MD run blew up or an input file was parsed wrongly."
        )
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    if cell.shape != (3, 3):
        raise NeighborListError(f"cell must have shape (3, 3), got {cell.shape}")
    pbc = _as_pbc(pbc)
    _check_cell(cell, pbc)
    cutoff = _search_cutoff(positions, pbc, cutoff)
    _check_work(positions, cell, pbc, cutoff, max_pairs, max_checks)

    try:
        i, j, shifts = _vesin_calculator(cutoff).compute(positions, cell, pbc, "ijS", copy=False)
    except RuntimeError as exc:
        raise NeighborListError(f"vesin could not build the neighbor list: {exc}") from exc
    # astype copies, which also detaches the results from vesin's reused buffers.
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)


class VerletNeighborList:
    """Neighbor list with a skin: rebuilt only when needed, always filtered to the cutoff.

    A list is built with ``cutoff + skin``. As long as no atom has moved more
    than ``skin / 2`` since that build, no pair can have come closer by more
    than ``skin``, so every pair now within ``cutoff`` is in the stored list and
    filtering it by current distances gives exactly the fresh result. Pairs
    closer than ``cutoff - skin`` at build time cannot leave the cutoff before
    the next build, so only the remaining shell pairs are re-measured per call.
    A non-periodic structure whose list holds every ordered pair (a small molecule) is
    not rebuilt while its bounding-box diagonal stays under the cutoff, however far it
    moved: no pair can then be missing or beyond the cutoff.
    The pair order differs from ``neighbor_list`` (and is unspecified).

    Attributes:
        cutoff: the cutoff of the returned pairs.
        skin: the extra buffer used when building.
        n_builds: number of times the underlying list was (re)built.
    """

    def __init__(self, cutoff: float, skin: float = 0.5) -> None:
        self.cutoff = _check_cutoff(cutoff)
        skin = float(skin)
        if not (math.isfinite(skin) and skin >= 0.0):
            raise NeighborListError(f"skin must be a finite number >= 0, got {skin}")
        self.skin = skin
        self.n_builds = 0
        self._ref_positions: np.ndarray | None = None
        self._cell: np.ndarray | None = None
        self._pbc: np.ndarray | None = None
        self._numbers: np.ndarray | None = None
        self._core: PairList | None = None
        self._shell: tuple[np.ndarray, ...] | None = None
        self._kept: tuple[np.ndarray, PairList] | None = None  # last shell mask and its result
        # Non-periodic and every ordered pair listed (a small molecule): the list stays
        # exact while the molecule's bounding box has a diagonal under the cutoff, however
        # far it drifts (Langevin) or its beads spread (RPMD) since the build.
        self._complete = False

    def _needs_rebuild(self, positions, cell, pbc, numbers) -> bool:
        ref = self._ref_positions
        if ref is None or ref.shape != positions.shape:
            return True
        if not (np.array_equal(cell, self._cell) and np.array_equal(pbc, self._pbc)):
            return True
        if numbers is not None and not np.array_equal(numbers, self._numbers):
            return True
        if self._complete and _diagonal2(positions) < self.cutoff**2:
            return False  # a molecule inside the cutoff: every pair, whatever it moved
        delta = positions - ref
        max_d2 = np.einsum("ij,ij->i", delta, delta).max(initial=0.0)
        # Written as "not <=" so that NaN positions force a rebuild, which then
        # reports them instead of silently reusing a stale list.
        return not (max_d2 <= (0.5 * self.skin) ** 2)

    def update(
        self,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc: np.ndarray | Sequence[bool],
        numbers: np.ndarray | None,
    ) -> PairList:
        """Return ``i, j, shifts`` for pairs within ``cutoff`` at these positions.

        The stored ``cutoff + skin`` list is rebuilt when any atom moved more than
        ``skin / 2`` (raw Cartesian displacement, so an atom wrapped back into
        the cell simply triggers a rebuild) or when the cell, pbc, number of
        atoms or atomic numbers changed. Pairs are then filtered with the current
        positions, so the result equals ``neighbor_list(..., cutoff)`` as a set.
        ``numbers=None`` disables the atomic-number check.

        The returned arrays may be the ones returned by the previous call (when no pair
        entered or left the cutoff): read them, do not modify them.

        Raises:
            NeighborListError: as ``neighbor_list``, when a rebuild is needed.
        """
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        cell = np.ascontiguousarray(cell, dtype=np.float64)
        pbc = _as_pbc(pbc)
        if numbers is not None:
            numbers = np.asarray(numbers)

        if self._needs_rebuild(positions, cell, pbc, numbers):
            self._build(positions, cell, pbc, numbers)

        core_i, core_j, core_shifts = self._core
        i, j, shifts, offsets = self._shell
        if len(i) == 0:  # no pair near the cutoff (a small molecule): the core list is the answer
            return self._core
        keep = _squared_distances(positions, i, j, offsets) < self.cutoff**2
        # Between rebuilds the same pairs usually stay in: reuse the last concatenation
        # (three copies of every pair, a third of a fresh build's cost for large systems).
        if self._kept is not None and np.array_equal(keep, self._kept[0]):
            return self._kept[1]
        result = (
            np.concatenate((core_i, i[keep])),
            np.concatenate((core_j, j[keep])),
            np.concatenate((core_shifts, shifts[keep])),
        )
        self._kept = (keep, result)
        return result

    def _build(self, positions, cell, pbc, numbers) -> None:
        i, j, shifts = neighbor_list(positions, cell, pbc, self.cutoff + self.skin)
        # The cell is fixed until the next build, so Cartesian image offsets
        # are computed once here rather than on every step.
        offsets = shifts @ cell
        # Until the next build no pair distance changes by more than skin, so
        # pairs closer than cutoff - skin now stay within the cutoff: only the
        # remaining "shell" pairs need their distance checked on each call.
        inner = max(self.cutoff - self.skin, 0.0)
        core = _squared_distances(positions, i, j, offsets) < inner**2
        shell = ~core
        self._core = (i[core], j[core], shifts[core])
        self._shell = (i[shell], j[shell], shifts[shell], offsets[shell])
        self._kept = None
        n = len(positions)
        self._complete = not pbc.any() and len(self._shell[0]) == 0 and len(self._core[0]) == n * (n - 1)
        self._ref_positions = positions.copy()
        self._cell = cell.copy()
        self._pbc = pbc.copy()
        self._numbers = None if numbers is None else numbers.copy()
        self.n_builds += 1


def _diagonal2(positions: np.ndarray) -> float:
    """Squared diagonal of the bounding box: no two atoms are farther apart (NaN if any position is)."""
    extent = np.ptp(positions, axis=0)
    return float(extent @ extent)


def _squared_distances(
    positions: np.ndarray, i: np.ndarray, j: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    # np.take is markedly faster than fancy indexing for large gathers.
    vectors = np.take(positions, j, axis=0)
    vectors -= np.take(positions, i, axis=0)
    vectors += offsets
    return np.einsum("ij,ij->i", vectors, vectors)


def update_lists(lists: Sequence[VerletNeighborList], structures: Sequence[Any]) -> list[PairList]:
    """``[l.update(a.positions, a.cell.array, a.pbc, a.numbers) for l, a in zip(lists, structures)]``,
    with one vectorised check for many structures of one size (ring-polymer beads).

    Checking each bead's list on its own is a dozen small numpy calls per bead, a tenth
    of a 32-bead water RPMD step; stacked, all beads take about as many calls as one.
    Lists whose structures kept cell, pbc and numbers, moved less than skin / 2 (or, for a
    molecule with every pair listed, still fit inside the cutoff) and have no pair near
    the cutoff (their core list is the answer) return it directly; all others go through
    :meth:`VerletNeighborList.update`, so the results are the same.
    """
    results: list[PairList | None] = [None] * len(structures)
    refs = [lst._ref_positions for lst in lists]
    if len(structures) > 1 and all(r is not None and r.shape == refs[0].shape for r in refs) and all(
        len(a) == len(refs[0]) for a in structures
    ):
        positions = np.stack([a.positions for a in structures])
        delta = positions - np.stack(refs)
        moved2 = np.einsum("bij,bij->bi", delta, delta).max(axis=1, initial=0.0)
        same = (
            (np.stack([a.cell.array for a in structures]) == np.stack([lst._cell for lst in lists])).all(axis=(1, 2))
            & (np.stack([a.pbc for a in structures]) == np.stack([lst._pbc for lst in lists])).all(axis=1)
            & np.array([lst._numbers is not None and np.array_equal(a.numbers, lst._numbers)
                        for lst, a in zip(lists, structures)])
        )
        extent = np.ptp(positions, axis=1)  # bounding box of each structure
        diagonal2 = np.einsum("bi,bi->b", extent, extent)
        inside = np.array([lst._complete and d2 < lst.cutoff**2 for lst, d2 in zip(lists, diagonal2)])
        # "<=" and "<" are False for NaN: such a bead goes through update(), which reports it.
        reuse = same & ((moved2 <= np.array([(0.5 * lst.skin) ** 2 for lst in lists])) | inside)
        for k in np.flatnonzero(reuse):
            if len(lists[k]._shell[0]) == 0:
                results[k] = lists[k]._core
    for k, (lst, a) in enumerate(zip(lists, structures)):
        if results[k] is None:
            results[k] = lst.update(a.positions, a.cell.array, a.pbc, a.numbers)
    return results

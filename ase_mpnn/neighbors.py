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
"""

from __future__ import annotations

import math
import threading
from typing import Sequence

import numpy as np
import vesin

__all__ = ["NeighborListError", "neighbor_list", "VerletNeighborList"]

PairList = tuple[np.ndarray, np.ndarray, np.ndarray]

# Relative tolerance below which periodic cell vectors count as linearly dependent.
_SINGULAR_TOL = 1e-10


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
) -> PairList:
    """Return ``i, j, shifts`` for all pairs closer than ``cutoff``.

    Args:
        positions: Cartesian positions, shape ``(n_atoms, 3)``.
        cell: cell vectors as rows, shape ``(3, 3)``. Rows along non-periodic
            directions are ignored and may be zero.
        pbc: periodicity along each cell vector (a bool applies to all three).
        cutoff: pair cutoff in the length unit of ``positions``.

    Returns:
        ``(i, j, shifts)`` following the module-level contract.

    Raises:
        NeighborListError: non-finite positions, a missing or singular cell in a
            periodic direction, or a non-positive cutoff.
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

    def _needs_rebuild(self, positions, cell, pbc, numbers) -> bool:
        ref = self._ref_positions
        if ref is None or ref.shape != positions.shape:
            return True
        if not (np.array_equal(cell, self._cell) and np.array_equal(pbc, self._pbc)):
            return True
        if numbers is not None and not np.array_equal(numbers, self._numbers):
            return True
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
        keep = _squared_distances(positions, i, j, offsets) < self.cutoff**2
        return (
            np.concatenate((core_i, i[keep])),
            np.concatenate((core_j, j[keep])),
            np.concatenate((core_shifts, shifts[keep])),
        )

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
        self._ref_positions = positions.copy()
        self._cell = cell.copy()
        self._pbc = pbc.copy()
        self._numbers = None if numbers is None else numbers.copy()
        self.n_builds += 1


def _squared_distances(
    positions: np.ndarray, i: np.ndarray, j: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    # np.take is markedly faster than fancy indexing for large gathers.
    vectors = np.take(positions, j, axis=0)
    vectors -= np.take(positions, i, axis=0)
    vectors += offsets
    return np.einsum("ij,ij->i", vectors, vectors)

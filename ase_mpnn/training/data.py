"""Reference data: read labelled structures, split them, batch them for training.

Structures come from any file ase.io reads (extxyz, ...) or from an ASE database
(``.db``). Labels are looked up per frame under configurable keys; a frame may lack
some of them, and each loss term then uses only the frames that have it.

Default keys (what ase.io gives): energy, forces and stress from the attached
(single-point) calculator; dipole from the calculator or ``info["dipole"]``;
polarizability from ``info["polarizability"]`` or the calculator (9 numbers or 3×3).
Stress may be given as Voigt 6-vector or 3×3; it is stored as 3×3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from ..model.graph import Graph, build_graph
from ..model.neighbors import PairList, neighbor_list
from ..model.properties import LABELS, PROPERTY_TABLE

DEFAULT_KEYS = {label: label for label in LABELS}
# Shape of one frame's label (per-atom labels have one row per atom).
_SHAPES = {label: ((-1,) if PROPERTY_TABLE[label].per_atom else ()) + PROPERTY_TABLE[label].shape
           for label in LABELS}


class DataError(ValueError):
    """Reference data that cannot be used as asked (missing file, labels or elements)."""


@dataclass
class Sample:
    """One labelled structure; ``labels`` holds only what the frame has."""

    atoms: Atoms
    labels: dict[str, np.ndarray]
    pairs: PairList | None = None  # neighbor list at the model's cutoff, filled by attach_neighbors
    weight: float = 1.0  # the frame's weight in every loss term (see set_frame_weights)
    origin: str = ""  # where the frame came from, e.g. "water.extxyz frame 17", for error messages


@dataclass
class Dataset:
    samples: list[Sample]
    source: str = ""
    keys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: Sequence[int]) -> "Dataset":
        return Dataset([self.samples[i] for i in indices], self.source, self.keys)

    def count(self, label: str) -> int:
        """How many frames have ``label``."""
        return sum(label in s.labels for s in self.samples)

    @property
    def elements(self) -> list[int]:
        return sorted({int(z) for s in self.samples for z in s.atoms.numbers})

    def set_frame_weights(self, key: str, weights: dict[str, float]) -> None:
        """Weight each frame's loss terms by ``weights[atoms.info[key]]`` (others: 1).

        E.g. ``key="sampling"``, ``weights={"normal-modes": 5}`` makes frames near a
        minimum count five times as much as MD frames (MACE calls this a config-type
        weight). A value in ``weights`` that no frame carries is an error: it is
        almost always a typo that would silently leave every weight at 1.
        """
        found = set()
        for s in self.samples:
            value = s.atoms.info.get(key)
            s.weight = 1.0
            if value is not None and str(value) in weights:
                s.weight = float(weights[str(value)])
                found.add(str(value))
        missing = sorted(set(weights) - found)
        if missing:
            seen = sorted({str(s.atoms.info[key]) for s in self.samples if key in s.atoms.info})
            raise DataError(f"{self.source}: no frame has info[{key!r}] in {missing} "
                            f"(values present: {seen or 'none'})")

    def attach_neighbors(self, cutoff: float, min_distance: float = 0.1) -> None:
        """Compute each frame's neighbor list once (positions never change in training).

        A frame with two atoms closer than ``min_distance`` (Å) is refused here, naming
        its file and frame, rather than mid-training by its place in a shuffled batch.
        """
        for k, s in enumerate(self.samples):
            a = s.atoms
            s.pairs = neighbor_list(a.positions, a.cell.array, a.pbc, cutoff)
            distances = _pair_distances(a, s.pairs)
            if len(distances) and distances.min() < min_distance:
                m = int(np.argmin(distances))
                i, j = int(s.pairs[0][m]), int(s.pairs[1][m])
                raise DataError(
                    f"{s.origin or f'{self.source} frame {k}'}: atoms {i} ({a[i].symbol}) and {j} ({a[j].symbol}) "
                    f"are {distances[m]:.3g} Å apart (less than {min_distance:g} Å): overlapping atoms make no "
                    "physical sense as training data; fix or remove that frame"
                )

    def shortest_pair_distances(self) -> dict[str, float]:
        """Shortest distance (Å) of each element pair within the cutoff over all frames, by ``pair_key``.

        Needs :meth:`attach_neighbors` first. Models record it (``training_min_distances``)
        and refuse structures with pairs far closer than anything in their training data.
        """
        from ..model.potential import pair_key

        shortest: dict[str, float] = {}
        for s in self.samples:
            if s.pairs is None:
                raise DataError("shortest_pair_distances needs the neighbor lists: call attach_neighbors first")
            distances = _pair_distances(s.atoms, s.pairs)
            numbers = s.atoms.numbers
            zi, zj = numbers[s.pairs[0]], numbers[s.pairs[1]]
            for a, b in {(min(x, y), max(x, y)) for x, y in zip(zi.tolist(), zj.tolist())}:
                mask = ((zi == a) & (zj == b)) | ((zi == b) & (zj == a))
                key = pair_key(a, b)
                shortest[key] = min(shortest.get(key, np.inf), float(distances[mask].min()))
        return shortest


def _pair_distances(atoms: Atoms, pairs: PairList) -> np.ndarray:
    i, j, shifts = pairs
    vectors = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
    return np.linalg.norm(vectors, axis=1)


def _lookup(atoms: Atoms, key: str) -> np.ndarray | None:
    """A label from the calculator's results or from info/arrays, None if absent."""
    results = atoms.calc.results if atoms.calc is not None else {}
    for source in (results, atoms.info, atoms.arrays):
        if key in source and source[key] is not None:
            return np.asarray(source[key], dtype=np.float64)
    return None


def _shaped(label: str, value: np.ndarray, atoms: Atoms, where: str) -> np.ndarray:
    if label == "stress" and value.shape == (6,):
        value = voigt_6_to_full_3x3_stress(value)
    elif label == "polarizability" and value.shape == (9,):
        value = value.reshape(3, 3)
    shape = _SHAPES[label]
    expected = (len(atoms), 3) if label == "forces" else shape
    if value.shape != expected:
        raise DataError(f"{where}: {label} has shape {value.shape}, expected {expected}")
    if not np.isfinite(value).all():
        raise DataError(f"{where}: {label} contains NaN or infinite values")
    return value


def read_dataset(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    keys: dict[str, str] | None = None,
    index: str = ":",
) -> Dataset:
    """Read labelled structures from ase.io files or ASE databases (``*.db``).

    ``path`` is one file or a list of files, read in order and concatenated (frame
    k of the result counts across the files). ``keys`` maps our labels (energy,
    forces, stress, dipole, polarizability) to the names used in the files; unknown
    labels are an error.
    """
    if not isinstance(path, (str, os.PathLike)):
        paths = list(path)
        if not paths:
            raise DataError("no data files given")
        parts = [read_dataset(p, keys, index) for p in paths]
        samples = [s for part in parts for s in part.samples]
        return Dataset(samples, " + ".join(part.source for part in parts), parts[0].keys)

    import ase.db
    import ase.io

    path = Path(path)
    keys = {**DEFAULT_KEYS, **(keys or {})}
    unknown = set(keys) - set(LABELS)
    if unknown:
        raise DataError(f"unknown label(s) {sorted(unknown)} in keys; labels are {list(LABELS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        if path.suffix == ".db":
            frames = [row.toatoms(add_additional_information=True) for row in ase.db.connect(path).select()]
            for atoms in frames:  # ASE db keeps extra key-value pairs under info["key_value_pairs"]
                atoms.info.update(atoms.info.pop("key_value_pairs", {}))
                atoms.info.update(atoms.info.pop("data", {}))
        else:
            frames = ase.io.read(path, index)
    except Exception as err:  # ase raises many types for unreadable files
        raise DataError(f"{path}: cannot read structures ({type(err).__name__}: {err})") from None
    if isinstance(frames, Atoms):
        frames = [frames]
    if not frames:
        raise DataError(f"{path}: no structures in the file")
    samples = []
    for k, atoms in enumerate(frames):
        labels = {}
        for label, key in keys.items():
            value = _lookup(atoms, key)
            if value is not None:
                labels[label] = _shaped(label, value, atoms, f"{path} frame {k}")
        samples.append(Sample(atoms, labels, origin=f"{path} frame {k}"))
    return Dataset(samples, str(path), keys)


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Shuffle 0..n-1 with ``seed`` and cut into train/validation/test parts by ``fractions``."""
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise DataError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    parts = np.split(order, bounds)
    for name, part, fraction in zip(("training", "validation"), parts, fractions):  # the test split may be empty
        if len(part) == 0:
            needed = 1 / n if n else 1
            raise DataError(
                f"the {name} split is empty: its fraction {fraction:g} of {n} structures rounds to 0 "
                f"(split {list(fractions)}). Training needs at least one {name} structure: give it a fraction of "
                f"at least {needed:.2g} in 'split', e.g. [0.8, 0.1, 0.1], or add data"
            )
    return [np.sort(p) for p in parts]


def fit_atomic_energies(dataset: Dataset, species: Sequence[int]) -> np.ndarray:
    """Per-element reference energies E0 by least squares: E ≈ Σ_Z n_Z E0[Z].

    With a single composition (e.g. only water) the system is underdetermined; the
    minimum-norm solution still reproduces the mean energy exactly.
    """
    rows = [s for s in dataset.samples if "energy" in s.labels]
    if not rows:
        return np.zeros(len(species))
    counts = np.array([[np.count_nonzero(s.atoms.numbers == z) for z in species] for s in rows], float)
    energies = np.array([float(s.labels["energy"]) for s in rows])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return solution


@dataclass
class Batch:
    """A batched graph with stacked labels and, per label, which structures have it."""

    graph: Graph
    labels: dict[str, torch.Tensor]  # per graph (energy, stress, dipole, polarizability) or per atom (forces)
    masks: dict[str, torch.Tensor]  # (n_graphs,) bool: the structure has this label
    n_atoms: torch.Tensor  # (n_graphs,) atoms per structure
    weights: torch.Tensor | None = None  # (n_graphs,) float64 frame weights in the loss


def make_batch(samples: Sequence[Sample], cutoff: float, dtype: torch.dtype, device: str | torch.device) -> Batch:
    """Batch samples; missing labels are zero-filled and masked out."""
    structures = [s.atoms for s in samples]
    pairs = [s.pairs for s in samples] if all(s.pairs is not None for s in samples) else None
    graph = build_graph(structures, cutoff, pairs, dtype=dtype, device=device)
    labels, masks = {}, {}
    for label in LABELS:
        have = [label in s.labels for s in samples]
        if not any(have):
            continue
        if label == "forces":
            values = [s.labels[label] if h else np.zeros((len(s.atoms), 3)) for s, h in zip(samples, have)]
            stacked = np.concatenate(values)
        else:
            values = [s.labels[label] if h else np.zeros(_SHAPES[label]) for s, h in zip(samples, have)]
            stacked = np.stack(values)
        labels[label] = torch.as_tensor(stacked, dtype=torch.float64, device=device)
        masks[label] = torch.as_tensor(have, device=device)
    n_atoms = torch.as_tensor([len(a) for a in structures], device=device)
    weights = torch.as_tensor([s.weight for s in samples], dtype=torch.float64, device=device)
    return Batch(graph, labels, masks, n_atoms, weights)


def iterate_batches(
    dataset: Dataset, batch_size: int, rng: np.random.Generator | None = None
) -> Iterator[list[Sample]]:
    """Mini-batches of samples, shuffled by ``rng`` when given."""
    order = np.arange(len(dataset)) if rng is None else rng.permutation(len(dataset))
    for start in range(0, len(order), batch_size):
        yield [dataset.samples[i] for i in order[start : start + batch_size]]

"""Dipoles and polarizabilities of a whole trajectory from a model, in batches.

:func:`predict_series` evaluates one system along many frames (positions (n, N, 3), or
(n, P, N, 3) for ring-polymer beads, which are averaged over P) with the model of an
:class:`~ase_mpnn.MPNNCalculator`: many frames go into one graph and one forward pass,
as ``MPNNCalculator.predict`` does, without autograd (no forces are needed).

Why not ``calc.predict`` itself: it takes ``Atoms`` and keeps a Verlet neighbor list per
structure, which for a small molecule costs about as much as the model (≈ 30 µs per
water frame, against ≈ 50 µs of model time in a batch). Here all frames share the atomic
numbers, so the batched graph is assembled from arrays in a few vectorised calls: pairs of
a small non-periodic molecule come from one distance computation over the whole batch,
periodic frames from vesin (:func:`ase_mpnn.model.neighbors.neighbor_list`) frame by frame.
The graph is the one ``build_graph`` would make (same edges, order aside), so results
equal ``calc.predict`` to round-off (tested).

Batch size. A batch holds at most ``max_edges`` edges (the model's memory grows with
edges) and at most ``batch_size`` frames; the first batch measures edges per frame and
later ones adapt. The default edge budget depends on the device. On a CPU the cost per
frame is lowest while a batch's tensors stay in the processor's caches: PaiNN 128×3,
float32, one thread of this 2-core machine (measured while another job shared it, so
indicative): 0.09 ms per water-molecule frame at 64–256 frames per pass (400–1,500 edges),
0.17 ms at 2,048; the 192-atom water box (10,500 edges per frame) 131 ms per frame one at a
time, 205 ms in batches of four. Hence :data:`DEFAULT_MAX_EDGES_CPU`. A GPU wants large
batches: :data:`DEFAULT_MAX_EDGES_GPU` bounds the memory there (≈ 0.4 GB for PaiNN 64×3).

Cache. With ``cache_dir``, predictions are stored in ``cache_dir/NAME.KEY.npz``, KEY a
hash of the exact inputs (atomic numbers, positions, cells, pbc, total charge) and of the
model (weights, configuration, dtype). A second spectrum of the same trajectory with the
same model reads them back instead of predicting again; a changed trajectory or model
misses the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from ase.data import chemical_symbols

from ..atomic_file import atomic_write
from ..calculator import MPNNCalculator, torch_threads
from ..model.graph import Graph
from ..model.neighbors import neighbor_list
from ..model.potential import AtomisticModel, InputError

__all__ = ["DEFAULT_MAX_EDGES_CPU", "DEFAULT_MAX_EDGES_GPU", "PREDICTABLE", "as_calculator", "check_elements",
           "model_fingerprint", "predict_series"]

#: Properties this module predicts.
PREDICTABLE = ("dipole", "polarizability")
#: Default edges per batch on a CPU (cache-sized batches are the fastest per frame).
DEFAULT_MAX_EDGES_CPU = 1_500
#: Default edges per batch on other devices: a memory bound (PaiNN 64×3, float32: ≈ 0.4 GB).
DEFAULT_MAX_EDGES_GPU = 200_000
#: Default frame bound of one batch.
DEFAULT_BATCH_FRAMES = 2048
# Molecules up to this size get their pairs from one all-pairs distance computation.
_ALL_PAIRS_ATOMS = 64
_CACHE_VERSION = 1


def as_calculator(model: Any, device: str | torch.device = "cpu",
                  dtype: str | torch.dtype | None = None) -> MPNNCalculator:
    """An :class:`MPNNCalculator` for ``model``: a model file, an ``AtomisticModel`` or a calculator.

    ``dtype`` ("float32", "float64" or a torch dtype; None: float32 for a file, the
    model's own for an object) and ``device`` apply to files and model objects; a
    calculator is used as it is.
    """
    if isinstance(model, MPNNCalculator):
        return model
    if isinstance(dtype, str):
        try:
            dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        except KeyError:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if isinstance(model, (str, os.PathLike, AtomisticModel)):
        return MPNNCalculator(model, device=device, dtype=dtype)
    raise TypeError(f"model must be a model file, an AtomisticModel or an MPNNCalculator, got {type(model).__name__}")


def check_elements(calc: MPNNCalculator, numbers: np.ndarray, source: str = "trajectory", model_name: str = "") -> None:
    """ValueError naming the elements of ``numbers`` that the model was not trained on."""
    missing = sorted(set(int(z) for z in numbers) - set(int(z) for z in calc.model.species))
    if missing:
        names = ", ".join(chemical_symbols[z] for z in missing)
        raise InputError(
            f"{source} contains {names}, but the model{' ' + model_name if model_name else ''} was trained on "
            f"{', '.join(calc.model.elements)} only: predict with a model trained on every element of the "
            "trajectory, or give a trajectory that has its own dipoles/polarizabilities"
        )


def predict_series(
    positions: np.ndarray,
    numbers: np.ndarray,
    model: Any,
    properties: Sequence[str] = PREDICTABLE,
    *,
    cell: np.ndarray | None = None,
    pbc: Sequence[bool] | bool = False,
    charge: float = 0.0,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    batch_size: int | None = None,
    max_edges: int | None = None,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
    cache_name: str = "series",
    source: str = "trajectory",
    model_name: str | None = None,
) -> dict[str, np.ndarray]:
    """Predict ``properties`` ("dipole" e·Å, "polarizability" e²Å²/eV) at every frame.

    Args:
        positions: (n, N, 3) in Å, or (n, P, N, 3) for ring-polymer beads (results are
            averaged over the P beads). Periodic positions must be unwrapped already
            (:func:`~ase_mpnn.spectra.trajectories.unwrap_positions`): the dipole Σ q_i r_i
            takes them as they are.
        numbers: (N,) atomic numbers.
        model: a model file, an ``AtomisticModel`` or an ``MPNNCalculator`` (see :func:`as_calculator`).
        cell: (n, 3, 3) or (3, 3) cell vectors as rows (Å); needed where ``pbc``.
        pbc: periodicity (one bool or three).
        charge: total charge of the system (e).
        device, dtype: for a model file or object ("float64" for float64 predictions).
        batch_size: most frames (structures: frames × beads) in one forward pass (default 2048).
        max_edges: most graph edges in one forward pass (at least one frame per pass);
            None: :data:`DEFAULT_MAX_EDGES_CPU` on a CPU, else :data:`DEFAULT_MAX_EDGES_GPU`.
        progress: show a progress bar (tqdm, on stderr).
        cache_dir: directory for the prediction cache (see the module docstring); None: no cache.
        cache_name: first part of the cache file name (e.g. the trajectory's file name).
        source, model_name: named in error messages (default model name: its file).

    Returns ``{property: (n, 3) or (n, 3, 3) float64 array}``.
    """
    properties = tuple(dict.fromkeys(properties))
    unknown = set(properties) - set(PREDICTABLE)
    if unknown or not properties:
        raise ValueError(f"properties must be some of {PREDICTABLE}, got {list(properties)}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    numbers = np.asarray(numbers, dtype=np.int64)
    if positions.ndim not in (3, 4) or positions.shape[-2:] != (len(numbers), 3):
        raise ValueError(f"{source}: positions {positions.shape} do not fit {len(numbers)} atoms: expected (n, N, 3) "
                         "or, for ring-polymer beads, (n, P, N, 3)")
    n_frames = positions.shape[0]
    n_beads = positions.shape[1] if positions.ndim == 4 else 1
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if pbc.any():
        if cell is None:
            raise ValueError(f"{source}: periodic frames need their cell")
        cell = np.broadcast_to(np.asarray(cell, dtype=np.float64), (n_frames, 3, 3))
    else:
        cell = np.zeros((n_frames, 3, 3))
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_edges is not None and not max_edges >= 1:
        raise ValueError(f"max_edges must be >= 1, got {max_edges!r}")
    if model_name is None:
        model_name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else ""
    calc = as_calculator(model, device, dtype)
    check_elements(calc, numbers, source, model_name)

    cache_file, cached = None, {}
    if cache_dir is not None:
        key = _cache_key(calc, numbers, positions, cell, pbc, charge)
        os.makedirs(cache_dir, exist_ok=True)
        cache_file = os.path.join(os.fspath(cache_dir), f"{cache_name}.{key[:20]}.npz")
        cached = _read_cache(cache_file, key)
    todo = [p for p in properties if p not in cached]
    if max_edges is None:
        max_edges = DEFAULT_MAX_EDGES_CPU if calc.device.type == "cpu" else DEFAULT_MAX_EDGES_GPU
    if todo:
        flat = positions.reshape(n_frames * n_beads, len(numbers), 3)
        frame_of = np.repeat(np.arange(n_frames), n_beads)  # structure → frame (for its cell)
        values = _evaluate(calc, flat, numbers, cell, frame_of, pbc, charge, todo, batch_size or DEFAULT_BATCH_FRAMES,
                           int(max_edges), progress, source)
        for name, array in values.items():
            cached[name] = array.reshape(n_frames, n_beads, *array.shape[1:]).mean(axis=1)
        if cache_file is not None:
            _write_cache(cache_file, key, cached)
    return {p: cached[p] for p in properties}


def _evaluate(calc: MPNNCalculator, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray,
              frame_of: np.ndarray, pbc: np.ndarray, charge: float, properties: list[str], batch_frames: int,
              max_edges: int, progress: bool, source: str) -> dict[str, np.ndarray]:
    from tqdm.auto import tqdm

    n, n_atoms = positions.shape[0], positions.shape[1]
    out = {p: np.empty((n, 3) if p == "dipole" else (n, 3, 3)) for p in properties}
    pairs: Callable = _all_pairs if (not pbc.any() and n_atoms <= _ALL_PAIRS_ATOMS) else _frame_pairs
    size = 1  # the first batch measures the edges per frame: a large system must not start with many frames
    start = 0
    with tqdm(total=n, disable=not progress, unit="frame", desc="predicting") as bar:
        while start < n:
            stop = min(n, start + size)
            edge_index, shifts = pairs(positions[start:stop], cell[frame_of[start:stop]], pbc, calc.model.cutoff)
            graph = _batch_graph(positions[start:stop], numbers, cell[frame_of[start:stop]], pbc, charge,
                                 edge_index, shifts).to(device=calc.device, dtype=calc.dtype)
            try:
                with torch.no_grad(), torch_threads(calc.threads_for(graph)):
                    result = calc.model(graph, properties)
            except InputError as err:
                raise InputError(f"{source}, structures {start}-{stop - 1} (frames × beads; 'structure k' below "
                                 f"counts from {start}): {err}") from None
            for p in properties:
                out[p][start:stop] = result[p].detach().to("cpu", torch.float64).numpy()
            bar.update(stop - start)
            per_frame = max(1.0, edge_index.shape[1] / (stop - start))
            start, size = stop, int(max(1, min(batch_frames, max_edges // per_frame)))
    return out


def _all_pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
               cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges of a batch of small non-periodic frames from one (B, N, N) distance array."""
    n = positions.shape[1]
    d2 = np.einsum("bijk,bijk->bij", *(2 * [positions[:, None, :, :] - positions[:, :, None, :]]))
    d2[:, np.arange(n), np.arange(n)] = np.inf
    frame, i, j = np.nonzero(d2 < cutoff * cutoff)
    edge_index = np.stack([frame * n + i, frame * n + j])  # [receiver i, source j], as neighbor_list
    return edge_index, np.zeros((edge_index.shape[1], 3))


def _frame_pairs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                 cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges of a batch, one vesin neighbor list per frame."""
    n = positions.shape[1]
    receivers, senders, shifts = [], [], []
    for k in range(len(positions)):
        i, j, s = neighbor_list(positions[k], cell[k], pbc, cutoff)
        receivers.append(i + k * n)
        senders.append(j + k * n)
        shifts.append(s)
    return np.stack([np.concatenate(receivers), np.concatenate(senders)]), np.concatenate(shifts).astype(np.float64)


def _batch_graph(positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray, charge: float,
                 edge_index: np.ndarray, shifts: np.ndarray) -> Graph:
    """The :class:`~ase_mpnn.model.graph.Graph` ``build_graph`` makes for these frames (float64, on the CPU)."""
    b, n = positions.shape[:2]
    origin = np.array(positions[:, 0], dtype=np.float64)  # as build_graph: each frame's first atom
    return Graph(
        numbers=torch.from_numpy(np.tile(numbers, b)),
        positions=torch.from_numpy(np.ascontiguousarray((positions - origin[:, None]).reshape(b * n, 3))),
        cell=torch.from_numpy(np.array(cell, dtype=np.float64)),  # a copy: cells may be a read-only view
        pbc=torch.from_numpy(np.tile(pbc, (b, 1))),
        edge_index=torch.from_numpy(edge_index.astype(np.int64)),
        shifts=torch.from_numpy(np.ascontiguousarray(shifts, dtype=np.float64)),
        batch=torch.from_numpy(np.repeat(np.arange(b), n)),
        total_charge=torch.full((b,), float(charge), dtype=torch.float64),
        n_graphs=b,
        periodic=bool(pbc.any()),
        origin=torch.from_numpy(origin),
    )


# --- cache -----------------------------------------------------------------------------------

def _cache_key(calc: MPNNCalculator, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray,
               pbc: np.ndarray, charge: float) -> str:
    digest = hashlib.sha256()
    digest.update(f"ase_mpnn-predictions/{_CACHE_VERSION}/{charge!r}/{positions.shape}".encode())
    for array in (numbers, positions, cell, pbc):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(model_fingerprint(calc.model).encode())
    return digest.hexdigest()


def model_fingerprint(model: AtomisticModel) -> str:
    """Hash of a model's configuration, dtype and weights (what its predictions depend on)."""
    digest = hashlib.sha256(json.dumps(model.config, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


def _read_cache(path: str, key: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        return {}
    try:
        with np.load(path) as f:
            if str(f["key"]) != key:
                return {}
            return {p: f[p] for p in PREDICTABLE if p in f.files}
    except (OSError, ValueError, KeyError):  # a damaged cache file is predicted again
        return {}


def _write_cache(path: str, key: str, values: dict[str, np.ndarray]) -> None:
    # Written to a temporary file and renamed: a killed run never leaves half a cache file.
    with atomic_write(path) as f:
        np.savez(f, key=np.array(key), **values)

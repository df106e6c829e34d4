"""Errors of a model on labelled data: MAE and RMSE per property, parity plots.

Units: energy per atom eV/atom, forces eV/Å, stress eV/Å³, dipole e·Å,
polarizability e²Å²/eV (also as % of the data's mean isotropic polarizability).
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
import torch

from ..model.potential import AtomisticModel, NonFiniteResultError
from ..model.properties import ERROR_UNITS, computable, fully_periodic
from .data import LABELS, Dataset, iterate_batches, make_batch


def predict_dataset(
    model: AtomisticModel, dataset: Dataset, batch_size: int = 32
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(predictions, references) per label, over the frames that have the label.

    Energies are divided by the number of atoms.
    """
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    wanted = [label for label in LABELS if dataset.count(label)]
    if "stress" in wanted and not fully_periodic(s.atoms for s in dataset.samples if "stress" in s.labels):
        raise ValueError("stress labels on structures that are not periodic in all directions")
    properties = set(wanted) | {"energy"}
    predicted, reference = defaultdict(list), defaultdict(list)
    for samples in iterate_batches(dataset, batch_size):
        batch = make_batch(samples, model.cutoff, dtype, device)
        props = computable(properties, [s.atoms for s in samples])
        with torch.enable_grad() if {"forces", "stress"} & props else torch.no_grad():
            out = model(batch.graph, props)
        atom_graph = batch.graph.batch
        _check_finite(out, atom_graph, samples)
        for label in wanted:
            if label not in batch.labels or label not in out:
                continue
            mask = batch.masks[label]
            pred, ref = out[label].detach().double(), batch.labels[label]
            if label == "energy":
                pred, ref = pred / batch.n_atoms, ref / batch.n_atoms
            if label == "forces":
                keep = mask[atom_graph]
            else:
                keep = mask
            predicted[label].append(pred[keep].cpu().numpy())
            reference[label].append(ref[keep].cpu().numpy())
    return (
        {k: np.concatenate(v) for k, v in predicted.items()},
        {k: np.concatenate(v) for k, v in reference.items()},
    )


def _check_finite(out: dict[str, torch.Tensor], atom_graph: torch.Tensor, samples: list) -> None:
    """Refuse non-finite predictions, naming the first frame that has them: a mean over NaN
    would otherwise print as an error metric."""
    for label, value in out.items():
        bad = ~torch.isfinite(value.detach())
        if not bool(bad.any()):
            continue
        first = int(torch.nonzero(bad.reshape(bad.shape[0], -1).any(dim=1))[0])
        k = first if value.shape[0] == len(samples) else int(atom_graph[first])  # per frame or per atom
        where = samples[k].origin or samples[k].atoms.get_chemical_formula()
        raise NonFiniteResultError(
            f"the model predicts non-finite {label} for {where}: the structure is far outside the model's "
            "training data, or the weights are damaged; check that frame, or evaluate in float64")


def error_metrics(predicted: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """``{label}_mae`` and ``{label}_rmse`` over all components, plus polarizability in %."""
    metrics = {}
    for label, pred in predicted.items():
        diff = (pred - reference[label]).ravel()
        metrics[f"{label}_mae"] = float(np.abs(diff).mean())
        metrics[f"{label}_rmse"] = float(np.sqrt((diff**2).mean()))
    if "polarizability" in reference:
        mean_iso = float(np.mean(np.trace(reference["polarizability"], axis1=1, axis2=2) / 3))
        metrics["polarizability_mae_percent"] = 100 * metrics["polarizability_mae"] / abs(mean_iso)
    return metrics


def evaluate(model: AtomisticModel, dataset: Dataset, batch_size: int = 32) -> dict[str, float]:
    """MAE and RMSE of ``model`` on ``dataset`` for every label the data have."""
    return error_metrics(*predict_dataset(model, dataset, batch_size))


UNITS = ERROR_UNITS  # errors of each label: energy per atom, the rest in ASE units


def format_metrics(metrics: dict[str, float]) -> str:
    """A small table: property, MAE, RMSE, unit."""
    lines = [f"{'property':<16}{'MAE':>14}{'RMSE':>14}  unit"]
    for label in LABELS:
        if f"{label}_mae" in metrics:
            lines.append(f"{label:<16}{metrics[label + '_mae']:>14.6g}{metrics[label + '_rmse']:>14.6g}  {UNITS[label]}")
    if "polarizability_mae_percent" in metrics:
        lines.append(f"{'polarizability':<16}{metrics['polarizability_mae_percent']:>13.3f}%{'':>14}  of mean isotropic")
    return "\n".join(lines)


def parity_plot(predicted: dict[str, np.ndarray], reference: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Predicted against reference per property, saved to ``path`` (PNG); see :mod:`.training_plots`."""
    from .plots import parity_plot as draw

    draw(predicted, reference, path)

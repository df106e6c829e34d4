"""Figures of a training run: the learning curve and parity plots, as PNG files.

Both are meant to go into a talk unedited: errors in physical units, energies relative
to the data's mean (absolute totals such as −693 eV/atom hide every error), diagonal and
off-diagonal polarizability components apart (their scales differ tenfold), markers
large enough to see.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..model.properties import LABELS

# α in e²Å²/eV × 4πε₀ (14.3996 eV·Å/e²) = polarizability volume in Å³, the unit people quote.
A3_PER_E2A2_PER_EV = 14.399645

# Values are plotted in AXES units, errors shown in ERRORS units: the errors of trained
# models are meV, not eV.
AXES = {
    "energy": (1.0, "eV/atom"),
    "forces": (1.0, "eV/Å"),
    "stress": (1.0, "eV/Å³"),
    "dipole": (1.0, "e·Å"),
    "polarizability": (A3_PER_E2A2_PER_EV, "Å³"),
}
DISPLAY = {
    "energy": (1000.0, "meV/atom"),
    "forces": (1000.0, "meV/Å"),
    "stress": (1000.0, "meV/Å³"),
    "dipole": (1000.0, "me·Å"),
    "polarizability": (A3_PER_E2A2_PER_EV, "Å³"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Loss, per-property validation MAE (physical units) and learning rate against epoch.

    ``history`` rows are those of ``metrics.csv``: ``epoch``, ``lr``, ``train_loss``,
    ``val_loss``, ``train_<label>_mae`` and ``val_<label>_mae``.
    """
    if not history:
        return
    plt = _pyplot()
    epochs = np.array([row["epoch"] for row in history])
    labels = [label for label in LABELS if f"val_{label}_mae" in history[-1]]
    panels = 2 + len(labels)
    columns = min(panels, 3)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
    flat = list(axes.ravel())
    ax = flat.pop(0)
    ax.semilogy(epochs, [row["train_loss"] for row in history], label="train")
    ax.semilogy(epochs, [row["val_loss"] for row in history], label="validation (EMA)")
    ax.set(xlabel="epoch", ylabel="weighted loss", title="loss")
    ax.legend(frameon=False)
    for label in labels:
        ax = flat.pop(0)
        scale, unit = DISPLAY[label]
        for kind, style in (("train", "--"), ("val", "-")):
            values = [row.get(f"{kind}_{label}_mae", np.nan) for row in history]
            ax.semilogy(epochs, scale * np.asarray(values, dtype=float), style,
                        label="train (during epoch)" if kind == "train" else "validation (EMA)")
        ax.set(xlabel="epoch", ylabel=f"MAE ({unit})", title=f"{label} MAE")
        ax.legend(frameon=False, fontsize=8)
    ax = flat.pop(0)
    ax.semilogy(epochs, [row["lr"] for row in history], color="0.3")
    ax.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def parity_plot(predicted: dict[str, np.ndarray], reference: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Predicted against reference per property (and α diagonal/off-diagonal apart), PNG."""
    plt = _pyplot()
    panels = []
    for label in LABELS:
        if label not in predicted:
            continue
        x, y = np.asarray(reference[label], dtype=float), np.asarray(predicted[label], dtype=float)
        if label == "energy":  # relative to the data's mean: the errors, not the totals, are of interest
            offset = x.mean()
            panels.append((f"energy − mean ({offset:.2f} eV/atom)", x - offset, y - offset, label))
        elif label == "polarizability":
            diagonal = np.eye(3, dtype=bool)
            x3, y3 = x.reshape(-1, 3, 3), y.reshape(-1, 3, 3)
            panels.append(("polarizability, diagonal", x3[:, diagonal], y3[:, diagonal], label))
            panels.append(("polarizability, off-diagonal", x3[:, ~diagonal], y3[:, ~diagonal], label))
        else:
            panels.append((label + (" components" if x.ndim > 1 else ""), x, y, label))
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.0 * rows), squeeze=False)
    for ax, (title, x, y, label) in zip(axes.ravel(), panels):
        scale, unit = AXES[label]
        x, y = scale * x.ravel(), scale * y.ravel()
        ax.plot(x, y, "o", ms=4, alpha=0.45, mec="none")
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = 0.03 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.8)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        diff = y - x
        err_scale, err_unit = DISPLAY[label]
        err_scale /= scale
        ax.set_title(f"{title}\nMAE {err_scale * np.abs(diff).mean():.3g}, "
                     f"RMSE {err_scale * np.sqrt((diff ** 2).mean()):.3g} {err_unit}; n = {x.size}", fontsize=9)
        ax.set_xlabel(f"reference ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)

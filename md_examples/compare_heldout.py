"""Held-out errors of two water models on the MD frames that neither trained on.

Two models trained with different splits have different test sets; comparing their
test errors compares different frames. This evaluates both on the frames of
``data/water_b3lyp_augccpvdz.extxyz`` that are in both models' test splits (float64).
The model cards' old-against-new figures come from here:

    git show 52440d0:models/painn_water.pt > /tmp/painn_water_old.pt
    python md_examples/compare_heldout.py /tmp/painn_water_old.pt models/painn_water.pt
    git show cde8563:models/nequip_water.pt > /tmp/nequip_water_old.pt
    python md_examples/compare_heldout.py /tmp/nequip_water_old.pt models/nequip_water.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ase_mpnn import load_model, read_header
from ase_mpnn.training.data import read_dataset
from ase_mpnn.training.evaluate import error_metrics, predict_dataset

MD_DATA = Path(__file__).resolve().parents[1] / "data" / "water_b3lyp_augccpvdz.extxyz"


def md_test_frames(model_path: str, n_md: int) -> set[int]:
    """Indices of MD frames in the model's saved test split (the MD file comes first in its data)."""
    return {i for i in read_header(model_path)["metadata"]["split"]["test"] if i < n_md}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs=2, help="two model files trained on the water data")
    args = parser.parse_args()
    dataset = read_dataset(str(MD_DATA))
    common = sorted(set.intersection(*(md_test_frames(m, len(dataset)) for m in args.models)))
    frames = dataset.subset(common)
    print(f"{len(common)} MD frames in both test splits")
    print("| model | energy (meV/atom) | forces (meV/Å) | dipole (e·Å) | polarizability (% of mean isotropic) |")
    print("|---|---:|---:|---:|---:|")
    for path in args.models:
        m = error_metrics(*predict_dataset(load_model(path, dtype=torch.float64), frames))
        print(f"| {path} | {m['energy_mae'] * 1000:.3f} | {m['forces_mae'] * 1000:.2f} | {m['dipole_mae']:.6f} | "
              f"{m['polarizability_mae_percent']:.3f} |")


if __name__ == "__main__":
    main()

"""Held-out errors of water models on the MD frames that none of them trained on.

Two models trained with different splits have different test sets; comparing their
test errors compares different frames. This evaluates them on the frames of
``data/water_b3lyp_augccpvdz.extxyz`` that are in every model's test split (float64);
``--mean`` adds the mean prediction of the models after the first (a committee of seeds
against a baseline). A second table gives each model's energy error by the MD frames'
sampling temperature.
The model cards' old-against-new figures come from here:

    git show 52440d0:models/painn_water.pt > /tmp/painn_water_old.pt
    python md_examples/compare_heldout.py /tmp/painn_water_old.pt models/painn_water.pt
    git show cde8563:models/nequip_water.pt > /tmp/nequip_water_old.pt
    python md_examples/compare_heldout.py /tmp/nequip_water_old.pt models/nequip_water.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ase_mpnn import load_model, read_header
from ase_mpnn.training.data import read_dataset
from ase_mpnn.training.evaluate import error_metrics, predict_dataset
from ase_mpnn.training.train import TrainConfig, validation_loss

MD_DATA = Path(__file__).resolve().parents[1] / "data" / "water_b3lyp_augccpvdz.extxyz"


def md_test_frames(model_path: str, n_md: int) -> set[int]:
    """Indices of MD frames in the model's saved test split (the MD file comes first in its data)."""
    return {i for i in read_header(model_path)["metadata"]["split"]["test"] if i < n_md}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="two or more model files trained on the water data")
    parser.add_argument("--mean", action="store_true",
                        help="also the mean prediction of the models after the first (a committee of seeds)")
    parser.add_argument("--recipe", metavar="YAML",
                        help="also each model's validation loss (the trainer's objective with this recipe's "
                             "data, loss and frame weights) on its own validation split")
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give at least two model files")
    dataset = read_dataset(str(MD_DATA))
    common = sorted(set.intersection(*(md_test_frames(m, len(dataset)) for m in args.models)))
    frames = dataset.subset(common)
    print(f"{len(common)} MD frames in every test split")
    print("| model | energy (meV/atom) | forces (meV/Å) | dipole (e·Å) | polarizability (% of mean isotropic) |")
    print("|---|---:|---:|---:|---:|")
    predictions = []
    for path in args.models:
        predicted, reference = predict_dataset(load_model(path, dtype=torch.float64), frames)
        predictions.append(predicted)
        print_row(path, error_metrics(predicted, reference))
    if args.mean:
        mean = {k: np.mean([p[k] for p in predictions[1:]], axis=0) for k in predictions[0]}
        print_row(f"mean of the {len(predictions) - 1} models after the first", error_metrics(mean, reference))
    print_energy_by_temperature(args.models, predictions, reference, frames)
    if args.recipe:
        print_validation_losses(args.models, args.recipe)


def print_energy_by_temperature(models: list[str], predictions: list[dict], reference: dict, frames) -> None:
    """Energy MAE (meV/atom) of each model on the frames of each MD sampling temperature."""
    temperatures = np.array([s.atoms.info.get("sampling_temperature_K", np.nan) for s in frames.samples])
    kinds = sorted(t for t in set(temperatures.tolist()) if np.isfinite(t))
    if not kinds:
        return
    print()
    columns = [f"energy at {t:g} K ({(temperatures == t).sum()} frames)" for t in kinds]
    print("| model | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(kinds))
    for path, predicted in zip(models, predictions):
        error = np.abs(np.ravel(predicted["energy"]) - np.ravel(reference["energy"])) * 1000
        print(f"| {path} | " + " | ".join(f"{error[temperatures == t].mean():.3f}" for t in kinds) + " |")


def print_validation_losses(models: list[str], recipe: str) -> None:
    """What the trainer picks its best epoch by, so also what picking a seed by it would use."""
    config = TrainConfig.from_yaml(recipe)
    data = read_dataset(config.data_files(), config.keys)
    if config.frame_weights:
        data.set_frame_weights(config.frame_weight_key, {str(k): v for k, v in config.frame_weights.items()})
    print()
    print("| model | validation loss | validation split seed |")
    print("|---|---:|---:|")
    for path in models:
        split = read_header(path)["metadata"]["split"]
        frames = data.subset(split["validation"])
        predicted, reference = predict_dataset(load_model(path, dtype=torch.float64), frames)
        print(f"| {path} | {validation_loss(predicted, reference, config.loss_weights, frames):.5f} | {split['seed']} |")


def print_row(name: str, m: dict) -> None:
    print(f"| {name} | {m['energy_mae'] * 1000:.3f} | {m['forces_mae'] * 1000:.2f} | {m['dipole_mae']:.6f} | "
          f"{m['polarizability_mae_percent']:.3f} |")


if __name__ == "__main__":
    main()

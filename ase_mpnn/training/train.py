"""Training: weighted losses, AdamW, schedules, EMA, checkpoints that resume exactly.

    config = TrainConfig(data="water.extxyz", output="painn_water.pt", architecture="painn")
    model = train(config)          # or: ase-mpnn train config.yaml

``metrics.csv`` gets one row per epoch: learning rate, losses, and MAE and RMSE per
property on the training batches (as the epoch went) and on the validation set (EMA
weights, after the epoch).

The saved model is the EMA of the weights at the epoch with the best validation loss
(``keep: best``) or at the last epoch (``keep: last``, for a fine-tuning run whose
validation set is dominated by frames it is not meant to improve).

Losses (each over the frames that have the label, weights in ``loss_weights``):
energy per atom, force components, stress, dipole and polarizability components, all
mean squared errors; with ``frame_weights`` each frame's errors count by its weight
(a weighted mean, so equal weights give the plain one).

Every epoch writes ``workdir/checkpoint.pt`` (model, EMA, optimizer, scheduler, RNG,
epoch, history) atomically, so a killed run loses at most the epoch in progress;
running the same command again resumes exactly where the checkpoint left off. The
checkpoint also stores the settings that shape the result (:func:`training_settings`:
the config, less where outputs go and when to stop, and the size and SHA-256 of each
data file); resuming with other settings is refused with a list of the differences.
``train(config, fresh=True)`` (``ase-mpnn train --fresh``) discards the checkpoint.

Data parallel: under ``torchrun --nproc_per_node N``, every rank takes its share of each
batch and gradients are averaged over ranks (torch.distributed, gloo on CPU, nccl on
GPU), which gives the same steps as one process with the same total batch.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ase.data import chemical_symbols
from ase.symbols import symbols2numbers
from tqdm import tqdm

from ..atomic_file import atomic_write
from ..checks import check_device
from ..model.io import load_model, read_header, save_model, without_legacy_buffers
from ..model.potential import AtomisticModel
from ..model.properties import computable
from ..model.zoo import build_model
from ..output_paths import check_outputs
from ..resume import CheckpointError, check_settings, file_fingerprint, plain_settings
from ..rng_state import restore_rng, rng_state_json
from .config_checks import check_training_numbers
from .data import (
    LABELS,
    DataError,
    Dataset,
    fit_atomic_energies,
    iterate_batches,
    make_batch,
    read_dataset,
    split_indices,
)
from .evaluate import error_metrics, format_metrics, predict_dataset
from .label_outliers import check_label_outliers

DTYPES = {"float32": torch.float32, "float64": torch.float64}


PLOT_INTERVAL_S = 30.0  # learning_curve.png is redrawn after an epoch when this much time has passed


@dataclass
class TrainConfig:
    """Everything a training run needs; ``ase-mpnn train`` reads it from YAML."""

    data: str | list  # extxyz (or any ase.io format) or ASE .db file, or a list of them (concatenated)
    output: str = "model.pt"
    workdir: str | None = None  # checkpoints, metrics.csv, plots; default: OUTPUT without suffix + ".run"
    architecture: str = "painn"
    species: list | None = None  # elements; default: those in the data
    cutoff: float = 5.0
    hyperparameters: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)  # label -> key in the data file
    split: list = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train, validation, test
    seed: int = 0  # initial weights and batch order; also the split unless split_seed is given
    split_seed: int | None = None  # shuffles the train/validation/test split (default: seed)
    batch_size: int = 16
    max_epochs: int = 200
    max_minutes: float | None = None  # stop after this wall time (the model is still saved)
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "plateau"  # "plateau" (reduce on plateau) or "cosine" (with warm-up)
    warmup_epochs: int = 0
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 1e-6
    ema_decay: float = 0.99  # 0 disables the moving average
    clip_grad_norm: float = 10.0
    early_stopping_patience: int = 50
    loss_weights: dict = field(default_factory=lambda: {"energy": 1.0, "forces": 1.0})
    init_from: str | None = None  # start from this model file's weights (fine-tuning; same architecture)
    keep: str = "best"  # save the EMA weights of the "best" validation epoch, or of the "last" one
    frame_weight_key: str = "config_type"  # info key whose value selects a frame's weight
    frame_weights: dict = field(default_factory=dict)  # value of that key -> weight (others 1)
    dtype: str = "float32"
    device: str = "cpu"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(names)}")
        if "data" not in values:
            raise ValueError("the config needs 'data': the path of the training data")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "TrainConfig":
        import yaml

        with open(path) as f:
            try:
                values = yaml.safe_load(f) or {}
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
                problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                raise ValueError(f"{path}{where}: not valid YAML ({problem}); "
                                 "see models/recipes/ for configs that work") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of config keys")
        config = cls.from_dict(values)
        base = Path(path).parent  # relative paths in the config are relative to it
        config.data = (str(base / config.data) if isinstance(config.data, str)
                       else [str(base / p) for p in config.data])
        config.output = str(base / config.output)
        if config.workdir is not None:
            config.workdir = str(base / config.workdir)
        if config.init_from is not None:
            config.init_from = str(base / config.init_from)
        return config

    def validate(self) -> None:
        """Refuse unknown names and numbers out of range (see :mod:`ase_mpnn.training.config_checks`)."""
        check_training_numbers(self)
        unknown = set(self.loss_weights) - set(LABELS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; labels are {list(LABELS)}")
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"schedule must be 'plateau' or 'cosine', got {self.schedule!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        for value, weight in self.frame_weights.items():
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
                raise ValueError(f"frame_weights.{value} must be a positive number, got {weight!r}")

    @property
    def data_split_seed(self) -> int:
        """The seed of the split: ``split_seed``, or ``seed`` when that is not given."""
        return self.seed if self.split_seed is None else self.split_seed

    @property
    def run_dir(self) -> Path:
        return Path(self.workdir) if self.workdir else Path(self.output).with_suffix(".run")

    def written_files(self) -> dict[str, Path]:
        """The files a run writes, by name (checked against its inputs before it starts)."""
        return {"output model": Path(self.output), "checkpoint": self.run_dir / "checkpoint.pt",
                "metrics": self.run_dir / "metrics.csv", "learning curve": self.run_dir / "learning_curve.png"}

    def data_files(self) -> list[str]:
        """``data`` as a list of paths."""
        return [self.data] if isinstance(self.data, (str, os.PathLike)) else list(self.data)


# Config keys that do not change the trained model (where outputs go, which device) or
# only say when to stop: a resumed run may change them. Under the plateau schedule
# max_epochs is such a key too (the cosine schedule is shaped by it).
_NOT_RESULT_SHAPING = ("output", "workdir", "device", "max_minutes", "early_stopping_patience", "keep",
                       "data", "init_from")


def training_settings(config: TrainConfig) -> dict[str, Any]:
    """What shapes a training run's result: the config without the keys that do not, and
    the content (size and SHA-256) of each data file and of ``init_from``. Stored in the
    checkpoint and compared when the run resumes."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_RESULT_SHAPING}
    if config.split_seed is None:  # runs from before the option compare equal
        del settings["split_seed"]
    if config.schedule != "cosine":
        del settings["max_epochs"]
    settings["data files"] = [file_fingerprint(p) for p in config.data_files()]
    if config.init_from:
        settings["init_from file"] = file_fingerprint(config.init_from)
    return plain_settings(settings)


# -------------------------------------------------------------------------- losses ---


def residuals(out: dict[str, torch.Tensor], batch, labels) -> dict[str, torch.Tensor]:
    """Prediction − reference per label, over the structures that have it (energy per atom)."""
    result = {}
    for label in labels:
        if label not in batch.labels or label not in out:
            continue
        mask = batch.masks[label]
        pred, ref = out[label].double(), batch.labels[label]
        if label == "energy":
            pred, ref = pred / batch.n_atoms, ref / batch.n_atoms
        if label == "forces":
            mask = mask[batch.graph.batch]
        if bool(mask.any()):
            result[label] = pred[mask] - ref[mask]
    return result


def mean_squared(errors: dict[str, torch.Tensor], batch) -> dict[str, torch.Tensor]:
    """Per label, the frame-weighted mean of the squared errors of :func:`residuals`.

    Each row of an error tensor belongs to one frame (one atom's force row to its
    frame); rows count by their frame's weight, the components of a row equally.
    """
    terms = {}
    for label, d in errors.items():
        rows = d.reshape(d.shape[0], -1).pow(2).mean(dim=1)
        mask = batch.masks[label]
        w = batch.weights
        if label == "forces":
            mask, w = mask[batch.graph.batch], w[batch.graph.batch]
        w = w[mask]
        terms[label] = (w * rows).sum() / w.sum()
    return terms


def weighted_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    return sum(weights[k] * v for k, v in terms.items())


def validation_loss(predicted: dict, reference: dict, weights: dict[str, float],
                    dataset: Dataset | None = None) -> float:
    """The training objective on ``predict_dataset`` output: with ``dataset``, rows count
    by their frame's weight as in :func:`mean_squared` (so the best epoch is chosen by
    the loss that is trained, not by a few unweighted outliers)."""
    total = 0.0
    for k, w in weights.items():
        if not w or k not in predicted:
            continue
        rows = ((predicted[k] - reference[k]) ** 2).reshape(len(predicted[k]), -1).mean(axis=1)
        row_weights = _row_weights(dataset, k) if dataset is not None else np.ones(len(rows))
        total += w * float(np.sum(row_weights * rows) / np.sum(row_weights))
    return total


def _row_weights(dataset: Dataset, label: str) -> np.ndarray:
    """Frame weights per row of ``predict_dataset``'s arrays for ``label`` (same order)."""
    rows = [np.full(len(s.atoms) if label == "forces" else 1, s.weight)
            for s in dataset.samples if label in s.labels]
    return np.concatenate(rows)


# ----------------------------------------------------------------------- the loop ---


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _schedule(optimizer, config: TrainConfig):
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.min_lr
        )
    floor = config.min_lr / config.lr

    def factor(epoch: int) -> float:
        if epoch < config.warmup_epochs:
            return (epoch + 1) / (config.warmup_epochs + 1)
        progress = (epoch - config.warmup_epochs) / max(1, config.max_epochs - config.warmup_epochs)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def prepare(config: TrainConfig) -> tuple[Dataset, list[np.ndarray], list[int]]:
    """Read and check the data before anything is trained: clear errors come first."""
    config.validate()
    check_device(config.device)
    check_outputs(inputs={"data": config.data_files(), "init_from": config.init_from},
                  outputs=config.written_files())
    if config.run_dir.exists() and not config.run_dir.is_dir():
        raise ValueError(f"the workdir {config.run_dir} is a file: give 'workdir' a directory path")
    dataset = read_dataset(config.data, config.keys)
    check_label_outliers(dataset)
    for label, weight in config.loss_weights.items():
        if weight and dataset.count(label) == 0:
            raise DataError(
                f"{dataset.source}: the loss asks for {label} (weight {weight}) but no frame has it; "
                f"set loss_weights.{label}: 0 or map its key with keys.{label}"
            )
    species = sorted(set(symbols2numbers(config.species or dataset.elements)))
    missing = sorted(set(dataset.elements) - set(species))
    if missing:
        raise DataError(
            f"{dataset.source}: element(s) {[chemical_symbols[z] for z in missing]} are in the data but not in "
            f"species {[chemical_symbols[z] for z in species]}"
        )
    if config.frame_weights:
        dataset.set_frame_weights(config.frame_weight_key, {str(k): v for k, v in config.frame_weights.items()})
    splits = split_indices(len(dataset), config.split, config.data_split_seed)
    dataset.attach_neighbors(config.cutoff, config.hyperparameters.get("min_distance", 0.1))
    return dataset, splits, species


def _initial_model(config: TrainConfig, train_set: Dataset, species: list[int]) -> AtomisticModel:
    torch.manual_seed(config.seed)
    if config.init_from:  # the start model's elements stay, whether or not the new data have them
        species = sorted(set(species) | set(read_header(config.init_from)["config"]["species"]))
    model = build_model(config.architecture, species, cutoff=config.cutoff, **config.hyperparameters)
    if config.init_from:
        return _fine_tuning_start(config, model, train_set)
    e0 = fit_atomic_energies(train_set, model.species)
    forces = [s.labels["forces"] for s in train_set.samples if "forces" in s.labels]
    if forces:  # interaction energies scaled so initial forces have the data's size
        scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    else:
        residual = [
            (float(s.labels["energy"]) - sum(e0[model.species.index(int(z))] for z in s.atoms.numbers)) / len(s.atoms)
            for s in train_set.samples if "energy" in s.labels
        ]
        scale = float(np.std(residual)) if len(residual) > 1 else 1.0
    with torch.no_grad():
        model.atomic_energies.copy_(torch.as_tensor(e0))
        model.energy_scale.fill_(scale if scale > 0 else 1.0)
    return model.to(device=config.device, dtype=DTYPES[config.dtype])


def merge_min_distances(*records: dict[str, float] | None) -> dict[str, float]:
    """Per element pair, the shortest distance of any of the records (None: no record)."""
    merged: dict[str, float] = {}
    for record in records:
        for key, value in (record or {}).items():
            merged[key] = min(merged.get(key, value), value)
    return merged


def _fine_tuning_start(config: TrainConfig, model: AtomisticModel, train_set: Dataset) -> AtomisticModel:
    """``model`` with the weights, reference energies and scale of ``config.init_from``.

    The file must hold the same architecture, hyperparameters and cutoff as the config
    describes. The config may add elements (``species``, or new ones in the data): their
    rows of the per-element tensors (embeddings, reference energies) start fresh, every
    other weight is the file's, and the new elements' reference energies are fitted by
    least squares to what the start model leaves unexplained of the training energies.
    """
    start = load_model(config.init_from, dtype=torch.float64)
    mine, theirs = model.config, start.config
    different = sorted(k for k in ("architecture", "cutoff", "hyperparameters") if mine.get(k) != theirs.get(k))
    if different:
        details = "; ".join(f"{k}: config {mine.get(k)!r}, file {theirs.get(k)!r}" for k in different)
        raise ValueError(f"init_from {config.init_from}: the model differs from the config ({details}); "
                         "set the config's architecture, hyperparameters and cutoff to the file's")
    old, new = list(start.species), list(model.species)
    model = model.to(torch.float64)
    _copy_weights(start, model, config.init_from)
    added = [z for z in new if z not in old]
    if added:
        _fit_new_reference_energies(model, train_set, added)
    model.set_training_min_distances(start.training_min_distances)
    return model.to(device=config.device, dtype=DTYPES[config.dtype])


def _copy_weights(start: AtomisticModel, model: AtomisticModel, source: str) -> None:
    """Every tensor of ``start`` into ``model``; per-element tensors (elements on the first
    axis) row by row, so elements new to ``model`` keep their fresh rows."""
    rows = [list(start.species).index(z) if z in start.species else None for z in model.species]
    theirs = start.state_dict()
    with torch.no_grad():
        for name, target in model.state_dict().items():
            if name == "species_index":  # the element lookup table is the new model's own
                continue
            source_tensor = theirs.get(name)
            if source_tensor is not None and source_tensor.shape == target.shape:
                target.copy_(source_tensor)
            elif (source_tensor is not None and source_tensor.ndim >= 1
                  and source_tensor.shape[1:] == target.shape[1:]
                  and source_tensor.shape[0] == len(start.species) and target.shape[0] == len(model.species)):
                for i, r in enumerate(rows):
                    if r is not None:
                        target[i] = source_tensor[r]
            else:
                raise ValueError(
                    f"init_from {source}: cannot carry {name} over to the new elements "
                    f"({model.config['architecture']} ties it to the element list in another way); add elements "
                    "by fine-tuning a painn, schnet, so3net, nequip or egnn model, or train this one from scratch")


def _fit_new_reference_energies(model: AtomisticModel, train_set: Dataset, added: list[int]) -> None:
    """Least-squares reference energies of the ``added`` elements for the residual energies."""
    labelled = [i for i, s in enumerate(train_set.samples) if "energy" in s.labels]
    if not labelled:
        return
    rows = [train_set.samples[i] for i in labelled]
    columns = [list(model.species).index(z) for z in added]
    with torch.no_grad():
        model.atomic_energies[columns] = 0.0
    predicted, _ = predict_dataset(model, train_set.subset(labelled))
    n_atoms = np.array([len(s.atoms) for s in rows])
    residual = np.array([float(s.labels["energy"]) for s in rows]) - predicted["energy"] * n_atoms
    counts = np.array([[np.count_nonzero(s.atoms.numbers == z) for z in added] for s in rows], float)
    solution, *_ = np.linalg.lstsq(counts, residual, rcond=None)
    with torch.no_grad():
        model.atomic_energies[columns] = torch.as_tensor(solution, dtype=model.atomic_energies.dtype)


def train(config: TrainConfig, progress: bool = True, fresh: bool = False) -> AtomisticModel:
    """Train (or resume) as ``config`` says; returns the best EMA model, also saved to ``config.output``.

    An existing ``workdir/checkpoint.pt`` is resumed when its settings are the config's
    (:func:`training_settings`; otherwise :class:`~ase_mpnn.resume.CheckpointError`
    lists the differences); ``fresh=True`` discards it and trains from the start.
    """
    rank, world = _distributed()
    dataset, (train_idx, val_idx, *rest), species = prepare(config)
    train_set, val_set = dataset.subset(train_idx), dataset.subset(val_idx)
    run_dir = config.run_dir
    checkpoint_path = run_dir / "checkpoint.pt"
    settings = training_settings(config)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if fresh and checkpoint_path.is_file():
            checkpoint_path.unlink()  # discarded deliberately: the run starts afresh

    model = _initial_model(config, train_set, species)
    # Structures far closer than anything in the data (and the start model's) are refused.
    model.set_training_min_distances(merge_min_distances(model.training_min_distances,
                                                         dataset.shortest_pair_distances()))
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = _schedule(optimizer, config)
    rng = np.random.default_rng(config.seed)
    state = {"epoch": 0, "best_loss": math.inf, "best_epoch": -1, "stale": 0, "history": [], "seconds": 0.0}
    best_weights = copy.deepcopy(ema.state_dict())

    if checkpoint_path.is_file() and not fresh:
        saved = _read_checkpoint(checkpoint_path, config.device)
        check_settings(json.loads(saved["settings"]) if "settings" in saved else None, settings,
                       checkpoint=checkpoint_path,
                       how_to_start_over="ase-mpnn train --fresh, or train(config, fresh=True), which discards the "
                                         "checkpoint")
        try:
            model.load_state_dict(without_legacy_buffers(saved["model"], model))
            ema.load_state_dict(without_legacy_buffers(saved["ema"], ema))
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
        except (KeyError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"{checkpoint_path} holds another model than this config builds (architecture, hyperparameters, "
                f"species or cutoff changed? {first}). Restore the config of that run, or train from the start "
                "with ase-mpnn train --fresh (train(config, fresh=True))"
            ) from None
        restore_rng(rng, saved["numpy_rng"], str(checkpoint_path))
        torch.set_rng_state(saved["torch_rng"])
        best_weights = saved["best_weights"]
        state = json.loads(saved["state"])
        if progress and rank == 0:
            print(f"resuming from {checkpoint_path} after epoch {state['epoch']}")

    weights = {k: float(w) for k, w in config.loss_weights.items() if w}
    properties = set(weights) | {"energy"}
    dtype = DTYPES[config.dtype]
    bar = tqdm(total=config.max_epochs, initial=state["epoch"], disable=not progress or rank != 0, desc="epochs")
    start_time = time.perf_counter() - state["seconds"]
    last_plot = -float("inf")  # the first epoch draws the curve
    while state["epoch"] < config.max_epochs and state["stale"] < config.early_stopping_patience:
        if config.max_minutes is not None and (time.perf_counter() - start_time) / 60 > config.max_minutes:
            break
        model.train()
        train_losses = []
        train_errors: dict[str, list[float]] = {}  # label -> [Σ|d|, Σd², count] over the epoch
        for samples in iterate_batches(train_set, config.batch_size, rng):
            shard = samples[rank::world]
            batch = make_batch(shard, config.cutoff, dtype, config.device)
            props = computable(properties, [s.atoms for s in shard])
            out = model(batch.graph, props, create_graph=True)
            errors = residuals(out, batch, weights)
            loss = weighted_loss(mean_squared(errors, batch), weights)
            for label, d in errors.items():
                d = d.detach()
                sums = train_errors.setdefault(label, [0.0, 0.0, 0])
                sums[0] += float(d.abs().sum())
                sums[1] += float(d.pow(2).sum())
                sums[2] += d.numel()
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            for p in model.parameters():  # unused heads: zero, as on every rank under torchrun
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            if world > 1:
                _average_gradients(model, world)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            optimizer.step()
            _update_ema(ema, model, config.ema_decay)
            train_losses.append(loss.item())

        predicted, reference = predict_dataset(ema, val_set)
        val_loss = validation_loss(predicted, reference, weights, val_set)
        if config.schedule == "plateau":
            scheduler.step(val_loss)
        else:
            scheduler.step()
        state["epoch"] += 1
        if val_loss < state["best_loss"]:
            state.update(best_loss=val_loss, best_epoch=state["epoch"], stale=0)
            best_weights = copy.deepcopy(ema.state_dict())
        else:
            state["stale"] += 1
        row = {"epoch": state["epoch"], "lr": optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(train_losses)),
               "val_loss": val_loss}
        for label, (abs_sum, sq_sum, count) in train_errors.items():  # during the epoch, as the weights moved
            row[f"train_{label}_mae"] = abs_sum / count
            row[f"train_{label}_rmse"] = math.sqrt(sq_sum / count)
        row.update({f"val_{k}": v for k, v in error_metrics(predicted, reference).items()})
        state["history"].append(row)
        state["seconds"] = time.perf_counter() - start_time
        if rank == 0:
            _write_checkpoint(checkpoint_path, model, ema, optimizer, scheduler, rng, best_weights, state, settings)
            _write_history(run_dir / "metrics.csv", state["history"])
            if time.perf_counter() - last_plot > PLOT_INTERVAL_S:  # drawing takes ~1 s: not every short epoch
                learning_curve(state["history"], run_dir / "learning_curve.png")
                last_plot = time.perf_counter()
        bar.update(1)
        bar.set_postfix(train=f"{row['train_loss']:.3g}", val=f"{val_loss:.3g}", lr=f"{row['lr']:.2g}")
    bar.close()

    if config.keep == "best":
        ema.load_state_dict(best_weights)
    if rank == 0:
        _finish(config, ema, dataset, train_idx, val_idx, rest[0] if rest else np.array([], int), state, progress)
    return ema


def _average_gradients(model: AtomisticModel, world: int) -> None:
    """Mean gradient over ranks, in one all-reduce."""
    params = list(model.parameters())
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def _update_ema(ema: AtomisticModel, model: AtomisticModel, decay: float) -> None:
    with torch.no_grad():
        for shadow, p in zip(ema.parameters(), model.parameters()):
            shadow.lerp_(p, 1.0 - decay)
        for shadow, b in zip(ema.buffers(), model.buffers()):
            shadow.copy_(b)


def _read_checkpoint(path: Path, device: str) -> dict[str, Any]:
    """A training checkpoint's contents, or a :class:`CheckpointError` that says what to do."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable training checkpoint (truncated or corrupt: {first}). Restore it from a copy, "
            "or train from the start with ase-mpnn train --fresh (train(config, fresh=True)), which discards it"
        ) from None
    required = {"model", "ema", "optimizer", "scheduler", "numpy_rng", "torch_rng", "best_weights", "state"}
    if not isinstance(saved, dict) or not required <= set(saved):
        raise CheckpointError(f"{path} is not a training checkpoint of ase_mpnn: give 'workdir' another directory, "
                              "or train from the start with --fresh (fresh=True), which discards it")
    return saved


def _write_checkpoint(path: Path, model, ema, optimizer, scheduler, rng, best_weights, state, settings) -> None:
    payload = {
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "numpy_rng": rng_state_json(rng),
        "torch_rng": torch.get_rng_state(),
        "best_weights": best_weights,
        "state": json.dumps(state),
        "settings": json.dumps(settings),
    }
    with atomic_write(path) as f:  # a kill never leaves a half-written checkpoint
        torch.save(payload, f)


def _write_history(path: Path, history: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in history for k in row))
    with atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(history)


def _finish(config, model, dataset, train_idx, val_idx, test_idx, state, progress) -> None:
    """Test-set metrics, the model file with its metadata, a learning-curve plot."""
    test_metrics = error_metrics(*predict_dataset(model, dataset.subset(test_idx))) if len(test_idx) else {}
    metadata = {
        "data": (os.path.basename(config.data) if isinstance(config.data, str)
                 else [os.path.basename(p) for p in config.data]),
        "split": {"train": train_idx.tolist(), "validation": val_idx.tolist(), "test": test_idx.tolist(),
                  "seed": config.data_split_seed, "fractions": list(config.split)},
        "training": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("data", "output", "workdir")},
        "epochs": state["epoch"],
        "best_epoch": state["best_epoch"],
        "training_minutes": round(state["seconds"] / 60, 2),
        "test_metrics": test_metrics,
    }
    save_model(model, config.output, metadata=metadata)
    learning_curve(state["history"], config.run_dir / "learning_curve.png")
    if progress:
        kept = (f"best epoch {state['best_epoch']}" if config.keep == "best"
                else f"last epoch; best validation at epoch {state['best_epoch']}")
        print(f"saved {config.output} ({kept} of {state['epoch']}, "
              f"{state['seconds'] / 60:.1f} min)")
        if test_metrics:
            print("test set:\n" + format_metrics(test_metrics))


def learning_curve(history: list[dict], path: Path) -> None:
    """The run's figure (loss, per-property MAE in physical units, learning rate); see :mod:`.training_plots`."""
    from .plots import learning_curve as draw

    draw(history, path)

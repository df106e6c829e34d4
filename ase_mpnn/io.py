"""Save and load models as one file that cannot run code when loaded.

A model file is a ``torch.save`` archive holding only plain data: a dict with the
format tag, the format version, the package version, the model's configuration and
free-form metadata as one JSON string, and the weights as a dict of tensors. It is
read back with ``torch.load(weights_only=True)``, whose restricted unpickler accepts
tensors and plain containers only: a file that would execute code while unpickling
is refused before anything runs.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .potential import AtomisticModel

FORMAT = "ase_mpnn.model"
FORMAT_VERSION = 1
# Hyperparameters added after files were shipped: a file without them was written by
# a version that behaved like these values, so it loads with them (and a warning when
# the old behaviour is known to be deficient).
_LEGACY_HYPERPARAMETERS = {
    "painn": {"norm_softening": 1e-4},
}
_LEGACY_WARNINGS = {
    ("painn", "norm_softening"): (
        "was written before PaiNN's smooth vector norm: it loads with the old near-corner "
        "(norm_softening=1e-4), whose potential surface has kinks at symmetric geometries "
        "(harmonic frequencies and phonons depend on the finite-difference step). "
        "Retrain it with this version for spectroscopy."
    ),
}

UNITS = {"energy": "eV", "length": "Å", "charge": "e", "dipole": "e·Å", "polarizability": "e²Å²/eV"}


class ModelFileError(ValueError):
    """A model file that cannot be used: corrupt, foreign, unsafe or from a newer version."""


def save_model(model: AtomisticModel, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (weights, configuration, units, version, ``metadata``) to ``path``.

    ``metadata`` must be JSON-serialisable (training data, metrics, ...). The file is
    written to a temporary name first and renamed, so a crash never leaves half a file.
    """
    path = Path(path)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "units": UNITS,
        "config": model.config,
        "metadata": metadata or {},
    }
    try:
        header_json = json.dumps(header)
    except TypeError as err:
        raise ValueError(f"model metadata must be JSON-serialisable: {err}") from None
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"header": header_json, "state_dict": state}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a model file (configuration, units, versions, metadata)."""
    return _read(Path(path))[0]


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> AtomisticModel:
    """Rebuild the model stored in ``path`` on ``device`` (float32 unless ``dtype`` says otherwise).

    Raises :class:`ModelFileError` naming the file if it is missing, truncated, not an
    ase_mpnn model, unsafe to unpickle, or written by an incompatible newer version.
    """
    from .zoo import build_model  # the zoo imports this package's modules

    path = Path(path)
    header, state = _read(path)
    config = header["config"]
    try:
        hyperparameters = dict(config["hyperparameters"])
        for key, value in _LEGACY_HYPERPARAMETERS.get(config["architecture"], {}).items():
            if key not in hyperparameters:
                hyperparameters[key] = value
                message = _LEGACY_WARNINGS.get((config["architecture"], key))
                if message:
                    warnings.warn(f"{path} {message}", UserWarning, stacklevel=2)
        model = build_model(
            config["architecture"],
            config["species"],
            cutoff=config["cutoff"],
            min_distance=config.get("min_distance", 0.1),
            **hyperparameters,
        )
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelFileError(f"{path}: the model in this file cannot be rebuilt ({err})") from None
    model.metadata = header.get("metadata", {})
    model.eval()
    return model.to(device=device, dtype=dtype or torch.float32)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        # Model files are torch zip archives. Anything else (text, JSON, empty, truncated)
        # would reach torch's legacy pickle reader, whose errors are obscure or misleading.
        raise ModelFileError(
            f"{path}: not a readable model file (truncated, corrupt or another format): "
            "not a PyTorch zip archive"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelFileError(
            f"{path}: refused to load: the file contains Python objects other than tensors and plain "
            f"data, which could run code when unpickled. Only load model files from sources you trust; "
            f"ase_mpnn files never contain such objects. ({str(err).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise ModelFileError(
            f"{path}: not a readable model file (truncated, corrupt or another format): {err}"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("header"), str):
        raise ModelFileError(
            f"{path}: a PyTorch file, but not an ase_mpnn model (no ase_mpnn header). "
            "Save models with ase_mpnn.save_model."
        )
    try:
        header = json.loads(payload["header"])
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: corrupt model header ({err})") from None
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an ase_mpnn model file (format {header.get('format')!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in model-file format {version} by ase_mpnn {header.get('package_version')}; "
            f"this ase_mpnn ({__version__}) reads format {FORMAT_VERSION} at most. Upgrade ase_mpnn."
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise ModelFileError(f"{path}: corrupt model file (no weights)")
    return header, state

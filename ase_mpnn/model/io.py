"""Save and load models as one file that cannot run code when loaded.

A model file is a ``torch.save`` archive holding only plain data: a dict with the
format tag, the format version, the package version, the model's configuration and
free-form metadata as one JSON string, and the weights as a dict of tensors. It is
read back with ``torch.load(weights_only=True)``, whose restricted unpickler accepts
tensors and plain containers only: a file that would execute code while unpickling
is refused before anything runs.

Integrity: the file also holds a SHA-256 checksum of the header and the weights. A file
whose bytes changed after it was written (a damaged copy, a flipped bit, an edited
header) is refused on load; files written before checksums existed still load. Header
values are checked (a JSON object, a cutoff in (0, 100] Å, valid atomic numbers, ...),
and weights that are not finite are refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic_file import atomic_write
from ..checks import check_device, check_dtype
from .potential import MAX_CUTOFF, AtomisticModel

FORMAT = "ase_mpnn.model"
FORMAT_VERSION = 1
# Hyperparameters added after files were shipped: a file without them was written by
# a version that behaved like these values, so it loads with them (and a warning when
# the old behaviour is known to be deficient).
_LEGACY_HYPERPARAMETERS = {
    "painn": {"norm_softening": 1e-4},
}
# Hyperparameters that choose a code path, not the function the model computes: the
# stored value is dropped on load so that the current default applies (older files
# stored PaiNN's former low-memory threshold of 50,000 edges).
_CODE_PATH_HYPERPARAMETERS = {
    "painn": ("low_memory_edges",),
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
    payload = {"header": header_json, "state_dict": state, "checksum": checksum(header_json, state)}
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def checksum(header_json: str, state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a model file's header text and of every weight's name, dtype, shape and bytes."""
    digest = hashlib.sha256(header_json.encode("utf-8"))
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a model file (configuration, units, versions, metadata)."""
    return _read(Path(path))[0]


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> AtomisticModel:
    """Rebuild the model stored in ``path`` on ``device`` (float32 unless ``dtype`` says otherwise).

    Raises :class:`ModelFileError` naming the file if it is missing, truncated, not an
    ase_mpnn model, unsafe to unpickle, changed since it was written (checksum), has
    invalid header values or non-finite weights, or was written by an incompatible
    newer version; ``ValueError`` for a ``device`` or ``dtype`` that cannot be used.
    """
    from .zoo import build_model  # the zoo imports this package's modules

    check_dtype(dtype)
    device = check_device(device)
    path = Path(path)
    header, state = _read(path)
    bad = non_finite_parameters_of(state)
    if bad:
        raise ModelFileError(
            f"{path}: the weights contain NaN or infinite values ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}), so every prediction would be NaN: the training run that wrote "
            "it diverged. Use another model file (or an earlier checkpoint)"
        )
    config = header["config"]
    try:
        hyperparameters = dict(config["hyperparameters"])
        for key in _CODE_PATH_HYPERPARAMETERS.get(config["architecture"], ()):
            hyperparameters.pop(key, None)
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
        model.load_state_dict(without_legacy_buffers(state, model))
        recorded = config.get("training_min_distances")
        if recorded is None and "epochs" in header.get("metadata", {}):
            recorded = {}  # trained before the record existed: covalent bond lengths stand in
        model.set_training_min_distances(recorded)
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
    if not isinstance(header, dict):
        raise ModelFileError(
            f"{path}: corrupt model header: a JSON {type(header).__name__}, not a JSON object "
            "(format, config, metadata, ...). Save models with ase_mpnn.save_model"
        )
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
    stored = payload.get("checksum")
    if stored is not None and stored != checksum(payload["header"], state):
        raise ModelFileError(
            f"{path}: checksum mismatch: the weights or the header changed after the file was written (a damaged "
            "download or copy, a disk error, or an edit). Use an intact copy of the file; to change a model, load "
            "it, change it and write it with ase_mpnn.save_model"
        )
    _check_config(path, header.get("config"))
    return header, state


def non_finite_parameters_of(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or infinity."""
    return [name for name, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_config(path: Path, config: Any) -> None:
    """Refuse header values no model was saved with, each with what was found."""
    from ase.data import chemical_symbols

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"{path}: invalid model header: {what}. The file is damaged or was edited; "
                              "use an intact copy")

    if not isinstance(config, dict):
        raise bad(f"'config' must be a JSON object, got {type(config).__name__}")
    if not isinstance(config.get("architecture"), str):
        raise bad(f"config.architecture must be a name such as 'painn', got {config.get('architecture')!r}")
    species = config.get("species")
    if (not isinstance(species, list) or not species
            or not all(isinstance(z, int) and not isinstance(z, bool) and 0 < z < len(chemical_symbols)
                       for z in species)
            or len(set(species)) != len(species)):
        raise bad(f"config.species must be distinct atomic numbers (1-{len(chemical_symbols) - 1}), got {species!r}")
    cutoff = config.get("cutoff")
    if not (_is_number(cutoff) and 0 < cutoff <= MAX_CUTOFF):
        raise bad(f"config.cutoff must be a number of Å in (0, {MAX_CUTOFF:g}], got {cutoff!r}")
    min_distance = config.get("min_distance", 0.1)
    if not (_is_number(min_distance) and 0 < min_distance < cutoff):
        raise bad(f"config.min_distance must be a number of Å above 0 and below the cutoff, got {min_distance!r}")
    if not isinstance(config.get("hyperparameters"), dict):
        raise bad(f"config.hyperparameters must be a JSON object, got {config.get('hyperparameters')!r}")


# Buffers that files written by earlier versions hold and the current modules no longer
# have: e3nn's Gate kept an element-wise tensor product (an empty weight and an output
# mask, no parameters) where the gate is now written out (nn.e3nn_utils.Gate); MACE's
# symmetric contraction held e3nn tensor products without weights (their Clebsch–Gordan
# buffers), whose nonzero couplings it now keeps as non-persistent buffers.
_LEGACY_BUFFER = re.compile(r"\.gate\.mul\.(weight|output_mask)$|\.contraction\.tps\.\d+\.")


def without_legacy_buffers(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` without the buffers of :data:`_LEGACY_BUFFER` that ``model`` does not have."""
    own = model.state_dict()
    return {key: value for key, value in state.items() if key in own or not _LEGACY_BUFFER.search(key)}

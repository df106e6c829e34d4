"""Resuming from checkpoints without silently changing the run.

A checkpoint stores, next to the state, every setting that shapes the result of the run
(time step, temperature, seed, model weights, data files, learning rate...). Resuming
compares them with the settings of the run that is about to continue it and refuses a
difference: continuing with another time step or another data set would give neither
the old run nor the new one, and nothing in the output would say so. The refusal lists
each difference (saved and now) and the two ways out: restore the settings, or start a
new run deliberately (``--restart`` / ``--fresh``).

Checkpoints written before settings were stored still resume, with a warning that the
settings could not be checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["CheckpointError", "calculator_fingerprint", "check_settings", "file_fingerprint", "plain_settings"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: unreadable, or written by a run with other settings."""


def file_fingerprint(path: str | os.PathLike) -> str:
    """Size and SHA-256 of a file's bytes: the same text for the same content, wherever it lies."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{os.path.getsize(path)} bytes, sha256 {digest.hexdigest()}"


def calculator_fingerprint(calc: Any) -> str:
    """What identifies a calculator's potential: its models' configuration and weights
    (hashed, in the dtype it computes in; every member of a committee) for
    ``MPNNCalculator``-like calculators with a ``model`` (or ``members``) attribute,
    otherwise its class and ASE ``parameters``."""
    import torch

    members = getattr(calc, "members", None)
    models = members if isinstance(members, (list, tuple)) and members else [getattr(calc, "model", None)]
    if all(isinstance(m, torch.nn.Module) for m in models):
        digest = hashlib.sha256()
        dtypes = set()
        for model in models:
            config = getattr(model, "config", None)
            digest.update(json.dumps(config, sort_keys=True, default=repr).encode())
            for name, tensor in model.state_dict().items():
                t = tensor.detach().cpu().contiguous()
                dtypes.add(str(t.dtype).replace("torch.", ""))
                digest.update(name.encode())
                digest.update(str(t.dtype).encode())
                digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        config = getattr(models[0], "config", None)
        architecture = config.get("architecture", type(models[0]).__name__) if isinstance(config, dict) else ""
        what = f"committee of {len(models)} {architecture} models" if len(models) > 1 else f"{architecture} model"
        return (f"{type(calc).__name__} {what}, weights sha256 {digest.hexdigest()[:16]} "
                f"({'/'.join(sorted(dtypes))})")
    parameters = getattr(calc, "parameters", None) or {}
    try:
        text = json.dumps(dict(parameters), sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(parameters)
    return f"{type(calc).__name__} {text}"


def plain_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(dict(settings), default=repr))


def _same(saved: Any, now: Any) -> bool:
    numbers = (int, float)
    if isinstance(saved, bool) or isinstance(now, bool):
        return type(saved) is type(now) and saved == now
    if isinstance(saved, numbers) and isinstance(now, numbers):
        # Unit conversions (K -> eV -> K, fs -> ASE time -> fs) may change the last bit.
        return math.isclose(saved, now, rel_tol=1e-12, abs_tol=0.0) or saved == now
    if isinstance(saved, list) and isinstance(now, list):
        return len(saved) == len(now) and all(_same(a, b) for a, b in zip(saved, now))
    if isinstance(saved, dict) and isinstance(now, dict):
        return saved.keys() == now.keys() and all(_same(saved[k], now[k]) for k in saved)
    return saved == now


def check_settings(
    saved: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    *,
    checkpoint: str | os.PathLike,
    how_to_start_over: str,
) -> None:
    """Refuse to resume ``checkpoint`` when a setting it saved differs from ``current``.

    Only settings present in both are compared (a run may add a recorder the first run
    did not have; its frames are checked elsewhere). ``saved`` None: a checkpoint from
    before settings were stored; a warning says they were not checked.

    Raises :class:`CheckpointError` listing every difference, saved and now, and the two
    ways out: restore the settings, or ``how_to_start_over`` (e.g. "add --restart").
    """
    if saved is None:
        warnings.warn(
            f"{os.fspath(checkpoint)} was written before checkpoints stored their run's settings: resuming "
            f"without checking that {', '.join(sorted(current))} are what that run used",
            UserWarning, stacklevel=3,
        )
        return
    now = plain_settings(current)
    differences = [f"  {key}: saved {saved[key]!r}, now {now[key]!r}"
                   for key in now if key in saved and not _same(saved[key], now[key])]
    if differences:
        raise CheckpointError(
            f"{os.fspath(checkpoint)} continues a run with other settings than this one:\n"
            + "\n".join(differences)
            + "\nResuming would silently mix two different runs. Either restore the saved settings to continue "
            f"that run, or start a new run from the beginning: {how_to_start_over}."
        )

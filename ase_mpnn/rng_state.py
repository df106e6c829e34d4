"""One format for the random-generator state in every MD checkpoint: JSON text.

A ``numpy.random.Generator``'s bit-generator state is a dict of integers and, for
MT19937, an array; it is stored as JSON (arrays as lists) in the checkpoint's
``rng_state`` entry, so that a resumed Langevin or ring-polymer run draws the same
noise the uninterrupted run would have drawn. No pickled objects.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .resume import CheckpointError

#: Bit generators a checkpoint may name (numpy's own).
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def rng_state_json(rng: np.random.Generator) -> str:
    """The state of ``rng`` as JSON text."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"cannot checkpoint a {type(rng).__name__} random state: give the dynamics a "
                        "numpy.random.Generator (langevin(seed=...) does)")
    return json.dumps(_plain(rng.bit_generator.state))


def generator_from_state(state: str | dict[str, Any], where: str = "checkpoint") -> np.random.Generator:
    """A new Generator in the state saved by :func:`rng_state_json` (text, or the decoded dict)."""
    if isinstance(state, str):
        state = json.loads(state)
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in BIT_GENERATORS:
        raise CheckpointError(f"{where}: unsupported random bit generator {name!r} (known: {', '.join(BIT_GENERATORS)})")
    rng = np.random.Generator(getattr(np.random, name)())
    rng.bit_generator.state = state
    return rng


def restore_rng(rng: np.random.Generator, state: str | dict[str, Any], where: str = "checkpoint") -> None:
    """Put ``rng`` (the dynamics' own generator, same bit generator) in the saved state."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError("checkpoint has a Generator state but the dynamics has no numpy Generator rng")
    rng.bit_generator.state = generator_from_state(state, where).bit_generator.state


def _plain(value: Any) -> Any:
    """A bit generator's state with numpy arrays and integers as JSON lists and ints."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value

"""Committees: one training recipe, several seeds; their spread as an uncertainty.

``ase-mpnn train config.yaml --committee 4`` trains members ``model_0.pt`` …
``model_3.pt`` (from ``output: model.pt``) with seeds ``seed``, ``seed + 1``, …: each
member gets its own weight initialisation, batch order and training/validation/test
split (a committee over resampled data, which spreads more away from the data than
one over initialisations alone). ``MPNNCalculator(["model_0.pt", ...])`` evaluates
them together and returns their mean and standard deviation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .train import TrainConfig


def member_configs(config: TrainConfig, n_members: int) -> list[TrainConfig]:
    """The configs of ``n_members`` members: seed + k, output ``STEM_k.pt``, run directory ``STEM_k.run``."""
    if not isinstance(n_members, int) or n_members < 2:
        raise ValueError(f"a committee needs at least 2 members, got {n_members!r}")
    output = Path(config.output)
    members = []
    for k in range(n_members):
        member_output = output.with_name(f"{output.stem}_{k}{output.suffix or '.pt'}")
        workdir = None if config.workdir is None else str(Path(config.workdir) / f"member_{k}")
        members.append(dataclasses.replace(config, seed=config.seed + k, output=str(member_output), workdir=workdir))
    return members

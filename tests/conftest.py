"""Shared fixtures: small models of every architecture and random test structures."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

import ase_mpnn

# Small hyperparameters per architecture keep the physics suite fast; an architecture
# added to the zoo is tested as soon as it appears here.
SMALL_HYPERPARAMETERS: dict[str, dict] = {
    "bpnn": dict(n_features=8, n_radial=4, n_angular_eta=1, n_zeta=2, n_hidden=8, n_hidden_layers=1),
    "egnn": dict(n_features=16, n_layers=2, n_rbf=8, neighbor_norm=8.0),
    "mace": dict(n_channels=4, l_max_sh=2, correlation=3, n_layers=2, n_rbf=6, radial_hidden=8, radial_layers=2, avg_num_neighbors=4.0),
    "nequip": dict(n_features=8, lmax=2, n_layers=2, n_rbf=8, radial_hidden=16, radial_layers=1, avg_neighbors=4.0),
    "painn": dict(n_features=16, n_interactions=2, n_rbf=8),
    "schnet": dict(n_features=16, n_filters=16, n_interactions=2, n_rbf=8),
    "segnn": dict(hidden_irreps="8x0e+4x1o+2x2e", lmax_attr=2, n_layers=2, n_rbf=6, avg_num_neighbors=4.0),
    "so3net": dict(n_features=8, lmax=2, n_interactions=2, n_rbf=8),
}
ARCHITECTURES = sorted(SMALL_HYPERPARAMETERS)
TEST_CUTOFF = 4.0


def make_model(architecture: str, species=("H", "O"), cutoff: float = TEST_CUTOFF, seed: int = 0):
    """A small float64 model with non-trivial reference energies and scale."""
    torch.manual_seed(seed)
    model = ase_mpnn.build_model(architecture, species, cutoff=cutoff, **SMALL_HYPERPARAMETERS[architecture])
    model = model.to(torch.float64)
    with torch.no_grad():
        model.atomic_energies.copy_(torch.linspace(-3.0, -1.0, len(model.species), dtype=torch.float64))
        model.energy_scale.fill_(2.0)
    return model.eval()


@pytest.fixture(params=ARCHITECTURES)
def architecture(request) -> str:
    return request.param


@pytest.fixture
def model(architecture):
    return make_model(architecture)


def ipi_command() -> list[str]:
    """The command that starts an i-PI server with this interpreter (skips without i-PI)."""
    pytest.importorskip("ipi", reason="i-PI is not installed (pip install ipi, or the 'test' extra)")
    script = Path(sys.executable).parent / "i-pi"
    if not script.exists():
        found = shutil.which("i-pi")
        if found is None:
            pytest.skip("the ipi package is installed but its i-pi script is not on PATH")
        script = Path(found)
    return [sys.executable, str(script)]


def count_forward_calls(monkeypatch, function) -> list:
    """Wrap ``function.forward`` (a ``torch.autograd.Function``) to count its calls: the
    returned list grows by one per call (which code path a model takes)."""
    calls = []
    forward = function.forward

    def counting_forward(ctx, *args):
        calls.append(1)
        return forward(ctx, *args)

    monkeypatch.setattr(function, "forward", staticmethod(counting_forward))
    return calls

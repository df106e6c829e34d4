"""Anchor worker for schnetpack's PaiNN (run with .venvs/schnetpack/bin/python).

Same protocol as the other workers (see worker_common.py). Written against schnetpack's
public API (the model as its tutorials build it):

* model: ``spk.representation.PaiNN(n_atom_basis=128, n_interactions=3,
  radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=5), cutoff_fn=spk.nn.CosineCutoff(5))``
  in ``spk.model.NeuralNetworkPotential`` with ``PairwiseDistances`` as input module,
  ``Atomwise(n_in=128)`` energy and ``Forces`` output modules; float32, random weights.
* neighbor list: schnetpack's own ``spk.transform.VesinNeighborList(cutoff=5)`` (the
  same vesin library ase_mpnn uses), rebuilt every call (schnetpack's calculator has no
  list reuse unless one adds its ``SkinNeighborList`` transform).
* calc: ``spk.interfaces.SpkCalculator(model, neighbor_list, energy_unit="eV",
  dtype=torch.float32)``; for periodic cells with ``stress_key="stress"``, so that it
  computes what ase_mpnn's calculator computes there (energy, forces and stress).
* bare: ``model(dict(inputs))`` on inputs built once by ``spk.interfaces.AtomsConverter``
  with the same neighbor list; energy and forces.
* langevin: ASE's own ``ase.md.langevin.Langevin(timestep=0.5 * fs, temperature_K=300,
  friction=0.01 / fs, fixcm=False, rng=Generator)`` with the calc work's ``SpkCalculator``
  (no stress: one molecule); momenta thermalized at 300 K from a fixed seed. A timed call
  is ``dyn.run(steps)``.
* rpmd: ``schnetpack.md``: ``System.load_molecules(atoms, n_replicas=n_beads)``,
  ``MaxwellBoltzmannInit(300)``, the ``RingPolymer(0.25 fs, n_beads, 300 K)`` integrator,
  ``PILELocalThermostat(300 K, time_constant=100 fs)`` as the only hook, and
  ``SchNetPackCalculator`` on the same model (saved with ``torch.save`` to a temporary
  file: the calculator loads its model from a file) with ``NeighborListMD(cutoff=5,
  cutoff_shell=0.5, base_nbl=VesinNeighborList)`` (a Verlet-type list with the same 0.5 Å
  buffer as ours), energy in eV, positions in Å; ``Simulator(..., progress=False)``
  moved to float32 with ``.to(torch.float32)``. All beads go through the model in one
  batch. A timed call is ``simulator.simulate(steps)``, minus one separately timed
  ``calculator.calculate(system)`` (``simulate`` computes the forces once more at its
  start; see ``worker_common.MDSteps``).

Device (``bench_anchors.py --device``, sent in "hello"): ``SpkCalculator(...,
device=...)``, ``AtomsConverter(..., device=...)`` with the model moved there for the
bare work, and the RPMD ``Simulator`` (a torch Module holding the system, integrator,
thermostat and calculator) moved with ``.to(device)`` after ``.to(torch.float32)``,
before its first step. Its neighbor lists are computed on the CPU (vesin)
and copied to the device, as schnetpack does.
"""

from __future__ import annotations

# isort: off
# worker_common first: it sets OMP_WAIT_POLICY before torch and routes library output to
# stderr.
import worker_common
# isort: on

import os
import tempfile

import numpy as np
import schnetpack as spk
import schnetpack.transform as trn
import torch

CUTOFF = 5.0
_WORKDIR: list[str] = []


def _workdir() -> str:
    """A temporary folder for model files, removed when the worker ends."""
    if not _WORKDIR:
        _WORKDIR.append(tempfile.mkdtemp(prefix="anchor_spk_"))
    return _WORKDIR[0]


def make_model():
    """A fresh model (SpkCalculator changes the model it is given when it adds stress)."""
    torch.manual_seed(0)
    representation = spk.representation.PaiNN(
        n_atom_basis=128,
        n_interactions=3,
        radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=CUTOFF),
        cutoff_fn=spk.nn.CosineCutoff(CUTOFF),
    )
    model = spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=128, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )
    return model.to(torch.float32).eval()


def ring_polymer_simulator(atoms, model, n_beads: int, workdir: str):
    """schnetpack.md's Simulator for RPMD with PILE-L (see the module docstring)."""
    from schnetpack import md as spk_md
    from schnetpack.md import calculators, integrators, simulation_hooks
    from schnetpack.md.neighborlist_md import NeighborListMD

    torch.manual_seed(worker_common.SEED)
    system = spk_md.System()
    system.load_molecules(atoms, n_replicas=n_beads, position_unit_input="Angstrom")
    spk_md.MaxwellBoltzmannInit(worker_common.TEMPERATURE_K).initialize_system(system)
    integrator = integrators.RingPolymer(worker_common.RPMD_DT_FS, n_beads, worker_common.TEMPERATURE_K)
    thermostat = simulation_hooks.PILELocalThermostat(worker_common.TEMPERATURE_K,
                                                      worker_common.RPMD_CENTROID_TAU_FS)
    model_file = os.path.join(workdir, "painn_128x3.pt")
    torch.save(model, model_file)
    calculator = calculators.SchNetPackCalculator(
        model_file,
        force_key="forces",
        energy_unit="eV",
        position_unit="Angstrom",
        neighbor_list=NeighborListMD(cutoff=CUTOFF, cutoff_shell=0.5, base_nbl=trn.VesinNeighborList),
        energy_key="energy",
        required_properties=[],
    )
    simulator = spk_md.Simulator(system, integrator, calculator, simulator_hooks=[thermostat], progress=False)
    return simulator.to(torch.float32).to(worker_common.DEVICE)


def build(arch: str, mode: str, atoms, options: dict | None = None):
    options = options or {}
    if arch != "painn":
        raise ValueError(f"the schnetpack worker has PaiNN only, not {arch!r}")
    device = worker_common.DEVICE
    model = make_model()
    neighbors = trn.VesinNeighborList(cutoff=CUTOFF)
    converter = spk.interfaces.AtomsConverter(neighbor_list=neighbors, device=device, dtype=torch.float32)
    inputs = converter(atoms)
    n_edges = inputs[spk.properties.idx_i].numel()
    if mode == "rpmd":
        n_beads = int(options["n_beads"])
        simulator = ring_polymer_simulator(atoms, model, n_beads, _workdir())
        simulator.simulate(0)  # first forces; initializes the thermostat
        if simulator.dtype != torch.float32:
            raise RuntimeError(f"the simulator runs in {simulator.dtype}, not float32")

        def state() -> tuple[float, float]:
            system = simulator.system
            return float(system.energy.mean()), float(system.forces.abs().max())

        def recompute_forces() -> None:
            simulator.calculator.calculate(simulator.system)

        # n_edges: the per-bead pair count (AtomsConverter, 5 Å) times the beads;
        # NeighborListMD filters its buffered list back to the cutoff before the model.
        return worker_common.MDSteps(simulator.simulate, options["steps"], state, recompute_forces), \
            n_beads * n_edges
    if mode in ("calc", "langevin"):
        calc = spk.interfaces.SpkCalculator(
            model=model,
            neighbor_list=trn.VesinNeighborList(cutoff=CUTOFF),
            energy_key="energy",
            force_key="forces",
            stress_key="stress" if atoms.pbc.all() else None,
            energy_unit="eV",
            position_unit="Angstrom",
            device=device,
            dtype=torch.float32,
        )
        if mode == "langevin":
            from ase import units
            from ase.md.langevin import Langevin

            moving = worker_common.thermalized(atoms)
            moving.calc = calc
            dyn = Langevin(moving, timestep=worker_common.LANGEVIN_DT_FS * units.fs,
                           temperature_K=worker_common.TEMPERATURE_K,
                           friction=worker_common.LANGEVIN_FRICTION_PER_FS / units.fs, fixcm=False,
                           rng=np.random.default_rng(worker_common.SEED + 1))
            return worker_common.MDSteps(dyn.run, options["steps"], worker_common.ase_md_state(moving)), n_edges
        return worker_common.MDLikeCalls(atoms, calc), n_edges
    if mode == "bare":
        model = model.to(device)

        def run():
            out = model(dict(inputs))
            return out["energy"], out["forces"]

        return worker_common.BareCalls(run), n_edges
    raise ValueError(f"unknown mode {mode!r}")


def versions() -> dict:
    from importlib.metadata import version

    import ase
    import vesin

    return {"package": "schnetpack " + version("schnetpack"), "ase": ase.__version__,
            "vesin": vesin.__version__,
            "neighbors": "schnetpack.transform.VesinNeighborList, rebuilt every call"}


if __name__ == "__main__":
    try:
        worker_common.serve("schnetpack", build, versions)
    finally:
        if _WORKDIR:
            import shutil

            shutil.rmtree(_WORKDIR[0], ignore_errors=True)

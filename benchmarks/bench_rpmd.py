"""Ring-polymer MD speed: batched bead evaluation vs one calculator call per bead, ns/day, recorder cost.

RPMD of one gas-phase H2O with 32 beads, PILE-L, 300 K, 0.25 fs (``RingPolymerMD``), forces
only (``observables=()``), for two float32 models:
the untrained benchmark PaiNN 128×3 (``systems.painn_128x3()``) and the shipped
``models/painn_water.pt`` (PaiNN 96×3).

* batched: ``RingPolymerMD`` with ``MPNNCalculator``: all 32 beads in one ``predict`` call
  per step (one graph of 96 atoms);
* per bead: the same ``RingPolymerMD`` with :class:`BeadByBead`, a plain ASE calculator
  without ``predict``, so RingPolymerMD calls it once per bead (32 forward + backward passes
  per step). It delegates to one ``MPNNCalculator`` per bead (each bead keeps its own
  Verlet neighbor list: the best case for the loop).

Target for batched vs per bead: ≥ 5×. No comparison with other codes here: schnetpack.md
(its Simulator with a ring polymer, PILE-L and its own calculator) is timed side by side
with ase_mpnn, in one run under the same load, by ``benchmarks/anchors/bench_anchors.py``
(rows ``painn-rpmd32-w1`` and ``painn-rpmd64-aspirin``).

Then ns/day (steps/s × dt × 86400 / 10⁶) of classical Langevin water (0.5 fs), RPMD water
(32 beads, 0.25 fs) and the 192-atom periodic water box (``systems.water_box(4)``, PaiNN
128×3, 0.5 fs), and the cost of ``MDRecorder`` (positions, velocities, energies, dipole,
polarizability to HDF5) on Langevin water with the shipped model, told apart from the cost
of computing dipole and polarizability, and of ``RingPolymerRecorder`` on 32-bead water.
Target: recorder < 5 % of a step.

Steps/s are medians over several runs after warm-up steps, each run continuing the same
trajectory. ``--threads`` sets torch's thread count (default 2); ``MPNNCalculator``'s
``num_threads="auto"`` uses one thread for graphs under 500 edges (one water, 32 water
beads) and ``--threads`` for the water box.

Run: ``python benchmarks/bench_rpmd.py [--threads N] [--quick]`` (``--quick``: < 60 s).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import units  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import systems  # noqa: E402

from ase_mpnn import MPNNCalculator  # noqa: E402
from ase_mpnn.md import MDRecorder, RingPolymerMD, RingPolymerRecorder, langevin  # noqa: E402

try:  # ASE >= 3.27
    from ase.md.velocitydistribution import thermalize_momenta as _thermalize
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as _thermalize

REPO = Path(__file__).resolve().parents[1]
WATER_MODEL = REPO / "models" / "painn_water.pt"
N_BEADS = 32
TEMPERATURE_K = 300.0
RPMD_DT_FS = 0.25
CLASSICAL_DT_FS = 0.5
FRICTION_PER_FS = 0.01
TARGET_BATCH_SPEEDUP = 5.0
ANCHORS = "benchmarks/anchors/bench_anchors.py"


class BeadByBead(Calculator):
    """An ASE calculator without ``predict``: RingPolymerMD calls it bead by bead.

    Each Atoms object it sees (one per bead) gets its own fresh ``MPNNCalculator`` on the
    same model, so neighbor lists are reused per bead exactly as in the batched path.
    """

    implemented_properties = list(MPNNCalculator.implemented_properties)

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self._calcs: dict[int, MPNNCalculator] = {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        inner = self._calcs.get(id(atoms))
        if inner is None:
            inner = self._calcs[id(atoms)] = MPNNCalculator(self.model, dtype=torch.float32)
        inner.calculate(self.atoms, properties, system_changes)
        self.results = dict(inner.results)


def median_rate(run, n_steps: int, n_runs: int, warmup: int) -> tuple[float, list[float]]:
    """Median steps/s of ``run(n_steps)`` over ``n_runs`` runs after ``run(warmup)``."""
    run(warmup)
    rates = []
    for _ in range(n_runs):
        start = time.perf_counter()
        run(n_steps)
        rates.append(n_steps / (time.perf_counter() - start))
    return statistics.median(rates), rates


def ns_per_day(steps_per_s: float, dt_fs: float) -> float:
    return steps_per_s * dt_fs * 86400 / 1e6


def rpmd_rate(calc, n_steps: int, n_runs: int, warmup: int, observables=()) -> tuple[float, list[float]]:
    md = RingPolymerMD(systems.water_molecule(), calc, n_beads=N_BEADS, temperature_K=TEMPERATURE_K,
                       timestep=RPMD_DT_FS * units.fs, thermostat="pile_l", tau=100 * units.fs, seed=0,
                       observables=observables)
    return median_rate(md.run, n_steps, n_runs, warmup)


def langevin_dynamics(atoms, calc, seed: int = 0):
    atoms = atoms.copy()
    atoms.calc = calc
    _thermalize(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(seed))
    return atoms, langevin(atoms, TEMPERATURE_K, CLASSICAL_DT_FS, FRICTION_PER_FS, seed=seed + 1)


def langevin_rate(atoms, calc, n_steps: int, n_runs: int, warmup: int) -> tuple[float, list[float]]:
    _, dyn = langevin_dynamics(atoms, calc)
    return median_rate(dyn.run, n_steps, n_runs, warmup)


def fmt_runs(rates: list[float]) -> str:
    return ", ".join(f"{r:.3g}" for r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (< 60 s)")
    args = parser.parse_args()
    systems.set_threads(args.threads)
    print(systems.thread_info())
    print("MPNNCalculator num_threads='auto': 1 thread below 500 edges (1 H2O, 32 beads), "
          f"torch's {args.threads} for the water box")

    q = args.quick
    rp_batched = (100, 3, 20) if q else (400, 5, 50)  # steps, runs, warm-up
    rp_loop = (15, 3, 3) if q else (60, 5, 10)
    classical = (300, 3, 50) if q else (1000, 5, 100)
    box = (4, 3, 2) if q else (10, 3, 3)

    models = {
        "PaiNN 128x3 (untrained)": systems.painn_128x3().to(dtype=torch.float32).eval(),
        "painn_water.pt (PaiNN 96x3)": str(WATER_MODEL),
    }
    water = systems.water_molecule()

    # 1. RPMD: batched vs per bead ------------------------------------------------------
    print()
    print(f"RPMD, 1 H2O, {N_BEADS} beads, PILE-L, {TEMPERATURE_K:g} K, {RPMD_DT_FS} fs, float32, forces only; "
          f"median of {rp_batched[1]} runs x {rp_batched[0]} steps (batched) / "
          f"{rp_loop[1]} x {rp_loop[0]} (per bead)")
    print()
    print("| model | batched steps/s | ms/step | per-bead steps/s | ms/step | batched speed-up | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    rpmd_rates = {}
    for name, model in models.items():
        rate_b, runs_b = rpmd_rate(MPNNCalculator(model, dtype=torch.float32), *rp_batched)
        loop_model = MPNNCalculator(model, dtype=torch.float32).model  # loaded once, shared by the bead calculators
        rate_l, runs_l = rpmd_rate(BeadByBead(loop_model), *rp_loop)
        rpmd_rates[name] = rate_b
        speedup = rate_b / rate_l
        target = f"speed-up >= {TARGET_BATCH_SPEEDUP:g}x: {'met' if speedup >= TARGET_BATCH_SPEEDUP else 'NOT met'}"
        print(f"| {name} | {rate_b:.0f} | {1e3 / rate_b:.2f} | {rate_l:.1f} | {1e3 / rate_l:.1f} | {speedup:.1f}x "
              f"| {target} |")
        print(f"|   runs (steps/s) | {fmt_runs(runs_b)} | | {fmt_runs(runs_l)} | | | |")
        sys.stdout.flush()
    rate_obs, _ = rpmd_rate(MPNNCalculator(str(WATER_MODEL)), *rp_batched, observables=("dipole", "polarizability"))
    print(f"| painn_water.pt, batched + dipole & polarizability | {rate_obs:.0f} | {1e3 / rate_obs:.2f} "
          f"| | | | |")
    print()
    print(f"Comparison with schnetpack.md (same PaiNN 128x3, 32 beads, PILE-L): `python {ANCHORS} "
          "--only 'painn-rpmd*'` times both side by side in one run; see benchmarks/README.md.")
    sys.stdout.flush()

    # 2. ns/day ---------------------------------------------------------------------------
    rows = []
    for name, model in models.items():
        rate, _ = langevin_rate(water, MPNNCalculator(model, dtype=torch.float32), *classical)
        rows.append((f"1 H2O classical Langevin, {name}", CLASSICAL_DT_FS, rate))
    for name, rate in rpmd_rates.items():
        rows.append((f"1 H2O RPMD {N_BEADS} beads PILE-L, {name}", RPMD_DT_FS, rate))
    rate, _ = langevin_rate(systems.water_box(4), MPNNCalculator(models["PaiNN 128x3 (untrained)"],
                                                                 dtype=torch.float32), *box)
    rows.append(("64 H2O periodic box (192 atoms) classical Langevin, PaiNN 128x3 (untrained)",
                 CLASSICAL_DT_FS, rate))
    print()
    print(f"Simulated time per day ({args.threads} torch threads; Langevin friction {FRICTION_PER_FS}/fs; "
          f"box: median of {box[1]} x {box[0]} steps)")
    print()
    print("| system | dt (fs) | steps/s | ms/step | ns/day |")
    print("|---|---:|---:|---:|---:|")
    for name, dt, rate in rows:
        print(f"| {name} | {dt} | {rate:.3g} | {1e3 / rate:.3g} | {ns_per_day(rate, dt):.3g} |")
    sys.stdout.flush()

    # 3. Recorder overhead ------------------------------------------------------------------
    # Two measures: steps/s against a run without recorder (includes machine drift of
    # several %), and the time spent inside the recorder's observer call per frame
    # (timed directly; flushes happen inside it), as % of a step without recorder. The
    # recorder's own cost is told apart from computing dipole and polarizability (the
    # same forward pass asked for two more outputs).
    print()
    print(f"Recorder cost: 1 H2O Langevin {CLASSICAL_DT_FS} fs, painn_water.pt; frames hold positions, "
          f"velocities, energies, temperature (+ dipole, polarizability); median of {classical[1]} x "
          f"{classical[0]} steps. 'in recorder' = time inside the recorder per recorded frame.")
    print()
    print("| configuration | steps/s | ms/step | slower than no recorder | in recorder, ms/frame | "
          "in recorder, % of a step |")
    print("|---|---:|---:|---:|---:|---:|")
    cases = [
        ("no recorder", None, {}, ()),
        ("no recorder, model also computes dipole + polarizability", None, {}, ("dipole", "polarizability")),
        ("MDRecorder interval=1, no dipole/polarizability", 1, {"properties": ()}, ()),
        ("MDRecorder interval=1 (default: dipole + polarizability)", 1, {}, ()),
        ("MDRecorder interval=1, flush_interval_s=0 (every frame flushed)", 1, {"flush_interval_s": 0}, ()),
        ("MDRecorder interval=10", 10, {}, ()),
    ]
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, interval, options, also) in enumerate(cases):
            calc = MPNNCalculator(str(WATER_MODEL))
            calc.also_compute = also
            atoms, dyn = langevin_dynamics(water, calc)
            recorder = timer = None
            if interval is not None:
                recorder = MDRecorder(atoms, os.path.join(tmp, f"rec{k}.h5"), interval=interval, dynamics=dyn,
                                      **options)
                timer = time_observer(dyn.observers, recorder)
            try:
                rate, _ = median_rate(dyn.run, *classical)
            finally:
                if recorder is not None:
                    recorder.close()
            base = base or rate
            print(recorder_row(label, rate, base, timer, reference=k == 0))
            sys.stdout.flush()

    print()
    print(f"RingPolymerRecorder cost: 1 H2O, {N_BEADS} beads, painn_water.pt, dipole + polarizability evaluated "
          f"in both rows; median of {rp_batched[1]} x {rp_batched[0]} steps")
    print()
    print("| configuration | steps/s | ms/step | slower than no recorder | in recorder, ms/frame | "
          "in recorder, % of a step |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for interval in (None, 1):
            md = RingPolymerMD(systems.water_molecule(), MPNNCalculator(str(WATER_MODEL)), n_beads=N_BEADS,
                               temperature_K=TEMPERATURE_K, timestep=RPMD_DT_FS * units.fs, thermostat="pile_l",
                               tau=100 * units.fs, seed=0, observables=("dipole", "polarizability"))
            recorder = timer = None
            if interval is not None:
                recorder = RingPolymerRecorder(md, os.path.join(tmp, "rp.h5"), interval)
                timer = time_observer(md._observers, recorder)
            try:
                rate, _ = median_rate(md.run, *rp_batched)
            finally:
                if recorder is not None:
                    recorder.close()
            base = base or rate
            label = "no recorder" if interval is None else f"RingPolymerRecorder interval={interval}"
            print(recorder_row(label, rate, base, timer, reference=interval is None))
            sys.stdout.flush()


def recorder_row(label: str, rate: float, base: float, timer, reference: bool) -> str:
    slower = "0 (reference)" if reference else f"{100 * (base / rate - 1):+.1f} %"
    inside = ["", ""] if timer is None else [f"{1e3 * timer.per_call:.3f}", f"{100 * timer.per_call * base:.1f} %"]
    return "| " + " | ".join([label, f"{rate:.0f}", f"{1e3 / rate:.3f}", slower, *inside]) + " |"


class TimedObserver:
    """Wraps an observer and adds up the wall time of its calls."""

    def __init__(self, function):
        self.function, self.seconds, self.calls = function, 0.0, 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        self.function(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        self.calls += 1

    @property
    def per_call(self) -> float:
        return self.seconds / max(self.calls, 1)


def time_observer(observers: list, function) -> TimedObserver:
    """Replace ``function`` in a dynamics' observer list (ASE's or RingPolymerMD's) by a timed wrapper."""
    timer = TimedObserver(function)
    for k, (fn, *rest) in enumerate(observers):
        if fn is function:
            observers[k] = (timer, *rest)
    return timer

if __name__ == "__main__":
    main()

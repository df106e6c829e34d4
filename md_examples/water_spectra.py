"""IR and Raman spectra of gas-phase water from classical MD and TRPMD with the shipped model.

What it does (``models/painn_water.pt``, PaiNN trained on B3LYP/aug-cc-pVDZ):

1. Harmonic analysis of the relaxed molecule (``ase.vibrations``): frequencies, IR
   intensities (km/mol), Raman activities and depolarization ratios.
2. Classical MD: ``--classical`` independent trajectories, each thermalised at 300 K
   (Maxwell–Boltzmann start, 0.5 ps Langevin with τ = 50 fs), then 4 ps recorded every
   1 fs (0.25 fs steps) to ``OUT/classical_K.h5`` under a weak Langevin thermostat
   (τ = 500 fs: lines ≈ 10 cm⁻¹ wide). Why not NVE: a single molecule in NVE keeps
   the mode energies and the rotation it started with, so a few trajectories give band
   areas scattered by ±50 % and spectra split into sharp rotational lines; the weak
   thermostat lets each trajectory sample many of both.
3. Thermostatted RPMD (TRPMD, Rossi et al. 2014): ``--rpmd`` trajectories of 32 beads,
   0.25 ps PILE-L equilibration, then 4 ps with the internal modes thermostatted and the
   centroid free, recording centroid velocities and bead-averaged dipole and
   polarizability every 1 fs to ``OUT/rpmd_K.h5``. Its correlation functions are
   Kubo-transformed: no quantum correction is applied to them.
4. Spectra (``ase_mpnn.spectra``): IR absorption cross-section (cm² per molecule, band
   intensities in km/mol), polarized and depolarized Raman, and power spectra, averaged
   over trajectories with a standard-error band: ``OUT/classical_*`` and ``OUT/rpmd_*``
   (CSV, PNG, peak tables), ``OUT/ir_comparison.png``, ``OUT/raman_comparison.png`` and
   ``OUT/bands.md``, the band positions beside the experimental gas-phase fundamentals.

Band positions in ``bands.md``. A free molecule rotates, which splits IR and anisotropic
Raman bands into rotational P and R branches about 100 cm⁻¹ either side of the band
origin, so their maxima are not band positions. The isotropic Raman spectrum (from the
rotation-invariant trace of α) has no rotational structure: the bend ν2 and symmetric
stretch ν1 are read there. The asymmetric stretch ν3 has no isotropic Raman activity; it
is the intensity-weighted centre of the IR stretch band (± 250 cm⁻¹ around the harmonic
frequency; ν1 adds ≈ 6 % of that band's IR intensity, pulling it ~7 cm⁻¹ down).

What to expect. Classical MD at 300 K stays close to the harmonic frequencies (the
model's B3LYP curvature); quantum (TRPMD) dynamics samples the anharmonic O–H
potential with zero-point motion and moves the stretches down towards experiment. The
remaining gap is the B3LYP/aug-cc-pVDZ error the model inherits, and TRPMD's own known
red shift and broadening of stretch bands.

Restartable: every run writes checkpoints; running the script again continues where it
stopped and reuses finished trajectories (delete ``OUT`` for a fresh start).

Run from the repository root (≈ 6 min on 2 CPU cores):

    python md_examples/water_spectra.py                     # OUT = water_spectra/
    python md_examples/water_spectra.py --quick             # shorter runs, ≈ 1 min, for a smoke test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.build import molecule

from ase_mpnn import MPNNCalculator
from ase_mpnn.md import (
    MDRecorder,
    RingPolymerMD,
    RingPolymerRecorder,
    langevin,
    read_record,
    run_md,
    run_rpmd,
)
from ase_mpnn.spectra import (
    WATER_GAS_FUNDAMENTALS,
    find_peaks,
    harmonic_analysis,
    ir_spectrum_from_file,
    load_reference,
    plot_spectra,
    raman_spectrum_from_file,
    write_spectra,
)

try:  # ASE >= 3.29 (MaxwellBoltzmannDistribution is deprecated there)
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

MODEL = Path(__file__).resolve().parents[1] / "models" / "painn_water.pt"
# The model's reference method, B3LYP/aug-cc-pVDZ, analysed at its own minimum.
B3LYP = Path(__file__).resolve().parents[1] / "data" / "water_b3lyp_harmonic.json"
TEMPERATURE_K = 300.0
DT_FS = 0.25
RECORD_EVERY = 4  # 1 fs between frames: Nyquist limit 16,700 cm⁻¹
MAX_LAG_FS = 1000.0  # Hann lag window: lines ≈ 24 cm⁻¹ wide (FWHM), averages out noise
BEADS = 32
BANDS = {"bend ν2": 0, "sym. stretch ν1": 1, "asym. stretch ν3": 2}  # index into the harmonic modes


def classical_trajectory(k: int, out: Path, calc: MPNNCalculator, start, equil_steps: int, steps: int) -> Path:
    """Thermalise with Langevin, then record under a weak thermostat; both stages resume from checkpoints."""
    path = out / f"classical_{k}.h5"
    atoms = start.copy()
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(100 + k))
    thermostat = langevin(atoms, TEMPERATURE_K, DT_FS, friction_per_fs=0.02, seed=200 + k)
    print(f"classical trajectory {k}: {equil_steps * DT_FS / 1000:g} ps Langevin at {TEMPERATURE_K:g} K")
    run_md(thermostat, equil_steps, checkpoint_path=out / f"classical_{k}_equil.npz", checkpoint_interval=1000)
    production = langevin(atoms, TEMPERATURE_K, DT_FS, friction_per_fs=0.002, seed=500 + k)
    checkpoint = out / f"classical_{k}.checkpoint.npz"
    print(f"classical trajectory {k}: {steps * DT_FS / 1000:g} ps, weak Langevin thermostat, recorded every "
          f"{RECORD_EVERY * DT_FS:g} fs")
    with MDRecorder(atoms, path, interval=RECORD_EVERY, mode="a" if checkpoint.exists() else "w",
                    metadata={"temperature_K": TEMPERATURE_K, "ensemble": "NVT Langevin, τ = 500 fs"}) as recorder:
        run_md(production, steps, recorder, checkpoint_path=checkpoint, checkpoint_interval=2000)
    return path


def rpmd_trajectory(k: int, out: Path, calc: MPNNCalculator, start, equil_steps: int, steps: int) -> Path:
    """PILE-L equilibration, then TRPMD production recorded to HDF5; both resume from checkpoints."""
    path, checkpoint = out / f"rpmd_{k}.h5", out / f"rpmd_{k}.checkpoint.npz"
    equil_checkpoint = out / f"rpmd_{k}_equil.npz"
    if checkpoint.exists():
        md = RingPolymerMD.from_checkpoint(checkpoint, calc)
    else:
        if equil_checkpoint.exists():
            equil = RingPolymerMD.from_checkpoint(equil_checkpoint, calc)
        else:
            equil = RingPolymerMD(start, calc, n_beads=BEADS, temperature_K=TEMPERATURE_K,
                                  timestep=DT_FS * units.fs, thermostat="pile_l", tau=50 * units.fs, seed=300 + k)
        print(f"RPMD trajectory {k}: {equil_steps * DT_FS / 1000:g} ps PILE-L, {BEADS} beads")
        run_rpmd(equil, equil_steps, checkpoint_path=equil_checkpoint, checkpoint_interval=1000)
        md = RingPolymerMD(start, calc, n_beads=BEADS, temperature_K=TEMPERATURE_K, timestep=DT_FS * units.fs,
                           thermostat="trpmd", seed=400 + k, bead_positions=equil.bead_positions,
                           bead_momenta=equil.bead_momenta)
    print(f"RPMD trajectory {k}: {steps * DT_FS / 1000:g} ps TRPMD, recorded every {RECORD_EVERY * DT_FS:g} fs")
    with RingPolymerRecorder(md, path, interval=RECORD_EVERY, mode="a" if checkpoint.exists() else "w") as recorder:
        run_rpmd(md, steps, recorder, checkpoint_path=checkpoint, checkpoint_interval=2000)
    return path


def band_positions(records: list[Path], harmonic_cm1: np.ndarray, max_lag_fs: float) -> dict[str, float]:
    """ν1, ν2 from isotropic Raman peaks; ν3 as the IR stretch band centre (see the module docstring)."""
    raman = raman_spectrum_from_file(records, max_lag_fs=max_lag_fs)
    iso = raman.isotropic
    positions = {}
    for name in ("bend ν2", "sym. stretch ν1"):
        guess = harmonic_cm1[BANDS[name]]
        # The harmonic analysis says a band is there; only its position is measured, so
        # the highest peak near the harmonic frequency counts without the noise test.
        peaks = find_peaks(iso, lo=guess - 300, hi=guess + 150, min_significance=None)
        positions[name] = max(peaks, key=lambda p: p.height).position if peaks else np.nan
    ir = ir_spectrum_from_file(records, temperature_K=TEMPERATURE_K, max_lag_fs=max_lag_fs)
    nu3 = harmonic_cm1[BANDS["asym. stretch ν3"]]
    inside = (ir.wavenumber > nu3 - 250) & (ir.wavenumber < nu3 + 250)
    w, y = ir.wavenumber[inside], ir.intensity[inside]
    positions["asym. stretch ν3"] = float(np.sum(w * y) / np.sum(y))
    return positions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="water_spectra", help="output directory (default water_spectra/)")
    parser.add_argument("--classical", type=int, default=4, help="classical trajectories (default 4)")
    parser.add_argument("--rpmd", type=int, default=2, help="TRPMD trajectories (default 2)")
    parser.add_argument("--quick", action="store_true", help="0.5 ps runs: checks that everything works")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    equil, steps, rpmd_equil = (400, 2000, 200) if args.quick else (2000, 16000, 1000)
    max_lag = min(MAX_LAG_FS, steps * DT_FS / 2)

    # 1. Harmonic reference (double precision for the finite differences).
    harmonic = harmonic_analysis(molecule("H2O"), MPNNCalculator(MODEL, dtype=torch.float64))
    print("Harmonic analysis of painn_water.pt (relaxed geometry):\n" + harmonic.table() + "\n")
    harmonic.to_csv(out / "harmonic.csv")
    start = harmonic.atoms.copy()
    start.calc = None

    # 2-3. Trajectories (float32 model: 2× faster, spectra are not limited by it).
    calc = MPNNCalculator(MODEL)
    classical = [classical_trajectory(k, out, calc, start, equil, steps) for k in range(args.classical)]
    rpmd = [rpmd_trajectory(k, out, calc, start, rpmd_equil, steps) for k in range(args.rpmd)]
    k_cv = np.concatenate([read_record(p)["kinetic_energy"] for p in rpmd])
    print(f"\nTRPMD quantum kinetic energy {k_cv.mean():.3f} eV (classical 9/2 k_BT = "
          f"{4.5 * units.kB * TEMPERATURE_K:.3f} eV): zero-point motion of the stretches and the bend")

    # 4. Spectra: files per method, then side-by-side plots and the band table.
    reference = dict(WATER_GAS_FUNDAMENTALS)
    options = {"max_lag_fs": max_lag, "temperature_K": TEMPERATURE_K, "reference": reference}
    for name, records in (("classical", classical), ("rpmd", rpmd)):
        report = write_spectra(records, out / name, **options)
        print(f"\n# {name}\n{report.text}")
    ir = [ir_spectrum_from_file(classical, temperature_K=TEMPERATURE_K, max_lag_fs=max_lag, label="classical MD"),
          ir_spectrum_from_file(rpmd, temperature_K=TEMPERATURE_K, max_lag_fs=max_lag, label="TRPMD")]
    plot_spectra(ir, out / "ir_comparison.png", xlim=(1000, 4200), reference=reference,
                 title=f"H2O IR, painn_water.pt, {TEMPERATURE_K:g} K")
    raman = [raman_spectrum_from_file(classical, max_lag_fs=max_lag, label="classical"),
             raman_spectrum_from_file(rpmd, max_lag_fs=max_lag, label="TRPMD")]
    plot_spectra(raman, out / "raman_comparison.png", xlim=(1000, 4200), reference=reference,
                 title="H2O Raman, parallel and perpendicular")

    bands_classical = band_positions(classical, harmonic.frequencies_cm1, max_lag)
    bands_rpmd = band_positions(rpmd, harmonic.frequencies_cm1, max_lag)
    b3lyp = load_reference(B3LYP)
    lines = ["| band | experiment (gas) | harmonic (B3LYP) | harmonic (model) | classical MD | TRPMD | "
             "TRPMD − experiment |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, index in BANDS.items():
        exp, cl, rp = WATER_GAS_FUNDAMENTALS[name], bands_classical[name], bands_rpmd[name]
        lines.append(f"| {name} | {exp:.0f} | {b3lyp['frequencies_cm1'][index]:.0f} | "
                     f"{harmonic.frequencies_cm1[index]:.0f} | {cl:.0f} | {rp:.0f} | {rp - exp:+.0f} |")
    stretch = (3300.0, 4300.0)
    intensities = [
        "| band region | harmonic, B3LYP (km/mol) | harmonic, model (km/mol) | classical MD (km/mol) | "
        "TRPMD (km/mol) |",
        "|---|---:|---:|---:|---:|",
        f"| bend 1000–2300 cm⁻¹ | {b3lyp['ir_intensities_km_mol'][0]:.1f} | "
        f"{harmonic.ir_intensities_km_mol[0]:.1f} | {ir[0].km_per_mol(1000, 2300):.1f} | "
        f"{ir[1].km_per_mol(1000, 2300):.1f} |",
        f"| stretches 3300–4300 cm⁻¹ | {sum(b3lyp['ir_intensities_km_mol'][1:]):.1f} | "
        f"{harmonic.ir_intensities_km_mol[1:].sum():.1f} | "
        f"{ir[0].km_per_mol(*stretch):.1f} | {ir[1].km_per_mol(*stretch):.1f} |",
    ]
    table = ("Band positions in cm⁻¹ (ν1, ν2: isotropic Raman peaks; ν3: centre of the IR band)\n\n"
             + "\n".join(lines) + "\n\nIR band intensities\n\n" + "\n".join(intensities) + "\n")
    (out / "bands.md").write_text(table, encoding="utf-8")
    print("\n" + table)
    print(f"wrote {out}/: bands.md, ir_comparison.png, raman_comparison.png, classical_* and rpmd_* "
          f"(CSV, PNG, peak tables), harmonic.csv, records (*.h5) and checkpoints")


if __name__ == "__main__":
    main()

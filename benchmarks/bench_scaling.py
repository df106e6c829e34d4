"""How the energy + forces time and peak memory of MPNNCalculator grow with system size.

Periodic water boxes at ~1 g/cm³ (n³ randomly rotated H2O, box n * 3.105 Å): 81, 375,
1,536, 3,993 and 12,288 atoms (n = 3, 5, 8, 11, 16; --quick stops at 3,993). Model:
untrained PaiNN 128 features x 3 interactions (64 x 2 with --quick), 20 radial
functions, 5 Å, float32. Each call is ``get_potential_energy(); get_forces()`` through
ASE (stress comes in the same pass) along an MD-like sequence: every atom moves 0.005 Å
per call, so the Verlet list (skin 0.5 Å) is built in the warm-up call and reused.

Every box runs in its own process, so its peak memory is its own: the peak resident
memory of the process (``ru_maxrss``) minus its resident memory just before the first
call (Python, torch, the model and the structure), divided by the atoms.

The exponent k of time ∝ N^k is fitted by least squares on log-log over the boxes of
1,536 atoms and more (k ≈ 1 is linear scaling). A log-log plot goes to
benchmarks/results/scaling.png when matplotlib is installed (--no-plot to skip).

Run: ``python benchmarks/bench_scaling.py [--threads N] [--quick] [--max-atoms N] [--no-plot]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import systems  # noqa: E402

BOXES = (3, 5, 8, 11, 16)  # molecules per box side: 81, 375, 1,536, 3,993, 12,288 atoms
FIT_MIN_ATOMS = 1500
DEFAULT_PLOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "scaling.png")
# Generous: the runs printed 4–6 kB per pair from 1,500 atoms on (2.7 GB at 12,288 atoms).
BYTES_PER_PAIR_ESTIMATE = 8_000


def _meminfo_bytes(field: str, path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def memory_allows(pairs: int, bytes_per_pair: float) -> tuple[bool, str]:
    """Whether an estimated peak of ``bytes_per_pair * pairs`` fits in available memory."""
    available = _meminfo_bytes("MemAvailable")
    if available is None or bytes_per_pair <= 0:
        return True, "memory check unavailable"
    need = bytes_per_pair * pairs
    msg = f"needs ~{need / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available"
    return need < 0.85 * available, msg


def child(n_per_side: int, quick: bool, threads: int, budget_s: float) -> dict:
    """Time one box in this process; returns seconds per call and memory figures."""
    import torch

    import ase_mpnn

    systems.set_threads(threads)
    features, interactions = (64, 2) if quick else (128, 3)
    model = systems.painn_128x3(n_features=features, n_interactions=interactions).to(dtype=torch.float32)
    atoms = systems.water_box(n_per_side)
    calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.5)
    before = _meminfo_bytes("VmRSS", "/proc/self/status") or 0
    first = systems.md_like_call_times(atoms, calc, n_calls=1, warmup=1, seed=3)[0]
    n_calls = int(min(20, max(3, budget_s // max(first, 1e-9))))
    times = systems.md_like_call_times(atoms, calc, n_calls=n_calls, warmup=1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"atoms": len(atoms), "box": float(atoms.cell[0, 0]), "calls": n_calls,
            "seconds": statistics.median(times), "peak_bytes": peak, "base_bytes": before}


def fit_exponent(n_atoms, seconds, min_atoms: int = FIT_MIN_ATOMS) -> tuple[float, float] | None:
    """Least-squares slope and intercept of log t against log N for N >= min_atoms."""
    pts = [(n, t) for n, t in zip(n_atoms, seconds) if n >= min_atoms]
    if len(pts) < 2:
        return None
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    k, c = np.polyfit(x, y, 1)
    return float(k), float(c)


def plot(path: str, n_atoms, seconds, fit, label: str) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    n = np.asarray(n_atoms, dtype=float)
    t = np.asarray(seconds) * 1e3
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    ax.loglog(n, t, "o", label="MPNNCalculator energy + forces")
    if fit is not None:
        k, c = fit
        xs = np.geomspace(n[n >= FIT_MIN_ATOMS].min(), n.max(), 50)
        ax.loglog(xs, np.exp(c) * xs**k * 1e3, "-", label=f"fit N >= {FIT_MIN_ATOMS}: k = {k:.2f}")
        ref = n[n >= FIT_MIN_ATOMS][0]
        t_ref = t[n >= FIT_MIN_ATOMS][0]
        ax.loglog(xs, t_ref * xs / ref, ":", color="grey", label="linear (k = 1)")
    ax.set_xlabel("atoms")
    ax.set_ylabel("time per call (ms)")
    ax.set_title(label, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot written to {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="PaiNN 64x2, no 12,288-atom box")
    parser.add_argument("--max-atoms", type=int, default=None, help="skip boxes with more atoms than this")
    parser.add_argument("--no-plot", action="store_true", help="do not write the plot")
    parser.add_argument("--plot-path", default=DEFAULT_PLOT, help=f"where the plot goes (default {DEFAULT_PLOT})")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = 3.0 if args.quick else 20.0
    if args.child is not None:
        print(json.dumps(child(args.child, args.quick, args.threads, budget)))
        return
    systems.set_threads(args.threads)
    print(systems.thread_info())
    features, interactions = (64, 2) if args.quick else (128, 3)
    label = f"PaiNN {features}x{interactions}, 5 Å, float32, {args.threads} thread(s)"
    print(f"{label}; energy + forces + stress per call, MD-like sequence, skin 0.5 Å (list reused); "
          f"median of >= 3 calls after 1 warm-up call; one process per box; load average before: "
          f"{os.getloadavg()[0]:.1f}")
    print()
    print("| atoms | box Å | pairs (5 Å) | calls | call ms | µs per atom | local k | peak MB | peak kB per atom |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    n_done, t_done, skipped = [], [], []
    for n_per_side in BOXES[:-1] if args.quick else BOXES:
        atoms = systems.water_box(n_per_side)
        if args.max_atoms is not None and len(atoms) > args.max_atoms:
            skipped.append(f"{len(atoms)} atoms skipped: --max-atoms {args.max_atoms}")
            continue
        pairs = systems.count_pairs(atoms)
        ok, msg = memory_allows(pairs, BYTES_PER_PAIR_ESTIMATE)
        if not ok:
            skipped.append(f"{len(atoms)} atoms skipped: {msg}")
            continue
        command = [sys.executable, os.path.abspath(__file__), "--child", str(n_per_side), "--threads", str(args.threads)]
        run = subprocess.run(command + (["--quick"] if args.quick else []), capture_output=True, text=True)
        if run.returncode != 0:
            skipped.append(f"{len(atoms)} atoms failed: {(run.stderr.strip().splitlines() or ['?'])[-1][:120]}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        peak = r["peak_bytes"] - r["base_bytes"]
        local = ""
        if n_done:
            local = f"{np.log(r['seconds'] / t_done[-1]) / np.log(r['atoms'] / n_done[-1]):.2f}"
        n_done.append(r["atoms"])
        t_done.append(r["seconds"])
        print(f"| {r['atoms']} | {r['box']:.2f} | {pairs} | {r['calls']} | {systems.fmt_ms(r['seconds'])} "
              f"| {r['seconds'] * 1e6 / r['atoms']:.1f} | {local} | {peak / 2**20:.0f} | {peak / 1024 / r['atoms']:.1f} |")
        sys.stdout.flush()

    print()
    for line in skipped:
        print(line)
    fit = fit_exponent(n_done, t_done)
    if fit is None:
        print(f"fewer than two boxes of >= {FIT_MIN_ATOMS} atoms: no fit")
    else:
        used = [n for n in n_done if n >= FIT_MIN_ATOMS]
        print(f"time ∝ N^k, least squares on log-log over {used} atoms: k = {fit[0]:.3f} "
              "(1 = linear scaling)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if not args.no_plot:
        print(plot(args.plot_path, n_done, t_done, fit, label))


if __name__ == "__main__":
    main()

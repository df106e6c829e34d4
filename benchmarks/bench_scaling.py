"""How the energy + forces time of MPNNCalculator grows with system size.

Periodic water boxes at ~1 g/cm³ (n³ randomly rotated H2O, box n * 3.105 Å) of about
100, 300, 1,000, 3,000 and 10,000 atoms (81, 375, 1,029, 3,000, 10,125; the largest is
skipped with --quick, or when the machine lacks the memory for it). Model: untrained
PaiNN 128 features x 3 interactions (64 x 2 with --quick), 20 radial functions, 5 Å,
float32. Each call is ``get_potential_energy(); get_forces()`` through ASE (stress
comes in the same pass) along an MD-like sequence: every atom moves 0.005 Å per call,
so the Verlet list (skin 0.5 Å) is built in the warm-up call and reused.

The exponent k of time ∝ N^k is fitted by least squares on log-log over the boxes
of >= 300 atoms (k ≈ 1 is linear scaling). A log-log plot goes to
benchmarks/results/scaling.png when matplotlib is installed (--no-plot to skip).

Run: ``python benchmarks/bench_scaling.py [--threads N] [--quick] [--max-atoms N] [--no-plot]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import systems  # noqa: E402

import ase_mpnn  # noqa: E402

TARGET_SIZES = (100, 300, 1000, 3000, 10000)
FIT_MIN_ATOMS = 300
DEFAULT_PLOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "scaling.png")


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
    held = _meminfo_bytes("VmRSS", "/proc/self/status") or 0
    need = bytes_per_pair * pairs
    free = available + held
    msg = f"needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB available"
    return need < 0.85 * free, msg


def time_calls(atoms, calc, budget_s: float, min_calls: int, max_calls: int) -> tuple[float, int]:
    """Median seconds per call; the warm-up call sets how many calls fit in ``budget_s``."""
    first = systems.md_like_call_times(atoms, calc, n_calls=1, warmup=1, seed=3)[0]
    n_calls = int(min(max_calls, max(min_calls, budget_s // max(first, 1e-9))))
    times = systems.md_like_call_times(atoms, calc, n_calls=n_calls, warmup=1)
    return statistics.median(times), n_calls


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
    parser.add_argument("--quick", action="store_true", help="PaiNN 64x2, no 10,000-atom box")
    parser.add_argument("--max-atoms", type=int, default=None, help="skip boxes with more atoms than this")
    parser.add_argument("--no-plot", action="store_true", help="do not write the plot")
    parser.add_argument("--plot-path", default=DEFAULT_PLOT, help=f"where the plot goes (default {DEFAULT_PLOT})")
    args = parser.parse_args()
    systems.set_threads(args.threads)
    print(systems.thread_info())

    if args.quick:
        features, interactions, sizes, budget = 64, 2, TARGET_SIZES[:-1], 3.0
    else:
        features, interactions, sizes, budget = 128, 3, TARGET_SIZES, 20.0
    model = systems.painn_128x3(n_features=features, n_interactions=interactions).to(dtype=torch.float32)
    label = f"PaiNN {features}x{interactions}, 5 Å, float32, {torch.get_num_threads()} thread(s)"
    print(f"{label}; energy + forces + stress per call, MD-like sequence, skin 0.5 Å (list reused); "
          f"median of >= 3 calls after 1 warm-up call")
    print()
    print("| target | atoms | box Å | pairs (5 Å) | calls | call ms | µs per atom | local k |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    n_done, t_done = [], []
    bytes_per_pair = 0.0
    skipped = []
    for target in sizes:
        atoms = systems.water_box_near(target)
        if args.max_atoms is not None and len(atoms) > args.max_atoms:
            skipped.append(f"{len(atoms)} atoms skipped: --max-atoms {args.max_atoms}")
            continue
        pairs = systems.count_pairs(atoms)
        if bytes_per_pair:
            ok, msg = memory_allows(pairs, bytes_per_pair)
            if not ok:
                skipped.append(f"{len(atoms)} atoms skipped: {msg}")
                continue
        calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.5)
        seconds, n_calls = time_calls(atoms, calc, budget, min_calls=3, max_calls=20)
        del calc
        # Peak RSS so far (Linux reports KiB) over the pairs of the largest box so far:
        # a generous bytes-per-pair estimate for the next, larger box.
        bytes_per_pair = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / pairs
        local = ""
        if n_done:
            local = f"{np.log(seconds / t_done[-1]) / np.log(len(atoms) / n_done[-1]):.2f}"
        n_done.append(len(atoms))
        t_done.append(seconds)
        print(f"| ~{target} | {len(atoms)} | {atoms.cell[0, 0]:.2f} | {pairs} | {n_calls} "
              f"| {systems.fmt_ms(seconds)} | {seconds * 1e6 / len(atoms):.1f} | {local} |")
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
    if not args.no_plot:
        print(plot(args.plot_path, n_done, t_done, fit, label))


if __name__ == "__main__":
    main()

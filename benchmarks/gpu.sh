#!/usr/bin/env bash
# The side-by-side anchor benchmark (benchmarks/anchors/bench_anchors.py) on one CUDA GPU,
# in under 8 minutes, for a lent GPU machine that has no internet access.
#
#   bash benchmarks/gpu.sh [--quick]
#
# 1. Checks: nvidia-smi works, and torch in $PYTHON (default: python, else python3)
#    sees a GPU; ase_mpnn imports (if it is not installed, the repository root is put
#    on PYTHONPATH). A failed check stops the script (exit 2) saying which one.
# 2. Anchors: for schnetpack and mace-torch, the environment made by
#    benchmarks/anchors/setup_anchors.sh (benchmarks/anchors/.venvs/, git-ignored) is used
#    if it is there, imports what its worker needs and its torch sees the GPU. Otherwise
#    (e.g. a machine that got only the working tree and cannot install anything) the rows
#    of that anchor run ase_mpnn's side alone (bench_anchors.py --ours-only): our times,
#    no ratios, and the script says that the anchor was skipped and why.
# 3. Rows, on --device cuda, in four runs of bench_anchors.py, each with its own time
#    limit (timeout), so that one that fails or hangs does not cost the others:
#      painn-calc-box, painn-bare-box, painn-calc-big, painn-bare-big   (192 / 1,536 atoms)
#      painn-calc-huge, painn-bare-huge                                  (12,288 atoms)
#      painn-rpmd32-w1                                                   (RPMD, 32 beads)
#      mace-calc-w1, mace-bare-w1, mace-calc-box, mace-bare-box
#    The limits add up to 7 minutes; the checks take well under one. --quick passes
#    --quick on (fewer rounds; numbers not to quote).
#
# Output: each run's table (markdown) on stdout as it finishes; its progress lines
# (stderr of bench_anchors.py) go to stderr. If $OUT is set, $OUT/gpu_bench.md gets the
# checks and all the tables, $OUT/gpu_bench_<run>.log each run's stderr (progress, and
# the reason of a failure), $OUT/nvidia-smi.txt the GPU's state before the runs.
# Exit status: 0 if every run finished, 1 if one failed or ran out of time, 2 if a check
# failed.
#
# Settings from the environment: PYTHON, GPU_BENCH_THREADS (torch threads of every
# process, default 4).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ANCHORS="$ROOT/benchmarks/anchors"
cd "$ROOT"

QUICK=()
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=(--quick) ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu.sh: unknown argument $arg (only --quick)" >&2; exit 2 ;;
    esac
done
THREADS="${GPU_BENCH_THREADS:-4}"
TOTAL_S=450  # hard ceiling for the whole script (7.5 min), checks included

if [ -z "${PYTHON:-}" ]; then
    if command -v python >/dev/null 2>&1; then PYTHON=python; else PYTHON=python3; fi
fi

REPORT=""
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    REPORT="$OUT/gpu_bench.md"
    : >"$REPORT"
fi

say() {  # to stdout and to the report
    printf '%s\n' "$*"
    if [ -n "$REPORT" ]; then printf '%s\n' "$*" >>"$REPORT"; fi
}

die() {
    say "gpu.sh: $*"
    exit 2
}

say "# ase_mpnn anchor benchmark on the GPU ($(date -u '+%Y-%m-%d %H:%M UTC'))"
say ""

# --- checks -------------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: no NVIDIA driver on this machine"
if ! SMI="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"; then
    die "nvidia-smi failed: $SMI"
fi
say "GPU (nvidia-smi): $SMI"
if [ -n "${OUT:-}" ]; then nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true; fi

command -v "$PYTHON" >/dev/null 2>&1 || die "no Python ($PYTHON) found; set PYTHON"
if ! TORCH="$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(), f"torch {torch.__version__} (CUDA build: {torch.version.cuda}) sees no GPU"; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")' 2>&1)"; then
    die "torch in $PYTHON cannot use the GPU: $(printf '%s' "$TORCH" | tail -n 1)"
fi
say "Python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])'); $TORCH"

if ! "$PYTHON" -c 'import ase_mpnn' >/dev/null 2>&1; then
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    if ! ERR="$("$PYTHON" -c 'import ase_mpnn, ase, vesin, scipy' 2>&1)"; then
        die "ase_mpnn does not import with $PYTHON, not even from the source tree: $(printf '%s' "$ERR" | tail -n 1)"
    fi
    say "ase_mpnn: not installed; imported from the source tree (PYTHONPATH=$ROOT)"
fi

# anchor_ok NAME CHECK: prints why the anchor cannot run here, or nothing if it can.
anchor_ok() {
    local py="$ANCHORS/.venvs/$1/bin/python" out
    if [ ! -x "$py" ]; then
        echo "no environment $py (benchmarks/anchors/setup_anchors.sh makes it; it needs the internet, and .venvs/ is git-ignored, so it is not copied with the working tree)"
        return
    fi
    if ! out="$(cd "$ANCHORS" && timeout 60 "$py" -c "$2; import torch; assert torch.cuda.is_available(), f'its torch {torch.__version__} (CUDA build: {torch.version.cuda}) cannot use the GPU'" 2>&1)"; then
        echo "$py fails its check: $(printf '%s' "$out" | tail -n 1)"
    fi
}
SPK_WHY="$(anchor_ok schnetpack "import schnetpack, schnetpack.transform, schnetpack.interfaces, ase, vesin")"
MACE_WHY="$(anchor_ok mace "import shim_e3nn_torch_load, mace.modules, mace.data, ase, vesin; from mace.calculators import MACECalculator")"
PAINN_MODE=()
MACE_MODE=()
if [ -n "$SPK_WHY" ]; then
    PAINN_MODE=(--ours-only)
    say "ANCHOR SKIPPED: schnetpack (PaiNN rows run ase_mpnn alone, no ratios): $SPK_WHY"
else
    say "Anchor: schnetpack environment works on the GPU (PaiNN rows side by side)"
fi
if [ -n "$MACE_WHY" ]; then
    MACE_MODE=(--ours-only)
    say "ANCHOR SKIPPED: mace-torch (MACE rows run ase_mpnn alone, no ratios): $MACE_WHY"
else
    say "Anchor: mace-torch environment works on the GPU (MACE rows side by side)"
fi
say ""

# --- runs ---------------------------------------------------------------------------
FAILED=0
# run NAME LIMIT_S ROWS MODE...: one bench_anchors.py run under timeout.
run() {
    local name="$1" limit="$2" rows="$3" rc=0 table log left
    shift 3
    left=$((TOTAL_S - SECONDS - 5))
    if [ "$left" -lt 30 ]; then
        say "## $name: not run (the script's $TOTAL_S s are nearly spent)"
        say ""
        FAILED=1
        return
    fi
    if [ "$limit" -gt "$left" ]; then limit="$left"; fi
    table="$(mktemp)"
    if [ -n "${OUT:-}" ]; then log="$OUT/gpu_bench_$name.log"; else log="$(mktemp)"; fi
    echo "== $name: bench_anchors.py --device cuda --threads $THREADS ${QUICK[*]-} $* --only '$rows' (limit ${limit} s)" >&2
    # stdout (the tables) to $table, stderr (progress) through tee to the log and stderr;
    # with pipefail the status is timeout's (tee's is 0).
    timeout --kill-after=15 "$limit" "$PYTHON" benchmarks/anchors/bench_anchors.py --device cuda \
        --threads "$THREADS" ${QUICK[@]+"${QUICK[@]}"} "$@" --only "$rows" 2>&1 >"$table" | tee "$log" >&2 || rc=$?
    say "## $name"
    say ""
    if [ -s "$table" ]; then
        say "$(cat "$table")"
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        say "($name: stopped by its time limit of $limit s; rows finished before it are in the progress lines of its log)"
        FAILED=1
    elif [ "$rc" -ne 0 ]; then
        say "($name: failed, exit status $rc; the end of its log:)"
        say "$(tail -n 15 "$log")"
        FAILED=1
    fi
    say ""
    rm -f "$table"
    if [ -z "${OUT:-}" ]; then rm -f "$log"; fi
}

# ${X[@]+"${X[@]}"}: an empty array is no argument, also under set -u in bash < 4.4
run painn-boxes 120 'painn-calc-box,painn-bare-box,painn-calc-big,painn-bare-big' ${PAINN_MODE[@]+"${PAINN_MODE[@]}"}
run painn-12k 150 'painn-calc-huge,painn-bare-huge' ${PAINN_MODE[@]+"${PAINN_MODE[@]}"}
run painn-rpmd 60 'painn-rpmd32-w1' ${PAINN_MODE[@]+"${PAINN_MODE[@]}"}
run mace 90 'mace-*' ${MACE_MODE[@]+"${MACE_MODE[@]}"}

if [ "$FAILED" -eq 0 ]; then
    say "gpu.sh: done in $SECONDS s"
else
    say "gpu.sh: done in $SECONDS s; a run failed or ran out of time (see above)"
fi
SKIPPED=""
if [ -n "$SPK_WHY" ]; then SKIPPED="schnetpack"; fi
if [ -n "$MACE_WHY" ]; then SKIPPED="${SKIPPED:+$SKIPPED and }mace-torch"; fi
if [ -n "$SKIPPED" ]; then
    say "gpu.sh: anchors skipped ($SKIPPED; see ANCHOR SKIPPED above): those rows are ase_mpnn alone, without ratios."
fi
exit "$FAILED"

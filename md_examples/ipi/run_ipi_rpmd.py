"""Ring-polymer MD of water with i-PI as the server and ase-mpnn clients, then spectra.

Starts ``i-pi`` on ``water_rpmd.xml`` (32 beads, 300 K; copied into ``--workdir`` with
the overrides below), waits for its socket, starts ``--clients`` processes of
``ase-mpnn ipi-client`` with the model, waits for i-PI to finish, and writes IR and Raman
spectra from the i-PI outputs (``ase-mpnn spectrum`` reads the input file, the extras
and the time step). Run it again after an interruption: i-PI continues from its
``RESTART`` checkpoint.

    python md_examples/ipi/run_ipi_rpmd.py --clients 2                  # 4000 steps, 1 ps
    python md_examples/ipi/run_ipi_rpmd.py --steps 40 --beads 4 --workdir /tmp/quick
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def ipi_server_command() -> list[str]:
    """``i-pi`` run by this interpreter (the script next to it, else the one on PATH)."""
    script = Path(sys.executable).parent / "i-pi"
    if not script.exists():
        found = shutil.which("i-pi")
        if found is None:
            raise SystemExit("i-PI is not installed: python -m pip install ipi")
        script = Path(found)
    return [sys.executable, str(script)]


def prepare(workdir: Path, steps: int | None, beads: int | None) -> tuple[str, str]:
    """Copy the input and structure into ``workdir``; returns (input file, socket name)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "water_init.xyz", workdir / "water_init.xyz")
    text = (HERE / "water_rpmd.xml").read_text()
    if steps is not None:
        text = re.sub(r"<total_steps>\d+</total_steps>", f"<total_steps>{steps}</total_steps>", text)
    if beads is not None:
        text = re.sub(r'nbeads="\d+"', f'nbeads="{beads}"', text)
    # A name of its own, so two runs on one machine do not share a socket.
    name = f"ase_mpnn_{uuid.uuid4().hex[:10]}"
    text = text.replace("<address>ase_mpnn_water</address>", f"<address>{name}</address>")
    (workdir / "input.xml").write_text(text)
    return "input.xml", name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "painn_water.pt"))
    parser.add_argument("--clients", type=int, default=2, help="ase-mpnn ipi-client processes (default 2)")
    parser.add_argument("--steps", type=int, help="total steps (default: the input's 4000)")
    parser.add_argument("--beads", type=int, help="beads (default: the input's 32)")
    parser.add_argument("--workdir", default="ipi_water_rpmd", help="run directory (default ipi_water_rpmd)")
    parser.add_argument("--max-lag", type=float, default=500.0, help="correlation length for the spectra, fs")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    if args.clients < 1:
        parser.error("--clients must be at least 1")

    workdir = Path(args.workdir).resolve()
    restart = workdir / "RESTART"
    if restart.exists() and (workdir / "input.xml").exists():
        # i-PI's checkpoint keeps the socket name; the clients need it.
        name = re.search(r"<address>\s*([^<\s]+)\s*</address>", restart.read_text()).group(1)
        server_input = "RESTART"
        print(f"{workdir}: continuing from i-PI's RESTART checkpoint")
    else:
        server_input, name = prepare(workdir, args.steps, args.beads)
    socket = Path(f"/tmp/ipi_{name}")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(workdir / "ipi.log", "a") as log:
        server = subprocess.Popen(ipi_server_command() + [server_input], cwd=workdir, stdout=log,
                                  stderr=subprocess.STDOUT, env=env)
    clients: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 120
        while not socket.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"i-PI did not open {socket}; see {workdir / 'ipi.log'}")
            time.sleep(0.2)
        client = [sys.executable, "-m", "ase_mpnn.cli", "ipi-client", "--model", str(Path(args.model).resolve()),
                  "--unix", name, "--structure", "water_init.xyz", "--dtype", args.dtype, "--timeout", "600"]
        for k in range(args.clients):
            with open(workdir / f"client_{k}.log", "a") as log:
                clients.append(subprocess.Popen(client, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env))
        print(f"i-PI running in {workdir} with {args.clients} ase-mpnn clients (socket {socket})", flush=True)
        rc = server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
        for c in clients:
            try:
                c.wait(timeout=30)  # they exit when i-PI says goodbye
            except subprocess.TimeoutExpired:
                c.kill()
    log_text = (workdir / "ipi.log").read_text()
    if rc != 0 or "I-PI reports success" not in log_text:
        print(log_text[-3000:], file=sys.stderr)
        raise SystemExit(f"i-PI failed (exit {rc}); see {workdir / 'ipi.log'}")
    print("i-PI finished; spectra:", flush=True)

    from ase_mpnn.spectra.report import write_spectra

    report = write_spectra([workdir / "input.xml"], workdir / "spectrum", temperature_K=300.0,
                           max_lag_fs=args.max_lag, ir=True, raman=True, power=False, pbc=False)
    print(report.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The i-PI client: units and virial, the socket protocol, and a real i-PI ring-polymer run.

The protocol tests talk to a small in-test server over a unix socket; the last test
starts a real i-PI (pip package ``ipi``) with two ``ase-mpnn ipi-client`` processes and
checks i-PI's dipole/polarizability extras, bead energies and virial against
MPNNCalculator evaluated at i-PI's bead positions.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.units import Bohr, Hartree

import ase_mpnn
from ase_mpnn import MPNNCalculator
from ase_mpnn.cli import main
from ase_mpnn.md.ipi_client import IPIClient, IPIConnectionError, IPIProtocolError
from ase_mpnn.spectra.trajectories import read_ipi_bin
from conftest import ipi_command

REPO = Path(__file__).resolve().parents[1]
SHIPPED_WATER_MODEL = REPO / "models" / "painn_water.pt"


def small_model():
    torch.manual_seed(0)
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=4.0, n_features=8, n_interactions=1)
    return model.to(torch.float64)


def water(box: float | None = None, shift=(0.0, 0.0, 0.0)) -> Atoms:
    positions = np.array([[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.05, -0.77, -0.45]]) + shift
    if box is None:
        return Atoms("OH2", positions=positions)
    return Atoms("OH2", positions=positions + box / 2, cell=[box] * 3, pbc=True)


@pytest.fixture
def socket_dir(tmp_path):
    """A directory for unix sockets, whose paths must stay under ~100 characters."""
    if len(str(tmp_path)) < 60:
        yield str(tmp_path)
        return
    directory = tempfile.mkdtemp(prefix="ipitest")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


# --- units, virial ----------------------------------------------------------------------

def test_compute_converts_units_and_virial_is_minus_dE_dstrain():
    calc = MPNNCalculator(small_model(), skin=0.0)
    atoms = Atoms("OH2OH2", cell=[[7.0, 0.0, 0.0], [0.9, 6.5, 0.0], [0.4, -0.7, 6.8]], pbc=True,
                  positions=[[1.0, 1.0, 1.1], [1.0, 1.8, 0.5], [1.1, 0.2, 0.6],
                             [3.5, 3.0, 3.3], [3.9, 3.7, 2.8], [2.7, 3.3, 3.8]])
    client = IPIClient(calc, atoms, unix="unused")
    h = atoms.cell.array.T / Bohr  # i-PI's cell: vectors as columns, Bohr
    energy, forces, virial, extras = client.compute(h, atoms.positions / Bohr)

    reference = atoms.copy()
    reference.calc = MPNNCalculator(small_model(), skin=0.0)
    assert energy == pytest.approx(reference.get_potential_energy() / Hartree, rel=1e-12)
    np.testing.assert_allclose(forces, reference.get_forces() * Bohr / Hartree, rtol=1e-10, atol=1e-14)
    extras = json.loads(extras)
    assert set(extras) == {"dipole", "polarizability"}
    np.testing.assert_allclose(extras["dipole"], reference.calc.get_property("dipole", reference) / Bohr,
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(extras["polarizability"],
                               reference.calc.get_property("polarizability", reference) * Hartree / Bohr**2,
                               rtol=1e-10, atol=1e-12)

    # i-PI's virial is W = -dE/dε (Hartree), ε a symmetric strain of cell and positions
    def strained_energy(eps):
        a = atoms.copy()
        a.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        a.calc = MPNNCalculator(small_model(), skin=0.0)
        return a.get_potential_energy() / Hartree

    d = 1e-5
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = d / 2 if i != j else d
            fd[i, j] = -(strained_energy(eps) - strained_energy(-eps)) / (2 * d)
    np.testing.assert_allclose(virial, fd, atol=1e-8 * max(1.0, np.abs(fd).max()))
    assert np.abs(virial).max() > 1e-5  # not trivially zero

    # a molecule (template without cell) sends a zero virial and the box is not periodic
    mol_client = IPIClient(calc, water(), unix="unused", extras=("dipole",), extras_units="ase")
    _, _, virial, extras = mol_client.compute(np.eye(3) * 30.0, water().positions / Bohr)
    assert not np.any(virial) and not mol_client.atoms.pbc.any()
    assert set(json.loads(extras)) == {"dipole"}  # e·Å with extras_units="ase"
    np.testing.assert_allclose(json.loads(extras)["dipole"],
                               MPNNCalculator(small_model()).get_property("dipole", water()), atol=1e-12)


def test_bad_arguments():
    calc = MPNNCalculator(small_model())
    with pytest.raises(ValueError, match="exactly one"):
        IPIClient(calc, water())
    with pytest.raises(ValueError, match="extras_units"):
        IPIClient(calc, water(), unix="x", extras_units="si")
    with pytest.raises(ValueError, match="unknown extras"):
        IPIClient(calc, water(), unix="x", extras=("charges",))


# --- the protocol against an in-test server -----------------------------------------------

def header(word: str) -> bytes:
    return word.ljust(12).encode()


def recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed")
        data += chunk
    return data


class FakeServer:
    """A unix-socket server running ``script(conn)`` in a thread, with timeouts."""

    def __init__(self, directory: str, script):
        self.name = f"t{uuid.uuid4().hex[:8]}"
        self.prefix = os.path.join(directory, "ipi_")
        self.path = self.prefix + self.name
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(20)
        self.result, self.error = None, None
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script):
        try:
            conn, _ = self.server.accept()
            conn.settimeout(20)
            with conn:
                self.result = script(conn)
        except Exception as err:  # reported by finish()
            self.error = err

    def finish(self):
        self.thread.join(30)
        self.server.close()
        os.unlink(self.path)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def posdata(cell_h: np.ndarray, positions: np.ndarray) -> bytes:
    return (header("POSDATA") + cell_h.tobytes() + np.linalg.inv(cell_h).tobytes()
            + struct.pack("=i", len(positions)) + positions.tobytes())


def test_protocol_exchange_and_exit(socket_dir):
    atoms = water(box=10.0)
    h = atoms.cell.array.T / Bohr
    positions = atoms.positions / Bohr

    def read_reply(conn):
        assert recv_exact(conn, 12) == header("FORCEREADY")
        energy, natoms = struct.unpack("=di", recv_exact(conn, 12))
        forces = np.frombuffer(recv_exact(conn, 24 * natoms), np.float64).reshape(natoms, 3)
        virial = np.frombuffer(recv_exact(conn, 72), np.float64).reshape(3, 3)
        (length,) = struct.unpack("=i", recv_exact(conn, 4))
        extras = json.loads(recv_exact(conn, length).decode())
        return energy, forces, virial, extras

    def script(conn):
        conn.sendall(header("STATUS"))
        assert recv_exact(conn, 12) == header("NEEDINIT")
        text = b"some parameters"
        conn.sendall(header("INIT") + struct.pack("=ii", 3, len(text)) + text)
        conn.sendall(header("STATUS"))
        assert recv_exact(conn, 12) == header("READY")
        # the classic exchange
        conn.sendall(posdata(h, positions))
        conn.sendall(header("STATUS"))
        assert recv_exact(conn, 12) == header("HAVEDATA")
        conn.sendall(header("GETFORCE"))
        replies = [read_reply(conn)]
        conn.sendall(header("STATUS"))
        assert recv_exact(conn, 12) == header("READY")
        # i-PI >= 3.3 (consolidate_messages) sends POSDATA and GETFORCE in one go
        conn.sendall(posdata(h, positions + 0.01) + header("GETFORCE"))
        replies.append(read_reply(conn))
        conn.sendall(header("STATUS"))
        assert recv_exact(conn, 12) == header("READY")
        conn.sendall(header("EXIT"))
        return replies

    server = FakeServer(socket_dir, script)
    calc = MPNNCalculator(small_model())
    client = IPIClient(calc, atoms, unix=server.name, sockets_prefix=server.prefix, connect_timeout=10, timeout=30)
    assert client.run() == 2
    assert client.bead == 3 and client.init_string == "some parameters"
    assert client.sock is None  # closed
    replies = server.finish()

    expected = IPIClient(calc, atoms, unix="unused")
    for reply, shift in zip(replies, (0.0, 0.01)):
        energy, forces, virial, extras = expected.compute(h, positions + shift)
        assert reply[0] == pytest.approx(energy, rel=1e-12)
        np.testing.assert_allclose(reply[1], forces, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(reply[2], virial, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(reply[3]["dipole"], json.loads(extras)["dipole"], rtol=1e-12)
    assert replies[0][0] != replies[1][0]


def test_server_going_away_is_a_clear_error(socket_dir):
    def script(conn):
        conn.sendall(header("STATUS"))
        recv_exact(conn, 12)
        # then the server dies without EXIT

    server = FakeServer(socket_dir, script)
    client = IPIClient(MPNNCalculator(small_model()), water(), unix=server.name,
                       sockets_prefix=server.prefix, connect_timeout=10, timeout=30)
    with pytest.raises(IPIConnectionError, match="closed the connection without sending EXIT"):
        client.run()
    server.finish()


def test_unsupported_requests_are_refused(socket_dir):
    def batched(conn):
        conn.sendall(header("STATUS"))
        recv_exact(conn, 12)
        text = b" batch_size:4"
        conn.sendall(header("INIT") + struct.pack("=ii", 0, len(text)) + text)
        return conn.recv(12)  # b"": the client hung up

    server = FakeServer(socket_dir, batched)
    client = IPIClient(MPNNCalculator(small_model()), water(), unix=server.name,
                       sockets_prefix=server.prefix, connect_timeout=10, timeout=30)
    with pytest.raises(IPIProtocolError, match="batch_size=4"):
        client.run()
    assert server.finish() == b""

    def wrong_size(conn):
        conn.sendall(header("STATUS"))
        recv_exact(conn, 12)
        conn.sendall(header("INIT") + struct.pack("=ii", 0, 0))
        conn.sendall(posdata(np.eye(3) * 20.0, np.zeros((5, 3))))
        try:
            return conn.recv(12)
        except ConnectionResetError:  # the client hung up with positions unread
            return b""

    server = FakeServer(socket_dir, wrong_size)
    client = IPIClient(MPNNCalculator(small_model()), water(), unix=server.name,
                       sockets_prefix=server.prefix, connect_timeout=10, timeout=30)
    with pytest.raises(IPIProtocolError, match="sent 5 atoms but the template structure has 3"):
        client.run()
    assert server.finish() == b""


def test_no_server_times_out(tmp_path, socket_dir, capsys):
    client = IPIClient(MPNNCalculator(small_model()), water(), unix="nobody-here",
                       sockets_prefix=os.path.join(socket_dir, "ipi_"), connect_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(IPIConnectionError, match="could not connect"):
        client.run()
    assert time.monotonic() - start < 10
    # the command line says so without a traceback
    model = tmp_path / "m.pt"
    ase_mpnn.save_model(small_model(), model)
    structure = tmp_path / "w.xyz"
    water().write(structure)
    args = ["ipi-client", "--model", str(model), "--structure", str(structure), "--connect-timeout", "0.3"]
    assert main(args + ["--unix", "nobody-here", "--sockets-prefix", os.path.join(socket_dir, "x_")]) == 1
    assert "could not connect" in capsys.readouterr().err
    assert main(args + ["--address", "no-port"]) == 2


def test_silent_server_times_out_by_default_and_says_what_it_waited_for(tmp_path, socket_dir, capsys):
    """A server that accepts and then says nothing (frozen, half-dead) must not hang the client."""
    from ase_mpnn.md.ipi_client import DEFAULT_TIMEOUT

    assert IPIClient(MPNNCalculator(small_model()), water(), unix="x").timeout == DEFAULT_TIMEOUT == 600
    release = threading.Event()

    def silent(conn):
        release.wait(20)  # accepted, then nothing: no STATUS, no EXIT, the socket stays open

    server = FakeServer(socket_dir, silent)
    client = IPIClient(MPNNCalculator(small_model()), water(), unix=server.name,
                       sockets_prefix=server.prefix, connect_timeout=10, timeout=0.3)
    start = time.monotonic()
    with pytest.raises(IPIConnectionError, match=r"sent nothing for 0\.3 s while this client waited for the next "
                       r"message .*frozen.*--timeout SECONDS") as info:
        client.run()
    assert time.monotonic() - start < 5
    assert "after 0 force evaluations" in str(info.value)
    release.set()
    server.finish()

    # Half-dead in the middle of a message: the error names what was missing.
    def half_posdata(conn):
        conn.sendall(header("STATUS"))
        recv_exact(conn, 12)
        conn.sendall(header("INIT") + struct.pack("=ii", 0, 0))
        conn.sendall(header("POSDATA") + np.eye(3).tobytes())  # then silence
        release.wait(20)

    release.clear()
    server = FakeServer(socket_dir, half_posdata)
    client = IPIClient(MPNNCalculator(small_model()), water(), unix=server.name,
                       sockets_prefix=server.prefix, connect_timeout=10, timeout=0.3)
    with pytest.raises(IPIConnectionError, match="waited for the rest of a POSDATA message"):
        client.run()
    release.set()
    server.finish()

    # From the command line: one line, exit code 1, the option to change it.
    release.clear()
    server = FakeServer(socket_dir, silent)
    model = tmp_path / "m.pt"
    ase_mpnn.save_model(small_model(), model)
    structure = tmp_path / "w.xyz"
    water().write(structure)
    assert main(["ipi-client", "--model", str(model), "--structure", str(structure), "--unix", server.name,
                 "--sockets-prefix", server.prefix, "--timeout", "0.3"]) == 1
    err = capsys.readouterr().err
    assert "sent nothing for 0.3 s" in err and "--timeout" in err and "Traceback" not in err
    release.set()
    server.finish()


def test_bad_timeouts_and_ports_are_refused():
    calc = MPNNCalculator(small_model())
    for timeout in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="timeout must be a number of seconds"):
            IPIClient(calc, water(), unix="x", timeout=timeout)
    assert IPIClient(calc, water(), unix="x", timeout=0).timeout is None  # 0: wait for ever
    for port in (0, 70000, -1, "31415"):
        with pytest.raises(ValueError, match="must be an integer from 1 to 65535"):
            IPIClient(calc, water(), address=("localhost", port))


# --- a real i-PI -----------------------------------------------------------------------

N_BEADS = 4
N_STEPS = 10
BOX = 12.0  # Å; the molecule is far from its periodic images (cutoff 5 Å)

IPI_INPUT = """<simulation verbosity="low" sockets_prefix="{prefix}" floatformat="%.16e">
  <output prefix="sim">
    <properties stride="1" filename="out"> [ step, time{{picosecond}}, conserved, temperature{{kelvin}}, potential, bead_potentials, virial_cv ] </properties>
    <trajectory filename="pos" stride="1" format="bin" cell_units="atomic_unit"> positions{{atomic_unit}} </trajectory>
    <trajectory filename="dipole" stride="1" extra_type="dipole"> extras </trajectory>
    <trajectory filename="polarizability" stride="1" extra_type="polarizability"> extras </trajectory>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>31415</seed></prng>
  <ffsocket name="mpnn" mode="unix" pbc="false">
    <address>{name}</address>
    <timeout>60</timeout>
  </ffsocket>
  <system>
    <initialize nbeads="{beads}">
      <file mode="xyz">init.xyz</file>
      <velocities mode="thermal" units="kelvin">300</velocities>
    </initialize>
    <forces><force forcefield="mpnn"/></forces>
    <motion mode="dynamics">
      <dynamics mode="nvt">
        <timestep units="femtosecond">0.25</timestep>
        <thermostat mode="pile_l"><tau units="femtosecond">100</tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units="kelvin">300</temperature></ensemble>
  </system>
</simulation>
"""


def read_extras(path: Path) -> dict[int, np.ndarray]:
    """i-PI's extras trajectory: ' #EXTRAS(name)# Step: N' then the rows of numbers."""
    frames: dict[int, list] = {}
    step = None
    for line in path.read_text().splitlines():
        if line.strip().startswith("#EXTRAS"):
            step = int(line.split("Step:")[1])
            frames[step] = []
        elif line.strip():
            frames[step].append([float(x) for x in line.split()])
    return {s: np.array(rows).squeeze() for s, rows in frames.items()}


def read_bead_trajectory(path: Path) -> dict[int, Atoms]:
    """i-PI's format="bin" trajectory (exact float64) as Atoms in Å, by step."""
    steps, names, positions, cells = read_ipi_bin(str(path))
    return {step: Atoms(names, positions=q, cell=h, pbc=True) for step, q, h in zip(steps, positions, cells)}


def test_real_ipi_rpmd_with_two_clients(tmp_path, socket_dir):
    command = ipi_command()
    if SHIPPED_WATER_MODEL.exists():
        model_path = SHIPPED_WATER_MODEL
    else:
        model_path = tmp_path / "small.pt"
        ase_mpnn.save_model(small_model(), model_path)
    template = water(box=BOX)
    template.write(tmp_path / "water.extxyz")
    with open(tmp_path / "init.xyz", "w") as f:
        f.write(f"3\n# CELL(abcABC): {BOX} {BOX} {BOX} 90 90 90 positions{{angstrom}} cell{{angstrom}}\n")
        for symbol, p in zip(template.get_chemical_symbols(), template.positions):
            f.write(f"{symbol} {p[0]:.10f} {p[1]:.10f} {p[2]:.10f}\n")
    name = f"mpnn{os.getpid()}_{uuid.uuid4().hex[:8]}"
    prefix = os.path.join(socket_dir, "ipi_")
    (tmp_path / "input.xml").write_text(
        IPI_INPUT.format(prefix=prefix, name=name, steps=N_STEPS, beads=N_BEADS))

    processes = []
    try:
        # the clients first: once both have loaded the model and wait for the socket,
        # i-PI starts and both get work
        for k in range(2):
            with open(tmp_path / f"client{k}.log", "w") as log:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "ase_mpnn.cli", "ipi-client", "--model", str(model_path),
                     "--unix", name, "--sockets-prefix", prefix, "--structure", "water.extxyz",
                     "--dtype", "float64", "--connect-timeout", "60", "--timeout", "90"],
                    cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "OMP_NUM_THREADS": "1"}))
        deadline = time.monotonic() + 60
        while not all("connecting to i-PI" in (tmp_path / f"client{k}.log").read_text() for k in range(2)):
            assert all(p.poll() is None for p in processes), "a client stopped before i-PI started"
            assert time.monotonic() < deadline, "the clients did not start within 60 s"
            time.sleep(0.1)
        with open(tmp_path / "ipi.log", "w") as log:
            server = subprocess.Popen(command + ["input.xml"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        processes.append(server)
        server_rc = server.wait(timeout=90)
        if server_rc != 0:
            pytest.fail("i-PI failed:\n" + (tmp_path / "ipi.log").read_text()[-3000:])
        client_rcs = [p.wait(timeout=15) for p in processes[:2]]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    logs = {f: (tmp_path / f).read_text() for f in ("ipi.log", "client0.log", "client1.log")}
    assert server_rc == 0, logs["ipi.log"][-3000:]
    assert "I-PI reports success" in logs["ipi.log"]
    assert client_rcs == [0, 0], logs
    evaluations = [int(logs[f"client{k}.log"].split("EXIT after ")[1].split()[0]) for k in range(2)]
    assert sum(evaluations) == N_BEADS * (N_STEPS + 1), evaluations
    assert min(evaluations) > 0, f"one client did all the work: {evaluations}"
    assert not os.path.exists(prefix + name)  # i-PI removed its socket

    calc = MPNNCalculator(str(model_path), dtype=torch.float64)
    properties = np.loadtxt(tmp_path / "sim.out", ndmin=2)
    assert [int(s) for s in properties[:, 0]] == list(range(N_STEPS + 1))
    dipole_au = Bohr ** -1
    polarizability_au = Hartree / Bohr**2
    for bead in range(N_BEADS):
        dipoles = read_extras(tmp_path / f"sim.dipole_{bead}")
        polarizabilities = read_extras(tmp_path / f"sim.polarizability_{bead}")
        frames = read_bead_trajectory(tmp_path / f"sim.pos_{bead}.bin")
        assert sorted(dipoles) == sorted(polarizabilities) == sorted(frames) == list(range(N_STEPS + 1))
        for step in range(N_STEPS + 1):
            atoms = frames[step]
            assert atoms.get_chemical_symbols() == template.get_chemical_symbols()
            np.testing.assert_allclose(atoms.cell.array, template.cell.array, atol=1e-6)
            r = calc.predict([atoms])[0]
            np.testing.assert_allclose(dipoles[step], r["dipole"] * dipole_au, atol=1e-6, rtol=0,
                                       err_msg=f"dipole, bead {bead}, step {step}")
            np.testing.assert_allclose(polarizabilities[step], r["polarizability"] * polarizability_au,
                                       atol=1e-6, rtol=1e-8, err_msg=f"polarizability, bead {bead}, step {step}")
            # properties: column 5 + bead is this bead's potential energy (Hartree)
            assert properties[step, 5 + bead] == pytest.approx(r["energy"] / Hartree, abs=1e-8, rel=1e-10)
    # the beads' dipoles differ (a real ring polymer, not one structure repeated)
    last = [read_extras(tmp_path / f"sim.dipole_{b}")[N_STEPS] for b in range(N_BEADS)]
    assert np.ptp(np.array(last), axis=0).max() > 1e-4

    # virial_cv = Σ_beads W_b / (V · n_beads) = mean over beads of -σ_b (Hartree/Bohr³),
    # written as [xx, yy, zz, xy, xz, yz]: checks the sign and i-PI's reading of the virial
    for step in (0, N_STEPS):
        stresses = []
        for bead in range(N_BEADS):
            atoms = read_bead_trajectory(tmp_path / f"sim.pos_{bead}.bin")[step]
            stresses.append(calc.predict([atoms], ["energy", "forces", "stress"])[0]["stress"])
        voigt = -np.mean(stresses, axis=0) * Bohr**3 / Hartree  # xx yy zz yz xz xy
        expected = voigt[[0, 1, 2, 5, 4, 3]]
        np.testing.assert_allclose(properties[step, 5 + N_BEADS:], expected,
                                   atol=1e-6 * np.abs(expected).max(), rtol=1e-6)
        assert np.abs(expected).max() > 0

"""A socket client for i-PI that also returns dipoles and polarizabilities.

i-PI (https://ipi-code.org) runs (path-integral) molecular dynamics and hands the
force evaluations of every bead to any number of clients connected through a unix or
inet socket. ASE's ``SocketClient`` answers with energy, forces and virial only; its
"extras" string is always empty. :class:`IPIClient` sends the model's dipole and
polarizability as JSON extras, so i-PI can write them next to the trajectory::

    <trajectory filename="dipole" stride="1" extra_type="dipole"> extras </trajectory>

>>> from ase.io import read
>>> from ase_mpnn import MPNNCalculator
>>> from ase_mpnn.md.ipi_client import run_client
>>> run_client(MPNNCalculator("models/painn_water.pt"), read("water.xyz"), unix="water")

or from the shell: ``ase-mpnn ipi-client --model M --unix water --structure water.xyz``.

Units on the wire are i-PI's atomic units. Energy: Hartree; forces: Hartree/Bohr;
virial: Hartree. The extras are a JSON object

    {"dipole": [mu_x, mu_y, mu_z], "polarizability": [[a_xx, a_xy, a_xz], [...], [...]]}

in **atomic units** by default (``extras_units="atomic"``): dipole in e·Bohr,
polarizability in e²·Bohr²/Hartree (= Bohr³, i.e. a.u. of polarizability; 1 a.u. =
0.1482 Å³), the units the rest of i-PI works in. ``extras_units="ase"`` sends the
calculator's own units instead: e·Å and e²·Å²/eV (ASE's convention; × 14.3996 for Å³).
i-PI stores the numbers verbatim and never converts them.

Virial convention: i-PI's virial is W = -dE/dε (the same sign as Σ_i r_i ⊗ f_i for pair
forces; its ``virial_md`` property is W / V). From an ASE stress σ = (1/V) dE/dε this is
W = -σ V, sent in Hartree as a row-major 3×3 matrix. A stress from an energy is
symmetric, so the row/column orientation cannot matter; i-PI keeps only the upper
triangle of the matrix it receives (its cells are upper-triangular). Structures that are
not periodic in all three directions send a zero virial.

Protocol (12-byte space-padded ASCII headers, native-endian numbers): i-PI sends STATUS,
the client answers NEEDINIT (before INIT), HAVEDATA (after a POSDATA) or READY. INIT:
bead index (int32), length (int32), string. POSDATA: cell h (9 float64, the cell vectors
as columns, Bohr), inverse cell (9 float64), number of atoms (int32), positions (3N
float64, Bohr). GETFORCE: the client answers FORCEREADY, energy (float64), N (int32),
forces (3N float64), virial (9 float64), extras length (int32), extras (bytes). EXIT ends
the client. i-PI ≥ 3.3 may send POSDATA and GETFORCE back to back without a STATUS in
between; answering messages strictly one after the other handles that. i-PI's batched
mode (``batch_size`` > 1 in ``<ffsocket>``) is not implemented: the client stops with an
error saying so.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.stress import voigt_6_to_full_3x3_stress
from ase.units import Bohr, Hartree

from ..model.properties import PROPERTY_TABLE, fully_periodic

__all__ = ["IPIClient", "run_client", "IPIConnectionError", "IPIProtocolError", "EXTRAS_UNITS", "DEFAULT_TIMEOUT"]

HEADER_LENGTH = 12
#: conversion factors from the calculator's units (eV, Å, e) to what goes in the extras
EXTRAS_UNITS = {
    "atomic": {"dipole": 1.0 / Bohr, "polarizability": Hartree / Bohr**2},
    "ase": {"dipole": 1.0, "polarizability": 1.0},
}
_EXTRA_SHAPES = {name: PROPERTY_TABLE[name].shape for name in ("dipole", "polarizability")}
#: Seconds without a message from i-PI before the client gives up. A live i-PI polls its
#: clients (STATUS) continually, idle ones included, so ten silent minutes mean a frozen
#: or half-dead server, not a busy one.
DEFAULT_TIMEOUT = 600.0
_NEXT_MESSAGE = "the next message (STATUS, INIT, POSDATA, GETFORCE or EXIT)"


class IPIConnectionError(ConnectionError):
    """The i-PI server could not be reached, or went away before sending EXIT."""


class IPIProtocolError(RuntimeError):
    """i-PI sent something this client does not understand or cannot serve."""


def _header(word: str) -> bytes:
    return word.ljust(HEADER_LENGTH).encode("ascii")


class IPIClient:
    """Serve i-PI force requests with an ASE calculator, dipole and polarizability included.

    Args:
        calculator: an ASE calculator, normally :class:`~ase_mpnn.MPNNCalculator`. It is
            called as ``calculator.calculate(atoms, properties, all_changes)`` with
            energy, forces, stress (fully periodic structures only) and the requested
            extras, in one pass, and read from ``calculator.results``.
        atoms: template structure. i-PI sends only positions and the cell: atomic numbers,
            masses, ``info`` (e.g. ``info["charge"]``) and the periodicity come from here.
        address: ``(host, port)`` of an inet socket (``<ffsocket mode="inet">``).
        unix: name of a unix socket (``<ffsocket mode="unix"><address>name``); the socket
            file is ``sockets_prefix + unix``.
        sockets_prefix: i-PI's ``<simulation sockets_prefix=...>`` (default ``/tmp/ipi_``).
        pbc: periodicity of the structures handed to the calculator. None (default) takes
            the template's ``pbc``: a template read from a plain .xyz (no cell) is a
            molecule, and the box that i-PI always sends is then kept on ``atoms.cell``
            but not used as periodic. A fully periodic structure gets a stress → virial.
        extras: which calculator results to send as JSON extras (any of "dipole",
            "polarizability"; an empty sequence sends an empty string as ASE does).
        extras_units: "atomic" (default: e·Bohr, Bohr³) or "ase" (e·Å, e²Å²/eV).
        connect_timeout: seconds to keep retrying the connection while the server starts.
        timeout: seconds to wait for any message from i-PI before giving up (default
            :data:`DEFAULT_TIMEOUT`, 600 s); None or 0 waits for ever.
        log: called with one line of text on connection and at the end (e.g. ``print``).
    """

    def __init__(
        self,
        calculator,
        atoms: Atoms,
        address: tuple[str, int] | None = None,
        unix: str | None = None,
        sockets_prefix: str = "/tmp/ipi_",
        pbc: bool | Sequence[bool] | None = None,
        extras: Iterable[str] = ("dipole", "polarizability"),
        extras_units: str = "atomic",
        connect_timeout: float = 60.0,
        timeout: float | None = DEFAULT_TIMEOUT,
        log: Callable[[str], Any] | None = None,
    ):
        if (address is None) == (unix is None):
            raise ValueError("give exactly one of address=(host, port) and unix=name")
        if address is not None:
            port = address[1]
            if isinstance(port, bool) or not isinstance(port, (int, np.integer)) or not 0 < port < 65536:
                raise ValueError(f"the port of address {address!r} must be an integer from 1 to 65535 "
                                 "(i-PI's <ffsocket><port>)")
        if timeout is not None and not (np.isfinite(timeout) and timeout >= 0):
            raise ValueError(f"timeout must be a number of seconds >= 0 (0 or None: wait for ever), got {timeout!r}")
        if not (np.isfinite(connect_timeout) and connect_timeout >= 0):
            raise ValueError(f"connect_timeout must be a number of seconds >= 0, got {connect_timeout!r}")
        if extras_units not in EXTRAS_UNITS:
            raise ValueError(f"extras_units must be one of {sorted(EXTRAS_UNITS)}, got {extras_units!r}")
        self.extras = tuple(extras)
        unknown = set(self.extras) - set(_EXTRA_SHAPES)
        if unknown:
            raise ValueError(f"unknown extras {sorted(unknown)}: choose from {sorted(_EXTRA_SHAPES)}")
        if len(atoms) == 0:
            raise ValueError("the template structure has no atoms")
        self.calculator = calculator
        self.atoms = atoms.copy()
        self.atoms.calc = None
        self.atoms.constraints = []
        if pbc is not None:
            self.atoms.pbc = pbc
        self.address = address
        self.unix_path = None if unix is None else sockets_prefix + unix
        self.extras_units = extras_units
        self.connect_timeout = float(connect_timeout)
        self.timeout = float(timeout) if timeout else None  # 0: no limit, as None
        self.log = log
        self.sock: socket.socket | None = None
        self.bead: int | None = None  # bead index from i-PI's INIT message
        self.init_string = ""
        self.evaluations = 0
        self._reply: bytes | None = None  # the FORCEREADY payload, once computed

    # connection --------------------------------------------------------------------
    @property
    def where(self) -> str:
        return f"unix socket {self.unix_path}" if self.unix_path else f"{self.address[0]}:{self.address[1]}"

    def connect(self) -> None:
        """Connect, retrying for ``connect_timeout`` seconds while the server starts."""
        deadline = time.monotonic() + self.connect_timeout
        self._say(f"connecting to i-PI at {self.where}")
        while True:
            if self.unix_path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                target: Any = self.unix_path
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                target = (self.address[0], int(self.address[1]))
            sock.settimeout(max(1.0, min(10.0, self.connect_timeout)))
            try:
                sock.connect(target)
                break
            except (FileNotFoundError, ConnectionRefusedError, socket.timeout) as err:
                sock.close()
                if time.monotonic() >= deadline:
                    raise IPIConnectionError(
                        f"could not connect to i-PI at {self.where} within {self.connect_timeout:g} s "
                        f"({err.__class__.__name__}): is the server running, with the same address?"
                    ) from err
                time.sleep(0.2)
            except OSError:
                sock.close()
                raise
        sock.settimeout(self.timeout)
        self.sock = sock
        self._say(f"connected to i-PI at {self.where}")

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> "IPIClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the protocol --------------------------------------------------------------------
    def run(self) -> int:
        """Answer i-PI until it sends EXIT; return the number of force evaluations.

        Raises :class:`IPIConnectionError` if the server goes away without EXIT and
        :class:`IPIProtocolError` on a message it cannot serve. The socket is closed
        on return either way.
        """
        if self.sock is None:
            self.connect()
        try:
            while True:
                word = self._recv(HEADER_LENGTH, _NEXT_MESSAGE).decode("ascii", errors="replace").strip()
                if word == "STATUS":
                    if self.bead is None:
                        self._send(_header("NEEDINIT"))
                    elif self._reply is not None:
                        self._send(_header("HAVEDATA"))
                    else:
                        self._send(_header("READY"))
                elif word == "INIT":
                    self._init()
                elif word == "POSDATA":
                    self._posdata()
                elif word == "GETFORCE":
                    if self._reply is None:
                        raise IPIProtocolError("i-PI asked for forces (GETFORCE) before sending positions")
                    self._send(self._reply)
                    self._reply = None
                elif word == "EXIT":
                    self._say(f"i-PI sent EXIT after {self.evaluations} force evaluations")
                    return self.evaluations
                else:
                    raise IPIProtocolError(f"unexpected message {word!r} from i-PI at {self.where}")
        finally:
            self.close()

    def _init(self) -> None:
        bead, length = struct.unpack("=ii", self._recv(8, "the rest of an INIT message"))
        text = self._recv(length, "the rest of an INIT message").decode("utf-8", errors="replace") if length > 0 else ""
        for item in text.replace(",", " ").split():
            key, _, value = item.partition(":")
            if key.strip() == "batch_size" and value.strip().isdigit() and int(value) > 1:
                raise IPIProtocolError(
                    f"i-PI asks for batched requests (batch_size={int(value)}), which this client does "
                    "not implement: remove batch_size from <ffsocket> (or set it to 1)"
                )
        self.bead, self.init_string = bead, text

    def _posdata(self) -> None:
        what = "the rest of a POSDATA message (cell and positions)"
        h = np.frombuffer(self._recv(72, what), dtype=np.float64).reshape(3, 3)
        self._recv(72, what)  # the inverse cell: not needed
        (natoms,) = struct.unpack("=i", self._recv(4, what))
        if natoms != len(self.atoms):
            raise IPIProtocolError(
                f"i-PI sent {natoms} atoms but the template structure has {len(self.atoms)}: "
                "give the client the same structure as i-PI's <initialize>"
            )
        positions = np.frombuffer(self._recv(24 * natoms, what), dtype=np.float64).reshape(natoms, 3)
        energy, forces, virial, extras = self.compute(h, positions)
        extras_bytes = extras.encode("utf-8")
        self._reply = b"".join([
            _header("FORCEREADY"),
            struct.pack("=d", energy),
            struct.pack("=i", natoms),
            np.ascontiguousarray(forces, dtype=np.float64).tobytes(),
            np.ascontiguousarray(virial, dtype=np.float64).tobytes(),
            struct.pack("=i", len(extras_bytes)),
            extras_bytes,
        ])
        self.evaluations += 1

    # the physics -----------------------------------------------------------------------
    def compute(self, cell_h: np.ndarray, positions: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, str]:
        """Energy, forces, virial (atomic units) and the extras JSON for one i-PI request.

        ``cell_h`` is i-PI's cell matrix (cell vectors as columns) and ``positions`` are
        (N, 3), both in Bohr, exactly as they come in a POSDATA message.
        """
        atoms = self.atoms
        atoms.set_cell(np.asarray(cell_h, dtype=np.float64).reshape(3, 3).T * Bohr, scale_atoms=False)
        atoms.positions[:] = np.asarray(positions, dtype=np.float64).reshape(-1, 3) * Bohr
        periodic = fully_periodic([atoms])
        properties = ["energy", "forces", *(["stress"] if periodic else []), *self.extras]
        self.calculator.calculate(atoms, properties, all_changes)
        results = self.calculator.results
        missing = [p for p in properties if p not in results]
        if missing:
            raise IPIProtocolError(f"the calculator did not return {missing}")
        energy = float(results["energy"]) / Hartree
        forces = np.asarray(results["forces"], dtype=np.float64).reshape(-1, 3) * (Bohr / Hartree)
        if periodic:
            stress = np.asarray(results["stress"], dtype=np.float64)
            if stress.shape == (6,):
                stress = voigt_6_to_full_3x3_stress(stress)
            virial = (-stress * atoms.get_volume()).T / Hartree
        else:
            virial = np.zeros((3, 3))
        extras = ""
        if self.extras:
            factors = EXTRAS_UNITS[self.extras_units]
            payload = {
                name: (np.asarray(results[name], dtype=np.float64).reshape(_EXTRA_SHAPES[name]) * factors[name]).tolist()
                for name in self.extras
            }
            extras = json.dumps(payload)
        return energy, forces, virial, extras

    # bytes ------------------------------------------------------------------------------
    def _recv(self, n: int, what: str) -> bytes:
        """Exactly ``n`` bytes of ``what`` (named in the error if i-PI falls silent)."""
        buffer = bytearray(n)
        view = memoryview(buffer)
        got = 0
        while got < n:
            try:
                k = self.sock.recv_into(view[got:], n - got)
            except socket.timeout as err:
                raise IPIConnectionError(
                    f"i-PI at {self.where} sent nothing for {self.timeout:g} s while this client waited for {what} "
                    f"(after {self.evaluations} force evaluations): the server is frozen, stopped without closing "
                    "the socket, or slower than the timeout. If i-PI really pauses that long, raise the limit "
                    "(ase-mpnn ipi-client --timeout SECONDS, or timeout=...; 0 waits for ever)"
                ) from err
            except OSError as err:
                raise IPIConnectionError(f"lost the connection to i-PI at {self.where}: {err}") from err
            if k == 0:
                raise IPIConnectionError(
                    f"i-PI at {self.where} closed the connection without sending EXIT "
                    f"(after {self.evaluations} force evaluations): the server stopped or crashed"
                )
            got += k
        return bytes(buffer)

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as err:
            raise IPIConnectionError(f"lost the connection to i-PI at {self.where}: {err}") from err

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)


def run_client(calculator, atoms: Atoms, **kwargs) -> int:
    """Connect to i-PI and serve it until EXIT (see :class:`IPIClient` for the arguments).

    Returns the number of force evaluations this client did.
    """
    with IPIClient(calculator, atoms, **kwargs) as client:
        client.connect()
        return client.run()

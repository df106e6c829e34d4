"""Bad inputs, one row each: what is given, which error (type or exit code), which words it must say.

Every input a hostile or careless user tried (issue 12) and every one the other tests
already refuse is a row here, so the count can only grow (``MINIMUM_ROWS``). A library
row names an exception type; a command-line row an exit code, and then the message must
be one line on stderr without a traceback. A row whose error is ``None`` is an input
that used to hang or return garbage and must now give the right answer quickly (its
callable checks the answer). Every row must finish within ``Row.seconds``.

Kept fast with tiny models (``build_model``, 8 features) built once per module.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError

from ase_mpnn import (
    InputError,
    ModelFileError,
    MPNNCalculator,
    NeighborListError,
    VerletNeighborList,
    build_model,
    load_model,
    neighbor_list,
    read_header,
    save_model,
)
from ase_mpnn.cli import main
from ase_mpnn.training.data import DataError, read_dataset, split_indices
from ase_mpnn.md import langevin, nve, run_md
from ase_mpnn.md.guards import MDBlowUpError
from ase_mpnn.md.ipi_client import IPIClient, IPIConnectionError
from ase_mpnn.model.potential import NonFiniteResultError
from ase_mpnn.training.train import TrainConfig, train
from ase_mpnn.model.zoo import HyperparameterError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "painn_water.pt"
WATER_DATA = REPO / "tests" / "data" / "water_small.extxyz"
#: Rows may be added, never removed: the table only grows.
MINIMUM_ROWS = 203


# --- what the rows share: tiny models and files, made once per module -----------------------

class Env:
    """Lazily made inputs shared by the rows (a tiny model, its file, structure files, ...)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.cleanup: list[Callable[[], Any]] = []  # run when the module's rows are done

    def path(self, name: str) -> Path:
        return self.dir / f"{uuid.uuid4().hex[:6]}_{name}"

    @cached_property
    def model(self):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return build_model("painn", ["H", "O"], cutoff=4.0, n_features=8, n_interactions=1, n_rbf=6).double()

    def calc(self, **kwargs) -> MPNNCalculator:
        return MPNNCalculator(copy.deepcopy(self.model), **kwargs)

    def water(self, **kwargs) -> Atoms:
        atoms = molecule("H2O")
        atoms.calc = self.calc(**kwargs)
        return atoms

    @cached_property
    def trained_model(self):
        """The tiny model with a training-distance record, as training writes it."""
        model = copy.deepcopy(self.model)
        model.set_training_min_distances({"H-O": 0.9, "H-H": 1.4})
        return model

    @cached_property
    def model_file(self) -> Path:
        path = self.dir / "tiny.pt"
        save_model(self.model, path)
        return path

    @cached_property
    def shipped_calc(self) -> MPNNCalculator:
        return MPNNCalculator(SHIPPED)

    @cached_property
    def water_file(self) -> str:
        path = self.dir / "water.xyz"
        ase.io.write(path, molecule("H2O"))
        return str(path)

    def text_file(self, text: str, name: str = "notes.txt") -> str:
        path = self.path(name)
        path.write_text(text)
        return str(path)

    def edited_model(self, edit: Callable[[dict], Any], keep_checksum: bool = True) -> Path:
        """The tiny model's file with its header edited (checksum kept: as a user editing it would)."""
        payload = torch.load(self.model_file, weights_only=True)
        payload["header"] = json.dumps(edit(json.loads(payload["header"])))
        if not keep_checksum:
            del payload["checksum"]  # as a file of a version before checksums
        path = self.path("edited.pt")
        torch.save(payload, path)
        return path

    def flipped_model(self) -> Path:
        data = bytearray(self.model_file.read_bytes())
        with zipfile.ZipFile(self.model_file) as archive:
            info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
        data[info.header_offset + 30 + name_length + extra_length + info.file_size // 2] ^= 0x04
        path = self.path("flipped.pt")
        path.write_bytes(bytes(data))
        return path

    def saved_with(self, change: Callable[[Any], None]) -> Path:
        model = copy.deepcopy(self.model)
        with torch.no_grad():
            change(model)
        return save_model(model, self.path("changed.pt"))

    def data_file(self, change: Callable[[list[Atoms]], None] | None = None) -> str:
        frames = ase.io.read(WATER_DATA, ":")
        if change is not None:
            change(frames)
        path = self.path("data.extxyz")
        ase.io.write(path, frames)
        return str(path)

    def train_config(self, **overrides) -> TrainConfig:
        values = dict(data=str(WATER_DATA), output=str(self.path("m.pt")), architecture="painn", cutoff=4.0,
                      hyperparameters={"n_features": 8, "n_interactions": 1, "n_rbf": 6}, split=[0.6, 0.2, 0.2],
                      batch_size=6, max_epochs=1, dtype="float64", loss_weights={"energy": 1.0, "forces": 1.0})
        values.update(overrides)
        return TrainConfig.from_dict(values)

    def yaml_file(self, text: str) -> str:
        path = self.path("config.yaml")
        path.write_text(text.replace("DATA", str(WATER_DATA)))
        return str(path)

    @cached_property
    def socket_dir(self) -> str:
        directory = tempfile.mkdtemp(prefix="ipitab")  # unix socket paths must stay short
        self.cleanup.append(lambda: shutil.rmtree(directory, ignore_errors=True))
        return directory

    def silent_server(self) -> tuple[str, str]:
        """An i-PI 'server' that accepts one client and then says nothing: (name, prefix)."""
        name = f"s{uuid.uuid4().hex[:6]}"
        prefix = os.path.join(self.socket_dir, "ipi_")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(prefix + name)
        server.listen(1)
        release = threading.Event()

        def run():
            server.settimeout(20)
            try:
                conn, _ = server.accept()
                release.wait(20)
                conn.close()
            except OSError:
                pass
            server.close()

        threading.Thread(target=run, daemon=True).start()
        self.cleanup.append(release.set)
        return name, prefix


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    environment = Env(tmp_path_factory.mktemp("bad_inputs"))
    yield environment
    for undo in environment.cleanup:
        undo()


# --- the rows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    name: str
    give: Callable[[Env], Any]  # library: does the bad call; command line: returns argv
    expect: type[BaseException] | int | None  # exception type, exit code, or None: must just work
    words: tuple[str, ...] = ()
    cli: bool = False
    seconds: float = 20.0
    needs: Callable[[], str | None] | None = None  # returns a reason to skip, or None


def lib(name, give, error, *words, seconds=20.0, needs=None) -> Row:
    return Row(name, give, error, words, False, seconds, needs)


def cli(name, argv, code, *words, seconds=20.0, needs=None) -> Row:
    return Row(name, argv, code, words, True, seconds, needs)


def ok(name, give, seconds=5.0) -> Row:
    """An input that used to hang or give garbage: must now work, quickly (``give`` checks the answer)."""
    return Row(name, give, None, (), False, seconds)


def _no_cuda() -> str | None:
    return "this torch has CUDA: the no-CUDA message cannot be shown" if torch.cuda.is_available() else None


def _moved(atoms: Atoms, position: np.ndarray, index: int = 2) -> Atoms:
    atoms.positions[index] = position
    return atoms


def _overlap(env, index_a=1, index_b=2, offset=(0.0, 0.0, 0.0)):
    atoms = env.water()
    atoms.positions[index_b] = atoms.positions[index_a] + np.asarray(offset)
    return atoms.get_potential_energy()


def _evaluate(env, atoms: Atoms):
    atoms.calc = env.calc()
    return atoms.get_forces()


def _as_symbols(symbols: str):
    def give(env):
        atoms = env.water()
        atoms.symbols = symbols
        return atoms.get_potential_energy()
    return give


def _with_nan(value, index=2, axis=1):
    def give(env):
        atoms = env.water()
        atoms.positions[index, axis] = value
        return atoms.get_potential_energy()
    return give


def _nan_after_valid_step(env):
    atoms = env.water()
    atoms.get_forces()
    atoms.positions[0, 0] = np.nan
    return atoms.get_forces()


def _periodic_overlap(env):
    box = Atoms("OH", positions=[[0.0, 0, 0], [3.0, 0, 0]], cell=[3.0, 3.0, 3.0], pbc=True)
    box.calc = env.calc()
    return box.get_forces()


def _no_cell(env):
    atoms = env.water()
    atoms.pbc = True
    return atoms.get_potential_energy()


def _singular_cell(env):
    atoms = env.water()
    atoms.set_cell([[4.0, 0, 0], [0, 4.0, 0], [4.0, 4.0, 0]])
    atoms.pbc = True
    return atoms.get_forces()


def _nearly_singular_cell(env):
    atoms = env.water()
    a = np.array([3.0, 0.0, 0.0])
    atoms.set_cell([a, a + [0.0, 1e-3, 0.0], [0.0, 0.0, 3.0]])
    atoms.pbc = True
    return atoms.get_forces()


def _charge(value):
    def give(env):
        atoms = env.water()
        atoms.info["charge"] = value
        return atoms.get_potential_energy()
    return give


def _float32_overflow(env):
    atoms = molecule("H2O")
    atoms.calc = env.calc(dtype=torch.float32)
    # Finite weights and inputs; the float64 energy scale's gradient overflows in float32.
    atoms.calc.model.energy_scale.fill_(1e300)
    return atoms.get_forces()


def _predict_far(env, distance):
    """The tiny model in float32 gives the same answer 1e6 or 1e8 Å from the origin."""
    calc = env.calc(dtype=torch.float32)
    here = molecule("H2O")
    there = here.copy()
    there.positions += distance * np.array([0.6, -0.48, 0.64])
    a, b = calc.predict([here, there], ["energy", "forces"])
    assert abs(a["energy"] - b["energy"]) < 1e-5
    np.testing.assert_allclose(a["forces"], b["forces"], atol=1e-5)


def _huge_cutoff_molecule(env):
    i, _, _ = neighbor_list(molecule("CH3CH2OH").positions, np.zeros((3, 3)), False, 5000.0)
    assert len(i) == 9 * 8


def _large_water_box(env):
    spacing = (18.015 / 0.6022) ** (1 / 3)
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing
    positions = (grid[:, None] + molecule("H2O").positions[None]).reshape(-1, 3)
    i, _, _ = neighbor_list(positions, np.eye(3) * 16 * spacing, True, 5.5)
    assert len(i) > 8e5


def _trained_close_pair(env):
    atoms = Atoms("OH", positions=[[0, 0, 0], [0.4, 0, 0]])
    atoms.calc = MPNNCalculator(env.trained_model)
    return atoms.get_potential_energy()


def _shipped_pair_at_min_distance(env):
    atoms = molecule("H2O")
    atoms.positions[2] = atoms.positions[1] + [0.1, 0.0, 0.0]
    atoms.calc = env.shipped_calc
    return atoms.get_potential_energy()


def _shipped_dtype(dtype):
    return lambda env: MPNNCalculator(SHIPPED, dtype=dtype)


def _model_in(dtype):
    return lambda env: MPNNCalculator(copy.deepcopy(env.model).to(dtype), dtype=None)


def _nan_weights(env):
    path = env.saved_with(lambda m: next(m.parameters()).__setitem__(0, float("nan")))
    return load_model(path)


def _nan_weights_in_memory(env):
    model = copy.deepcopy(env.model)
    with torch.no_grad():
        next(model.parameters())[0] = float("inf")
    return MPNNCalculator(model)


def _stress_of_molecule(env):
    atoms = env.water()
    return atoms.get_stress()


def _unsafe_pickle(env):
    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    payload = torch.load(env.model_file, weights_only=True)
    path = env.path("evil.pt")
    torch.save({**payload, "evil": Payload()}, path)
    return load_model(path)


def _truncated(env):
    data = env.model_file.read_bytes()
    path = env.path("truncated.pt")
    path.write_bytes(data[: len(data) // 2])
    return load_model(path)


def _torch_file(obj, name="other.pt"):
    def give(env):
        path = env.path(name)
        torch.save(obj, path)
        return load_model(path)
    return give


def _edited(edit, keep_checksum=True):
    return lambda env: load_model(env.edited_model(edit, keep_checksum))


def _config(**changes):
    return lambda header: {**header, "config": {**header["config"], **changes}}


def _future(header):
    return {**header, "format_version": 999, "package_version": "99.0"}


def _run_langevin(timestep, temperature=300.0, friction=0.01):
    return lambda env: langevin(molecule("H2O"), temperature, timestep, friction)


def _blow_up(timestep):
    def give(env):
        atoms = molecule("H2O")
        atoms.calc = env.shipped_calc
        atoms.set_momenta(np.random.default_rng(0).normal(size=(3, 3)) * 0.3)
        with pytest.warns(UserWarning, match="larger than 1 fs"):
            dyn = langevin(atoms, 300.0, timestep, 0.01, seed=1)
        return run_md(dyn, 1000, progress=False)
    return give


def _run_md_steps(steps):
    def give(env):
        atoms = env.water()
        return run_md(nve(atoms, 0.5), steps, progress=False)
    return give


def _ipi_silent(env):
    name, prefix = env.silent_server()
    client = IPIClient(env.calc(), molecule("H2O"), unix=name, sockets_prefix=prefix, connect_timeout=5, timeout=0.3)
    return client.run()


def _ipi_cli_silent(env):
    name, prefix = env.silent_server()
    return ["ipi-client", "--model", str(env.model_file), "--structure", env.water_file, "--unix", name,
            "--sockets-prefix", prefix, "--timeout", "0.3"]


def _ipi_no_server(env):
    return ["ipi-client", "--model", str(env.model_file), "--structure", env.water_file, "--unix", "nobody",
            "--sockets-prefix", os.path.join(env.socket_dir, "none_"), "--connect-timeout", "0.2"]


def _train(**overrides):
    return lambda env: train(env.train_config(**overrides), progress=False)


def _overlapping_frame(frames):
    frames[7].positions[2] = frames[7].positions[1] + [0.01, 0.0, 0.0]


def _nan_label(frames):
    frames[3].calc.results["energy"] = float("nan")


def _rpmd_resumed_with_other_temperature(env):
    base = ["rpmd", env.water_file, "--model", str(env.model_file), "-o", str(env.path("rpmd.h5")), "--beads", "2",
            "--interval", "2", "--checkpoint-interval", "2", "--no-progress", "--dtype", "float64"]
    assert main(base + ["--steps", "4"]) == 0
    return base + ["--steps", "8", "--temperature", "200"]


def _predict_argv(*extra, structures=None):
    return lambda env: ["predict", str(env.model_file), structures(env) if structures else env.water_file, *extra]


def _md_argv(*extra, model=None):
    return lambda env: ["md", env.water_file, "--model", str(model or env.model_file), "-o",
                        str(env.path("md.h5")), "--no-progress", *extra]


def _train_argv(text):
    return lambda env: ["train", env.yaml_file(text)]


# --- data loss and resumes (each row builds what it needs, then does the bad thing) -------

def _train_over_data(env):
    data = env.path("data.extxyz")
    shutil.copy(WATER_DATA, data)
    before = data.read_bytes()
    try:
        train(env.train_config(data=str(data), output=str(data)), progress=False)
    finally:
        assert data.read_bytes() == before, "the data file was overwritten"


def _shipped_md_argv(structure, output, *extra):
    return ["md", str(structure), "--model", str(SHIPPED), "--steps", "4", "-o", str(output), "--no-progress", *extra]


def _md_over_structure(env):
    structure = env.path("water.xyz")
    ase.io.write(structure, molecule("H2O"))
    return _shipped_md_argv(structure, structure)


def _md_resume_with(*changed):
    def give(env):
        structure, record = env.path("water.xyz"), env.path("md.h5")
        ase.io.write(structure, molecule("H2O"))
        assert main(_shipped_md_argv(structure, record)) == 0
        return _shipped_md_argv(structure, record, "--steps", "8", *changed)
    return give


def _train_resume_with_other_lr(env):
    config = env.train_config(workdir=str(env.path("run")), max_epochs=2)
    train(config, progress=False)
    train(TrainConfig.from_dict({**{f: getattr(config, f) for f in ("data", "output", "workdir", "architecture",
                                                                    "cutoff", "hyperparameters", "split",
                                                                    "batch_size", "dtype", "loss_weights")},
                                 "max_epochs": 3, "lr": 5e-3}), progress=False)


def _record_truncated(env):
    from ase_mpnn.md import MDRecorder, read_record

    path = env.path("md.h5")
    atoms = env.water()
    with MDRecorder(atoms, path, timestep_fs=0.5, flush_interval_s=0) as recorder:
        for _ in range(50):
            recorder()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    read_record(path)


def _second_writer_through_link(env):
    from ase_mpnn.md import MDRecorder

    real, link = env.path("real.h5"), env.path("link.h5")
    link.symlink_to(real)
    atoms = env.water()
    with MDRecorder(atoms, real, timestep_fs=0.5):
        MDRecorder(atoms, link)



def _evaluate_overflowing_model(env):
    from ase_mpnn.training.evaluate import predict_dataset

    model = copy.deepcopy(env.model).double()
    with torch.no_grad():
        model.energy_scale.fill_(float("inf"))
    predict_dataset(model, read_dataset(str(WATER_DATA)))


ROWS: list[Row] = [
    # --- structures through the calculator ----------------------------------------------------
    lib("element the model lacks", _as_symbols("CH2"), InputError, "element(s) C not supported", "H, O only"),
    lib("dummy atom X", lambda env: _evaluate(env, Atoms("XH", positions=[[0, 0, 0], [1, 0, 0]])), InputError,
        "not supported"),
    lib("unknown element in a batch", lambda env: env.calc().predict([molecule("H2O"), molecule("CH4")]),
        InputError, "element(s) C not supported"),
    lib("NaN position", _with_nan(np.nan), NeighborListError, "NaN or infinite values (atoms 2)"),
    lib("+inf position", _with_nan(np.inf), NeighborListError, "NaN or infinite values (atoms 2)"),
    lib("-inf position", _with_nan(-np.inf, 0, 0), NeighborListError, "NaN or infinite values (atoms 0)"),
    lib("NaN position after a valid step", _nan_after_valid_step, NeighborListError, "NaN"),
    lib("NaN cell", lambda env: _evaluate(env, Atoms("OH2", positions=molecule("H2O").positions,
        cell=[np.nan, 4, 4])), NeighborListError, "cell contains NaN"),
    lib("duplicated atom", _overlap, InputError, "atoms 1 and 2", "0 Å apart", "overlapping"),
    lib("duplicated atom in a batch", lambda env: env.calc().predict(
        [molecule("H2O"), _moved(molecule("H2O"), molecule("H2O").positions[1])]),
        InputError, "structure 1: atoms 1 and 2", "overlapping"),
    lib("atom on its own periodic image", _periodic_overlap, InputError, "overlapping"),
    lib("pair at min_distance, shipped model (was -3e10 eV)", _shipped_pair_at_min_distance, InputError,
        "atoms 1 and 2 (H, H) are 0.1 Å apart", "shortest H-H distance in the model's training data",
        "refused below 0.497 Å"),
    lib("pair far closer than the training data", _trained_close_pair, InputError,
        "atoms 0 and 1 (O, H) are 0.4 Å apart", "shortest H-O distance in the model's training data (0.9 Å)"),
    lib("pair below min_distance, untrained model", lambda env: _overlap(env, offset=(0.05, 0, 0)), InputError,
        "0.05 Å apart", "min_distance 0.1 Å"),
    lib("pbc without a cell", _no_cell, NeighborListError, "no cell was set", "set_cell"),
    lib("singular cell", _singular_cell, NeighborListError, "linearly dependent", "singular"),
    lib("nearly singular cell (hung for minutes)", _nearly_singular_cell, NeighborListError,
        "neighbor list refused", "candidate pairs", "widths (0.001, 0.001, 3 Å)", "nearly singular",
        seconds=2.0),
    lib("no atoms", lambda env: _evaluate(env, Atoms()), InputError, "no atoms"),
    lib("no structures to predict", lambda env: env.calc().predict([]), InputError, "no structures"),
    lib("empty structure in a batch", lambda env: env.calc().predict([molecule("H2O"), Atoms()]), InputError,
        "structure 1 has no atoms"),
    lib("charge NaN", _charge(float("nan")), InputError, "atoms.info['charge'] is nan", "finite number"),
    lib("charge infinite", _charge(float("inf")), InputError, "atoms.info['charge'] is inf"),
    lib("charge not a number", _charge("minus one"), InputError, "atoms.info['charge'] is 'minus one'"),
    lib("stress of a molecule", _stress_of_molecule, PropertyNotImplementedError, "periodic in all three"),
    lib("unknown property", lambda env: env.calc().predict([molecule("H2O")], ["magmom"]),
        PropertyNotImplementedError, "magmom"),
    lib("unknown also_compute", lambda env: env.calc(also_compute=("spin",)), ValueError, "unknown properties"),
    lib("num_threads 0", lambda env: env.calc(num_threads=0), ValueError, "num_threads must be a positive int"),
    lib("float32 overflow from finite inputs", _float32_overflow, NonFiniteResultError,
        "non-finite forces", "float32 overflowed", "float64"),
    ok("water 1e6 Å from the origin, float32 (was 15 meV, 0.8 eV/Å off)", lambda env: _predict_far(env, 1e6)),
    ok("water 1e8 Å from the origin, float32 (was 'atoms 0 Å apart')", lambda env: _predict_far(env, 1e8)),

    # --- models and model files ---------------------------------------------------------------
    lib("calculator dtype float16", lambda env: env.calc(dtype=torch.float16), ValueError,
        "torch.float16 is not supported", "torch.float32", "torch.float64"),
    lib("calculator dtype bfloat16", lambda env: env.calc(dtype=torch.bfloat16), ValueError, "not supported"),
    lib("calculator dtype int32", lambda env: env.calc(dtype=torch.int32), ValueError, "torch.int32 is not supported"),
    lib("model file loaded as float16", _shipped_dtype(torch.float16), ValueError, "torch.float16 is not supported"),
    lib("load_model dtype int32", lambda env: load_model(env.model_file, dtype=torch.int32), ValueError,
        "torch.int32 is not supported"),
    lib("model object in float16", _model_in(torch.float16), ValueError, "the model's dtype torch.float16"),
    lib("model object in bfloat16", _model_in(torch.bfloat16), ValueError, "the model's dtype torch.bfloat16"),
    lib("device cuda without CUDA", lambda env: env.calc(device="cuda"), ValueError, "built without CUDA support",
        "--device cpu", needs=_no_cuda),
    lib("load_model on cuda without CUDA", lambda env: load_model(env.model_file, device="cuda:0"), ValueError,
        "without CUDA support", needs=_no_cuda),
    lib("device name that does not exist", lambda env: env.calc(device="gpu"), ValueError,
        "'gpu' is not a torch device"),
    lib("model is not a model", lambda env: MPNNCalculator(torch.nn.Linear(3, 1)), TypeError, "AtomisticModel"),
    lib("NaN weights in a file", _nan_weights, ModelFileError, "weights contain NaN or infinite values", "diverged"),
    lib("infinite weights in memory", _nan_weights_in_memory, ValueError, "weights contain NaN or infinite"),
    lib("model file missing", lambda env: MPNNCalculator(env.dir / "nope" / "m.pt"), ModelFileError,
        "no such model file"),
    lib("model file is text", lambda env: load_model(env.text_file("energy = -14 eV")), ModelFileError,
        "not a readable model file"),
    lib("model file empty", lambda env: load_model(env.text_file("")), ModelFileError, "not a readable model file"),
    lib("model file is a directory", lambda env: load_model(env.dir), ModelFileError, "no such model file"),
    lib("model file truncated", _truncated, ModelFileError, "not a readable model file"),
    lib("model file is JSON", lambda env: load_model(env.text_file('{"header": {}}', "m.json")), ModelFileError,
        "not a readable model file"),
    lib("torch file of a tensor", _torch_file(torch.arange(3.0)), ModelFileError, "not an ase_mpnn model"),
    lib("torch file of another program", _torch_file({"model": {}, "epoch": 3}), ModelFileError,
        "not an ase_mpnn model"),
    lib("file that runs code when unpickled", _unsafe_pickle, ModelFileError, "refused to load", "run code"),
    lib("flipped bits in the weights", lambda env: load_model(env.flipped_model()), ModelFileError,
        "checksum mismatch", "intact copy"),
    lib("flipped bits, header read", lambda env: read_header(env.flipped_model()), ModelFileError,
        "checksum mismatch"),
    lib("edited cutoff", _edited(_config(cutoff=6.0)), ModelFileError, "checksum mismatch"),
    lib("edited species", _edited(_config(species=[1, 6])), ModelFileError, "checksum mismatch"),
    lib("edited min_distance", _edited(_config(min_distance=0.01)), ModelFileError, "checksum mismatch"),
    lib("edited metadata", _edited(lambda h: {**h, "metadata": {"note": "trained"}}), ModelFileError,
        "checksum mismatch"),
    lib("header is a JSON list", _edited(lambda h: [h], keep_checksum=False), ModelFileError,
        "a JSON list, not a JSON object"),
    lib("header is a JSON string", _edited(lambda h: "painn", keep_checksum=False), ModelFileError,
        "a JSON str, not a JSON object"),
    lib("NaN cutoff in the header", _edited(_config(cutoff=float("nan")), False), ModelFileError,
        "config.cutoff must be a number of Å in (0, 100], got nan"),
    lib("cutoff 1e6 in the header (hung)", _edited(_config(cutoff=1e6), False), ModelFileError,
        "config.cutoff must be", "1000000.0"),
    lib("negative cutoff in the header", _edited(_config(cutoff=-4.0), False), ModelFileError, "config.cutoff"),
    lib("cutoff as text in the header", _edited(_config(cutoff="4"), False), ModelFileError, "config.cutoff"),
    lib("atomic number 500 in the header", _edited(_config(species=[1, 500]), False), ModelFileError,
        "config.species must be distinct atomic numbers"),
    lib("repeated species in the header", _edited(_config(species=[1, 1]), False), ModelFileError,
        "config.species"),
    lib("species as symbols in the header", _edited(_config(species=["H", "O"]), False), ModelFileError,
        "config.species"),
    lib("min_distance 0 in the header", _edited(_config(min_distance=0.0), False), ModelFileError,
        "config.min_distance must be"),
    lib("min_distance above the cutoff", _edited(_config(min_distance=9.0), False), ModelFileError,
        "below the cutoff"),
    lib("hyperparameters a list in the header", _edited(_config(hyperparameters=[8]), False), ModelFileError,
        "config.hyperparameters must be a JSON object"),
    lib("config a string in the header", _edited(lambda h: {**h, "config": "painn"}, False), ModelFileError,
        "'config' must be a JSON object"),
    lib("unknown architecture in the header", _edited(_config(architecture="transformer"), False),
        ModelFileError, "cannot be rebuilt", "transformer"),
    lib("hyperparameters that do not fit the weights", _edited(
        lambda h: _config(hyperparameters={**h["config"]["hyperparameters"], "n_features": 16})(h), False),
        ModelFileError, "cannot be rebuilt"),
    lib("bad training distances in the header", _edited(_config(training_min_distances={"H-C": 1.0}), False),
        ModelFileError, "'H-C' is not a pair of this model's elements"),
    lib("foreign format tag", _edited(lambda h: {**h, "format": "other.model"}, False), ModelFileError,
        "not an ase_mpnn model file"),
    lib("file from a future version", _edited(_future, False), ModelFileError, "format 999", "Upgrade"),
    lib("metadata not JSON", lambda env: save_model(env.model, env.path("m.pt"), metadata={"x": object()}),
        ValueError, "JSON-serialisable"),
    lib("unknown hyperparameter", lambda env: build_model("painn", ["H"], n_feature=8), HyperparameterError,
        "unknown hyperparameter(s) ['n_feature'] for painn", "n_features"),
    lib("unknown hyperparameter is a TypeError", lambda env: build_model("schnet", ["H"], width=8), TypeError,
        "unknown hyperparameter(s) ['width']"),
    lib("unknown architecture", lambda env: build_model("gpt", ["H"]), ValueError, "unknown architecture 'gpt'"),
    lib("unknown element symbol", lambda env: build_model("painn", ["Hx"]), ValueError, "unknown element symbol"),
    lib("NaN cutoff", lambda env: build_model("painn", ["H"], cutoff=float("nan")), ValueError,
        "cutoff must be a number of Å in (0, 100], got nan"),
    lib("cutoff 1e6", lambda env: build_model("painn", ["H"], cutoff=1e6), ValueError, "cutoff must be"),
    lib("cutoff 0", lambda env: build_model("painn", ["H"], cutoff=0.0), ValueError, "cutoff must be"),
    lib("build_model min_distance above the cutoff", lambda env: build_model("painn", ["H"], cutoff=3.0, min_distance=4.0),
        ValueError, "min_distance must be"),
    lib("training distances of another element", lambda env: copy.deepcopy(env.model).set_training_min_distances(
        {"C-H": 1.0}), ValueError, "'C-H' is not a pair"),
    lib("negative training distance", lambda env: copy.deepcopy(env.model).set_training_min_distances(
        {"H-O": -1.0}), ValueError, "must be a positive number of Å"),

    # --- neighbor lists -------------------------------------------------------------------------
    lib("cutoff 0 for a list", lambda env: neighbor_list(np.zeros((2, 3)), np.eye(3), True, 0.0),
        NeighborListError, "cutoff must be a finite number > 0"),
    lib("NaN cutoff for a list", lambda env: neighbor_list(np.zeros((2, 3)), np.eye(3), True, np.nan),
        NeighborListError, "cutoff must be a finite number > 0"),
    lib("negative skin", lambda env: VerletNeighborList(3.0, skin=-0.1), NeighborListError,
        "skin must be a finite number >= 0"),
    lib("positions of wrong shape", lambda env: neighbor_list(np.zeros((4, 2)), np.eye(3), True, 2.0),
        NeighborListError, "positions must have shape (n_atoms, 3)"),
    lib("cell of wrong shape", lambda env: neighbor_list(np.zeros((4, 3)), np.eye(2), True, 2.0),
        NeighborListError, "cell must have shape (3, 3)"),
    lib("pbc of wrong shape", lambda env: neighbor_list(np.zeros((4, 3)), np.eye(3), [True, False], 2.0),
        NeighborListError, "pbc must be a bool or three bools"),
    lib("periodic cutoff 1e6 (hung)", lambda env: neighbor_list(molecule("H2O").positions, np.eye(3) * 10, True,
        1e6), NeighborListError, "pairs within the cutoff 1e+06 Å", "GB", "ASE_MPNN_MAX_PAIRS", seconds=2.0),
    lib("pair limit too low to serve", lambda env: neighbor_list(molecule("H2O").positions, np.eye(3) * 5, True,
        4.0, max_pairs=5), NeighborListError, "above the limit of 5 pairs"),
    ok("non-periodic cutoff 5000 Å (hung for minutes)", _huge_cutoff_molecule, seconds=2.0),
    ok("12,288-atom water box at 5.5 Å is served", _large_water_box, seconds=10.0),

    # --- MD -------------------------------------------------------------------------------------
    lib("time step 0", _run_langevin(0.0), ValueError, "timestep must be a number of fs > 0"),
    lib("negative time step", _run_langevin(-1.0), ValueError, "timestep must be a number of fs > 0"),
    lib("NaN time step", lambda env: nve(molecule("H2O"), float("nan")), ValueError, "timestep must be"),
    lib("negative temperature", _run_langevin(0.5, temperature=-5.0), ValueError, "temperature must be a number"),
    lib("negative friction", _run_langevin(0.5, friction=-0.1), ValueError, "friction must be a number of 1/fs"),
    lib("negative steps", _run_md_steps(-5), ValueError, "steps must be a whole number >= 0"),
    lib("time step 3 fs with H: runaway", _blow_up(3.0), MDBlowUpError, "MD blew up", "more than 10 ×",
        "reduce the time step"),
    lib("time step 20 fs with H (was 6e5 K)", _blow_up(20.0), MDBlowUpError, "MD blew up", "step 1",
        "reduce the time step"),

    # --- i-PI -----------------------------------------------------------------------------------
    lib("i-PI server silent after accept (hung)", _ipi_silent, IPIConnectionError,
        "sent nothing for 0.3 s while this client waited for the next message", "--timeout", seconds=5.0),
    lib("i-PI port 0", lambda env: IPIClient(env.calc(), molecule("H2O"), address=("localhost", 0)), ValueError,
        "from 1 to 65535"),
    lib("i-PI port 70000", lambda env: IPIClient(env.calc(), molecule("H2O"), address=("localhost", 70000)),
        ValueError, "from 1 to 65535"),
    lib("i-PI port as text", lambda env: IPIClient(env.calc(), molecule("H2O"), address=("localhost", "31415")),
        ValueError, "must be an integer"),
    lib("i-PI negative timeout", lambda env: IPIClient(env.calc(), molecule("H2O"), unix="x", timeout=-1),
        ValueError, "timeout must be a number of seconds >= 0"),
    lib("i-PI address and unix both", lambda env: IPIClient(env.calc(), molecule("H2O"), unix="x",
        address=("localhost", 1)), ValueError, "exactly one"),
    lib("i-PI unknown extras", lambda env: IPIClient(env.calc(), molecule("H2O"), unix="x", extras=("charges",)),
        ValueError, "unknown extras"),
    lib("i-PI unknown extras units", lambda env: IPIClient(env.calc(), molecule("H2O"), unix="x",
        extras_units="si"), ValueError, "extras_units"),
    lib("i-PI empty template", lambda env: IPIClient(env.calc(), Atoms(), unix="x"), ValueError, "no atoms"),

    # --- data and training ----------------------------------------------------------------------
    lib("unknown config key", lambda env: TrainConfig.from_dict({"data": "x", "learning_rate": 1e-3}), ValueError,
        "unknown config key(s) ['learning_rate']"),
    lib("config without data", lambda env: TrainConfig.from_dict({"lr": 1e-3}), ValueError, "needs 'data'"),
    lib("YAML syntax error", lambda env: TrainConfig.from_yaml(env.yaml_file("data: DATA\nlr: [1e-3\n")),
        ValueError, "not valid YAML", "line 3"),
    lib("YAML that is a list", lambda env: TrainConfig.from_yaml(env.yaml_file("- data\n")), ValueError,
        "expected a mapping"),
    lib("unknown hyperparameter in training", _train(hyperparameters={"n_feature": 8}), ValueError,
        "unknown hyperparameter(s) ['n_feature']"),
    lib("loss on a label no frame has", _train(loss_weights={"energy": 1.0, "stress": 1.0}), DataError,
        "the loss asks for stress"),
    lib("unknown loss weight", _train(loss_weights={"dipol": 1.0}), ValueError, "unknown loss weight"),
    lib("element in the data but not in species", _train(species=["H"]), DataError,
        "are in the data but not in species"),
    lib("missing data file", _train(data="/nonexistent/water.extxyz"), DataError, "no such data file"),
    lib("unreadable data file", lambda env: read_dataset(env.text_file("not a structure", "d.extxyz")), DataError,
        "cannot read structures"),
    lib("unknown label in keys", lambda env: read_dataset(WATER_DATA, {"energie": "E"}), DataError,
        "unknown label(s) ['energie']"),
    lib("NaN label", lambda env: read_dataset(env.data_file(_nan_label)), DataError, "frame 3",
        "energy contains NaN"),
    lib("split [1, 0, 0]", _train(split=[1.0, 0.0, 0.0]), DataError, "the validation split is empty",
        "split [1.0, 0.0, 0.0]", "e.g. [0.8, 0.1, 0.1]"),
    lib("split [0, 1, 0]", lambda env: split_indices(10, [0.0, 1.0, 0.0], 0), DataError,
        "the training split is empty"),
    lib("split that does not sum to 1", lambda env: split_indices(10, [0.5, 0.1, 0.1], 0), DataError,
        "sum to 1"),
    lib("negative split fraction", lambda env: split_indices(10, [1.2, -0.2], 0), DataError, "non-negative"),
    lib("overlapping atoms in the data (was a batch index mid-training)",
        lambda env: train(env.train_config(data=env.data_file(_overlapping_frame)), progress=False),
        DataError, "frame 7: atoms 1 (H) and 2 (H) are 0.01 Å apart", "fix or remove that frame"),
    lib("frame weight for a value no frame has", _train(frame_weights={"nromal-modes": 4}), DataError,
        "no frame has info"),
    lib("training on cuda without CUDA", _train(device="cuda"), ValueError, "without CUDA support",
        needs=_no_cuda),
    lib("fine-tuning a different architecture", lambda env: train(env.train_config(
        init_from=str(env.saved_with(lambda m: None)), architecture="schnet",
        hyperparameters={"n_features": 8}), progress=False), ValueError, "differs from the config"),

    # --- the command line: one line, no traceback ------------------------------------------------
    cli("predict --batch-size -1 (wrote a file without energies)", _predict_argv("--batch-size", "-1"), 2,
        "argument --batch-size: must be a whole number >= 1, got -1"),
    cli("predict --batch-size 0", _predict_argv("--batch-size", "0"), 2, "--batch-size"),
    cli("predict --batch-size many", _predict_argv("--batch-size", "many"), 2, "whole number >= 1, got 'many'"),
    cli("predict an unreadable structure file", _predict_argv(structures=lambda env: env.text_file("hello")), 2,
        "cannot read structures"),
    cli("predict a missing structure file", _predict_argv(structures=lambda env: "/nonexistent/w.xyz"), 2,
        "/nonexistent/w.xyz: no such structure file"),
    cli("predict a directory", _predict_argv(structures=lambda env: str(env.dir)), 2, "(a directory)"),
    cli("predict --device cuda without CUDA", _predict_argv("--device", "cuda"), 2, "without CUDA support",
        needs=_no_cuda),
    cli("predict --device gpu", _predict_argv("--device", "gpu"), 2, "'gpu' is not a torch device"),
    cli("predict --dtype float16", _predict_argv("--dtype", "float16"), 2, "invalid choice: 'float16'"),
    cli("predict with a text model file", lambda env: ["predict", env.text_file("x"), env.water_file], 2,
        "not a readable model file"),
    cli("md --steps -5", _md_argv("--steps", "-5"), 2, "argument --steps: must be a whole number >= 0"),
    cli("md --timestep 0", _md_argv("--steps", "5", "--timestep", "0"), 2,
        "argument --timestep: must be a finite number > 0"),
    cli("md --timestep nan", _md_argv("--steps", "5", "--timestep", "nan"), 2, "--timestep"),
    cli("md negative temperature", _md_argv("--steps", "5", "--temperature", "-5"), 2,
        "argument --temperature: must be a finite number >= 0"),
    cli("md negative friction", _md_argv("--steps", "5", "--friction", "-0.01"), 2, "argument --friction"),
    cli("md --interval 0", _md_argv("--steps", "5", "--interval", "0"), 2, "argument --interval"),
    cli("md --checkpoint-interval 0", _md_argv("--steps", "5", "--checkpoint-interval", "0"), 2,
        "--checkpoint-interval"),
    cli("md --equilibrate -1", _md_argv("--steps", "5", "--equilibrate", "-1"), 2, "--equilibrate"),
    cli("md --timestep 20 (ran to 6e5 K)", _md_argv("--steps", "500", "--timestep", "20", model=SHIPPED), 2,
        "MD blew up", "time step 20 fs", "reduce the time step"),
    cli("md with an unreadable structure", lambda env: ["md", env.text_file("x"), "--model", str(env.model_file),
        "--steps", "2"], 2, "cannot read structures"),
    cli("rpmd --beads 0", lambda env: ["rpmd", env.water_file, "--model", str(env.model_file), "--steps", "2",
        "--beads", "0"], 2, "argument --beads: must be a whole number >= 1"),
    cli("rpmd --temperature 0", lambda env: ["rpmd", env.water_file, "--model", str(env.model_file), "--steps",
        "2", "--temperature", "0"], 2, "argument --temperature: must be a finite number > 0"),
    cli("rpmd --tau -1", lambda env: ["rpmd", env.water_file, "--model", str(env.model_file), "--steps", "2",
        "--tau", "-1"], 2, "--tau"),
    cli("rpmd resumed with another temperature", _rpmd_resumed_with_other_temperature, 2, "continues a run"),
    cli("spectrum nosuch.h5 (said 'error: nosuch.h5')", lambda env: ["spectrum", "nosuch.h5"], 2,
        "no such file: nosuch.h5"),
    cli("spectrum --max-lag -1", lambda env: ["spectrum", "x.h5", "--max-lag", "-1"], 2, "--max-lag"),
    cli("spectrum --dt 0", lambda env: ["spectrum", "x.h5", "--dt", "0"], 2, "--dt"),
    cli("spectrum --batch-size 0", lambda env: ["spectrum", "x.h5", "--batch-size", "0"], 2, "--batch-size"),
    cli("spectrum --predict always without a model", lambda env: ["spectrum", "x.h5", "--predict", "always"], 2,
        "needs --model"),
    cli("spectrum --keys not JSON", lambda env: ["spectrum", "x.h5", "--keys", "dipole=REF"], 2,
        "--keys must be JSON"),
    cli("harmonic --delta 0", lambda env: ["harmonic", env.water_file, "--model", "m.pt", "--delta", "0"], 2,
        "--delta"),
    cli("harmonic with an unreadable structure", lambda env: ["harmonic", env.text_file("x"), "--model",
        str(env.model_file)], 2, "cannot read structures"),
    cli("eval an unreadable data file", lambda env: ["eval", str(env.model_file), env.text_file("x")], 2,
        "cannot read structures"),
    cli("spectrum of an unreadable file", lambda env: ["spectrum", env.text_file("x")], 2, "cannot read"),
    cli("eval --batch-size 0", lambda env: ["eval", str(env.model_file), str(WATER_DATA), "--batch-size", "0"],
        2, "--batch-size"),
    cli("eval --split of a model without one", lambda env: ["eval", str(env.model_file), str(WATER_DATA),
        "--split", "test"], 2, "has no saved split"),
    cli("create with an unknown hyperparameter", lambda env: ["create", "painn", "--species", "H", "O",
        "--hyperparameters", '{"n_feature": 8}', "-o", str(env.path("m.pt"))], 2,
        "unknown hyperparameter(s) ['n_feature'] for painn"),
    cli("create with --hyperparameters not JSON", lambda env: ["create", "painn", "--species", "H",
        "--hyperparameters", "n_features=8", "-o", str(env.path("m.pt"))], 2,
        "--hyperparameters must be a JSON object"),
    cli("create with --hyperparameters a list", lambda env: ["create", "painn", "--species", "H",
        "--hyperparameters", "[8]", "-o", str(env.path("m.pt"))], 2, "got [8]"),
    cli("create --cutoff nan", lambda env: ["create", "painn", "--species", "H", "--cutoff", "nan", "-o",
        str(env.path("m.pt"))], 2, "cutoff must be a number of Å in (0, 100], got nan"),
    cli("create --cutoff 1e6", lambda env: ["create", "painn", "--species", "H", "--cutoff", "1e6", "-o",
        str(env.path("m.pt"))], 2, "cutoff must be"),
    cli("create an unknown architecture", lambda env: ["create", "gpt", "--species", "H", "-o", "m.pt"], 2,
        "invalid choice: 'gpt'"),
    cli("create an unknown element", lambda env: ["create", "painn", "--species", "Hx", "-o",
        str(env.path("m.pt"))], 2, "unknown element symbol 'Hx'"),
    cli("info on a JSON-list header", lambda env: ["info", str(env.edited_model(lambda h: [h], False))], 2,
        "a JSON list, not a JSON object"),
    cli("info on a NaN-cutoff header", lambda env: ["info", str(env.edited_model(_config(cutoff=float("nan")),
        False))], 2, "config.cutoff", "got nan"),
    cli("info on flipped bits", lambda env: ["info", str(env.flipped_model())], 2, "checksum mismatch"),
    cli("info on a text file", lambda env: ["info", env.text_file("x")], 2, "not a readable model file"),
    cli("train a YAML syntax error", _train_argv("data: DATA\nlr: [1e-3\n"), 2, "not valid YAML", "line 3"),
    cli("train an unknown key", _train_argv("data: DATA\nlearning_rate: 1e-3\n"), 2,
        "unknown config key(s) ['learning_rate']"),
    cli("train an unknown hyperparameter", _train_argv(
        "data: DATA\ncutoff: 4.0\nhyperparameters: {n_feature: 8}\nmax_epochs: 1\n"), 2,
        "unknown hyperparameter(s) ['n_feature'] for painn"),
    cli("train split [1, 0, 0]", _train_argv("data: DATA\nsplit: [1, 0, 0]\n"), 2,
        "the validation split is empty", "split"),
    cli("train overlapping atoms in the data", lambda env: ["train", env.yaml_file(
        f"data: {env.data_file(_overlapping_frame)}\ncutoff: 4.0\n")], 2, "frame 7", "0.01 Å apart"),
    cli("train on cuda without CUDA", _train_argv("data: DATA\ndevice: cuda\n"), 2, "without CUDA support",
        needs=_no_cuda),
    cli("train a missing config", lambda env: ["train", "/nonexistent/config.yaml"], 2,
        "No such file or directory: /nonexistent/config.yaml"),
    cli("ipi-client --address without a port", lambda env: ["ipi-client", "--model", str(env.model_file),
        "--structure", env.water_file, "--address", "no-port"], 2, "--address must be HOST:PORT"),
    cli("ipi-client port 70000", lambda env: ["ipi-client", "--model", str(env.model_file), "--structure",
        env.water_file, "--address", "localhost:70000"], 2, "the port must be from 1 to 65535"),
    cli("ipi-client negative timeout", lambda env: ["ipi-client", "--model", "m.pt", "--structure", "w.xyz",
        "--unix", "x", "--timeout", "-1"], 2, "argument --timeout"),
    cli("ipi-client silent server (hung)", _ipi_cli_silent, 1, "sent nothing for 0.3 s", "--timeout",
        seconds=5.0),
    cli("ipi-client without a server", _ipi_no_server, 1, "could not connect"),
    cli("ipi-client unreadable structure", lambda env: ["ipi-client", "--model", str(env.model_file),
        "--structure", env.text_file("x"), "--unix", "x"], 2, "cannot read structures"),
    # --- data loss and resumes ---------------------------------------------------------------
    lib("training output over its data file", _train_over_data, ValueError, "data"),
    cli("md -o over its structure file", _md_over_structure, 2, "structure"),
    cli("md resumed with another time step", _md_resume_with("--timestep", "0.25"), 2,
        "continues a run with other settings"),
    cli("md resumed with another temperature", _md_resume_with("--temperature", "350"), 2,
        "continues a run with other settings"),
    cli("md resumed with another seed", _md_resume_with("--seed", "5"), 2,
        "continues a run with other settings"),
    lib("training resumed with another learning rate", _train_resume_with_other_lr, ValueError, "lr", "--fresh"),
    lib("a truncated HDF5 record", _record_truncated, Exception, "truncated"),
    lib("a second writer through a symbolic link", _second_writer_through_link, Exception, "another recorder"),
    lib("evaluation that predicts NaN (was averaged into the metrics)", _evaluate_overflowing_model,
        NonFiniteResultError, "non-finite energy", "water_small.extxyz frame 0"),
]


def test_rows_only_grow_and_have_unique_names():
    assert len(ROWS) >= MINIMUM_ROWS, f"{len(ROWS)} rows: the table lost rows (minimum {MINIMUM_ROWS})"
    names = [row.name for row in ROWS]
    assert len(set(names)) == len(names), "row names must be unique"


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input(row: Row, env: Env, capsys):
    reason = row.needs() if row.needs else None
    if reason:
        pytest.skip(reason)
    start = time.perf_counter()
    if row.cli:
        argv = [str(a) for a in row.give(env)]
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse refuses the arguments
            code = exit_.code
        err = capsys.readouterr().err
        assert code == row.expect, f"exit code {code}, expected {row.expect}; stderr: {err}"
        assert "Traceback" not in err
        message = [line for line in err.splitlines() if "error:" in line]
        assert len(message) == 1, f"expected one error line, got: {err}"
        for words in row.words:
            assert words in message[0], f"{words!r} not in {message[0]!r}"
    elif row.expect is None:
        row.give(env)
    else:
        with pytest.raises(row.expect) as info:
            row.give(env)
        message = str(info.value)
        for words in row.words:
            assert words in message, f"{words!r} not in {message!r}"
        assert "Traceback" not in message
    assert time.perf_counter() - start < row.seconds, f"took {time.perf_counter() - start:.1f} s"

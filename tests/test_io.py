"""Model files: roundtrip, header contents, and refusal of unsafe, broken or foreign files."""

import json
import pathlib

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

import ase_mpnn
from ase_mpnn import MPNNCalculator, ModelFileError, build_graph, build_model, load_model, read_header, save_model
from ase_mpnn.model.io import FORMAT_VERSION

PROPERTIES = ["energy", "forces", "stress", "charges", "dipole", "polarizability"]


def _model(architecture, seed=0, **hyper):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(architecture, species=["H", "O"], cutoff=3.5, **hyper)
    # Non-default buffers must travel with the file too.
    model.energy_scale.fill_(2.5)
    model.atomic_energies.copy_(torch.tensor([-13.6, -2041.3], dtype=torch.float64))
    return model


def _graph():
    box = Atoms("OH2OH2", cell=[4.0, 4.2, 4.4], pbc=True,
                positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0],
                           [2.0, 2.1, 2.2], [2.5, 2.9, 2.2], [2.0, 2.1, 3.16]])
    box.info["charge"] = 0
    water = molecule("H2O")
    water.info["charge"] = 1
    return [box, water]


def _predict(model):
    graph = build_graph(_graph(), model.cutoff, dtype=torch.float64)
    model = model.to(dtype=torch.float64)
    out = model(graph, PROPERTIES)
    return {k: v.detach().numpy() for k, v in out.items()}


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.pt"
    save_model(_model("schnet", n_features=16, n_interactions=2), path)
    return path


@pytest.mark.parametrize(
    "architecture, hyper, defaults",
    [
        ("painn", {"n_features": 16, "n_interactions": 2},
         {"n_rbf": 20, "low_memory_edges": None, "norm_softening": 1.0}),
        ("schnet", {"n_features": 16, "n_interactions": 2, "n_filters": 12},
         {"n_rbf": 20}),
    ],
)
def test_roundtrip(tmp_path, architecture, hyper, defaults):
    model = _model(architecture, **hyper)
    metadata = {"trained_on": "water", "rmse_meV": [1.5, 2.25], "nested": {"epochs": 10}}
    path = tmp_path / f"{architecture}.pt"
    assert pathlib.Path(save_model(model, path, metadata=metadata)) == path
    assert path.is_file() and not (tmp_path / f"{architecture}.pt.tmp").exists()

    header = read_header(path)
    config = header["config"]
    assert config["architecture"] == architecture
    assert config["species"] == [1, 8]
    assert config["cutoff"] == pytest.approx(3.5)
    assert config["hyperparameters"] == {**defaults, **hyper}  # defaults included
    assert header["units"]["energy"] == "eV"
    assert header["units"]["length"] == "Å"
    assert header["units"]["polarizability"] == "e²Å²/eV"
    assert header["package_version"] == ase_mpnn.__version__
    assert header["format_version"] == FORMAT_VERSION
    assert header["metadata"] == metadata

    loaded = load_model(path, dtype=torch.float64)
    assert type(loaded.representation) is type(model.representation)
    assert loaded.metadata == metadata
    assert next(loaded.parameters()).dtype == torch.float64
    assert float(loaded.energy_scale) == 2.5
    before, after = _predict(model), _predict(loaded)
    assert set(before) == set(after) == set(PROPERTIES) | {"energies"}
    for key in before:
        np.testing.assert_array_equal(np.isnan(before[key]), np.isnan(after[key]))
        np.testing.assert_allclose(after[key], before[key], rtol=0, atol=1e-12, err_msg=key)
    # A different model gives different results: the comparison above is meaningful.
    other = _predict(_model(architecture, seed=1, **hyper))
    assert abs(other["energy"] - before["energy"]).max() > 1e-6

    # Default dtype of a loaded model is float32.
    assert next(load_model(path).parameters()).dtype == torch.float32

    # The calculator loads the file itself (str and Path).
    for source in (path, str(path)):
        calc = MPNNCalculator(source, dtype=torch.float64)
        water = _graph()[1]
        water.calc = calc
        assert water.get_potential_energy() == pytest.approx(float(before["energy"][1]), abs=1e-10)
        np.testing.assert_allclose(water.get_forces(), before["forces"][6:], atol=1e-10)


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_model(_model("schnet", n_features=8, n_interactions=1), tmp_path / "m.pt",
                   metadata={"bad": object()})
    assert not (tmp_path / "m.pt").exists()


class _Payload:
    """Unpickling this calls marker.touch(): proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_code_in_file_is_refused_and_not_run(tmp_path, saved):
    marker = tmp_path / "MARKER"
    header = torch.load(saved, weights_only=True)["header"]
    path = tmp_path / "evil.pt"
    torch.save({"header": header, "state_dict": {}, "evil": _Payload(marker)}, path)
    # Sanity check: the payload does run under an unrestricted load.
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ModelFileError, match="refused") as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="refused"):
        read_header(path)
    with pytest.raises(ModelFileError, match="refused"):
        MPNNCalculator(path)
    assert not marker.exists()


def _truncated(tmp_path, saved):
    path = tmp_path / "truncated.pt"
    data = saved.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text(tmp_path, saved):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a model\n")
    return path


def _tensor(tmp_path, saved):
    path = tmp_path / "tensor.pt"
    torch.save(torch.arange(5.0), path)
    return path


def _json(tmp_path, saved):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"header": {"format": "ase_mpnn.model"}, "state_dict": {}}))
    return path


def _empty(tmp_path, saved):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    return path


def _missing(tmp_path, saved):
    return tmp_path / "does_not_exist.pt"


def _directory(tmp_path, saved):
    path = tmp_path / "a_directory.pt"
    path.mkdir()
    return path


def _foreign_dict(tmp_path, saved):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, path)
    return path


def _wrong_format_tag(tmp_path, saved):
    payload = torch.load(saved, weights_only=True)
    header = json.loads(payload["header"])
    header["format"] = "something.else"
    payload["header"] = json.dumps(header)
    path = tmp_path / "foreign.pt"
    torch.save(payload, path)
    return path


def _mismatched_weights(tmp_path, saved):
    payload = torch.load(saved, weights_only=True)
    header = json.loads(payload["header"])
    header["config"]["hyperparameters"]["n_features"] = 8
    payload["header"] = json.dumps(header)
    path = tmp_path / "mismatch.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "make",
    [_truncated, _text, _tensor, _json, _empty, _missing, _directory, _foreign_dict,
     _wrong_format_tag, _mismatched_weights],
)
def test_broken_files_raise_model_file_error(tmp_path, saved, make):
    path = make(tmp_path, saved)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message
    assert "Traceback" not in message
    with pytest.raises(ModelFileError):
        MPNNCalculator(path)
    assert isinstance(info.value, ValueError)


def test_missing_and_text_messages(tmp_path, saved):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(_missing(tmp_path, saved))
    # A text file is not reported as unsafe code: it simply is not a model file.
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(_text(tmp_path, saved))
    with pytest.raises(ModelFileError, match="not an ase_mpnn model"):
        load_model(_tensor(tmp_path, saved))


def test_future_format_version_asks_for_upgrade(tmp_path, saved):
    payload = torch.load(saved, weights_only=True)
    header = json.loads(payload["header"])
    header["format_version"] = 999
    header["package_version"] = "99.0.0"
    payload["header"] = json.dumps(header)
    path = tmp_path / "future.pt"
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="[Uu]pgrade") as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert "999" in str(info.value)
    with pytest.raises(ModelFileError, match="[Uu]pgrade"):
        read_header(path)
    # The untouched file still loads: the version is what was refused.
    assert load_model(saved) is not None


# --- integrity: checksum of header and weights, validated header values -------------------

def _flip_a_weight_byte(saved, path):
    """Copy ``saved`` to ``path`` with one bit flipped inside the largest weight tensor's bytes."""
    import struct
    import zipfile

    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def test_flipped_weight_bytes_are_refused(tmp_path, saved):
    path = _flip_a_weight_byte(saved, tmp_path / "flipped.pt")
    # torch itself does not notice: the damage would load silently without the checksum.
    assert isinstance(torch.load(path, weights_only=True), dict)
    with pytest.raises(ModelFileError, match="checksum mismatch.*intact copy") as info:
        load_model(path)
    assert str(path) in str(info.value)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        read_header(path)


@pytest.mark.parametrize("field, value", [("cutoff", 6.0), ("species", [1, 6]), ("min_distance", 0.05)])
def test_edited_header_fields_are_refused(tmp_path, saved, field, value):
    payload = torch.load(saved, weights_only=True)
    header = json.loads(payload["header"])
    header["config"][field] = value
    payload["header"] = json.dumps(header)
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(path)


def _resaved_without_checksum(saved, path, edit):
    payload = torch.load(saved, weights_only=True)
    header = json.loads(payload["header"])
    header = edit(header)
    payload["header"] = json.dumps(header)
    del payload["checksum"]
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("edit, words", [
    (lambda h: [h], "a JSON list, not a JSON object"),
    (lambda h: {**h, "config": {**h["config"], "cutoff": float("nan")}}, r"config.cutoff must be .* got nan"),
    (lambda h: {**h, "config": {**h["config"], "cutoff": 1e6}}, r"config.cutoff must be a number of Å in \(0, 100\]"),
    (lambda h: {**h, "config": {**h["config"], "cutoff": -2.0}}, "config.cutoff must be"),
    (lambda h: {**h, "config": {**h["config"], "species": [1, 500]}}, "config.species must be distinct atomic numbers"),
    (lambda h: {**h, "config": {**h["config"], "species": [1, 1]}}, "config.species must be distinct"),
    (lambda h: {**h, "config": {**h["config"], "min_distance": 0.0}}, "config.min_distance must be"),
    (lambda h: {**h, "config": {**h["config"], "min_distance": 9.0}}, "config.min_distance must be .* below the cutoff"),
    (lambda h: {**h, "config": {**h["config"], "hyperparameters": [1]}}, "config.hyperparameters must be a JSON object"),
    (lambda h: {**h, "config": "painn"}, "'config' must be a JSON object"),
])
def test_header_values_are_validated(tmp_path, saved, edit, words):
    """Even without a checksum (files of older versions), impossible header values are refused."""
    path = _resaved_without_checksum(saved, tmp_path / "old.pt", edit)
    with pytest.raises(ModelFileError, match=words) as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_files_without_checksum_still_load(tmp_path, saved):
    path = _resaved_without_checksum(saved, tmp_path / "old.pt", lambda h: h)
    np.testing.assert_array_equal(_predict(load_model(path, dtype=torch.float64))["energy"],
                                  _predict(load_model(saved, dtype=torch.float64))["energy"])
    for shipped in sorted((pathlib.Path(__file__).parents[1] / "models").glob("*.pt")):
        assert load_model(shipped) is not None


def test_non_finite_weights_are_refused(tmp_path):
    model = _model("schnet", n_features=8, n_interactions=1)
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    path = save_model(model, tmp_path / "diverged.pt")
    with pytest.raises(ModelFileError, match=r"weights contain NaN or infinite values \(.*\).*diverged"):
        load_model(path)
    with pytest.raises(ValueError, match="weights contain NaN"):
        MPNNCalculator(model)

"""Command line: ase-mpnn with sub-commands.

    ase-mpnn create painn --species H O --cutoff 5 -o model.pt   untrained model file
    ase-mpnn info model.pt                                       what a model file holds
    ase-mpnn predict model.pt structures.xyz [-o out.extxyz]     batched evaluation
    ase-mpnn md water.xyz --model m.pt --steps 10000 -o md.h5    Langevin MD, restartable
    ase-mpnn rpmd water.xyz --model m.pt --beads 32 --steps 4000 -o rpmd.h5   ring-polymer MD, restartable
    ase-mpnn spectrum md.h5 --ir --raman --power -o out/water   spectra: CSV, PNG, peak tables
    ase-mpnn harmonic water.xyz --model m.pt                     harmonic frequencies, IR and Raman intensities
    ase-mpnn train config.yaml                                   train (resumes if interrupted)
    ase-mpnn eval model.pt data.extxyz [--plot parity.png]       MAE / RMSE per property
    ase-mpnn ipi-client --model M --unix NAME --structure F     serve i-PI (dipole extras)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Callable, Sequence

import numpy as np

from .output_paths import check_outputs
from .resume import file_fingerprint


def _create(args: argparse.Namespace) -> int:
    from . import build_model, save_model

    try:
        hyper = json.loads(args.hyperparameters) if args.hyperparameters else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--hyperparameters must be a JSON object, e.g. '{{\"n_features\": 64}}' ({err})") from None
    if not isinstance(hyper, dict):
        raise ValueError(f"--hyperparameters must be a JSON object, e.g. '{{\"n_features\": 64}}', got {hyper!r}")
    model = build_model(args.architecture, args.species, cutoff=args.cutoff, **hyper)
    save_model(model, args.output, metadata={"note": "untrained"})
    print(f"wrote untrained {args.architecture} model for {', '.join(model.elements)} to {args.output}")
    return 0


def _create_arguments(sub) -> None:
    """The ``create`` command and its arguments."""
    from .model.zoo import REPRESENTATIONS

    create = sub.add_parser("create", help="write an untrained model file")
    create.add_argument("architecture", choices=sorted(REPRESENTATIONS),
                        help="one of: " + ", ".join(sorted(REPRESENTATIONS)))
    create.add_argument("--species", nargs="+", required=True, help="element symbols, e.g. H O")
    create.add_argument("--cutoff", type=float, default=5.0, help="radial cutoff in Å (default 5)")
    create.add_argument("--hyperparameters", help='JSON, e.g. \'{"n_features": 64}\'')
    create.add_argument("-o", "--output", required=True, help="model file to write (.pt)")
    create.set_defaults(func=_create)


def _info(args: argparse.Namespace) -> int:
    from . import read_header

    header = read_header(args.model)
    if not args.full:
        header = summarize_header(header)
    print(json.dumps(header, indent=2, ensure_ascii=False))
    return 0


def _info_arguments(sub) -> None:
    """The ``info`` command and its arguments."""
    info = sub.add_parser("info", help="print a model file's header")
    info.add_argument("model", help="model file (.pt)")
    info.add_argument("--full", action="store_true", help="list every index of the saved training split")
    info.set_defaults(func=_info)


def summarize_header(header: dict) -> dict:
    """The header with long index lists (the training split) replaced by their sizes."""
    def shorten(value):
        if isinstance(value, dict):
            return {k: shorten(v) for k, v in value.items()}
        if isinstance(value, list) and len(value) > 12 and all(isinstance(v, int) for v in value):
            return f"{len(value)} indices ({value[0]}, {value[1]}, ..., {value[-1]}; --full lists them)"
        return value
    return shorten(header)


def _predict(args: argparse.Namespace) -> int:
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from . import MPNNCalculator

    # Predictions over a labelled input would replace its reference labels.
    check_outputs(inputs={"structure": args.structures, "model": args.model}, outputs={"output (-o)": args.output})
    calc = MPNNCalculator(args.model, device=args.device, dtype=torch_dtype(args.dtype))
    structures = []
    for path in args.structures:
        structures.extend(read_structures(path, ":"))
    from .model.properties import MODEL_PROPERTIES, computable

    properties = sorted(computable(set(MODEL_PROPERTIES) - {"energies"}, structures))
    results = []
    for start in range(0, len(structures), args.batch_size):
        chunk = structures[start : start + args.batch_size]
        results.extend(calc.predict(chunk, properties))
    for k, (atoms, r) in enumerate(zip(structures, results)):
        dipole = np.array2string(r["dipole"], precision=4)
        print(f"{k:6d} {atoms.get_chemical_formula():>12s}  E = {r['energy']:.6f} eV  "
              f"max|F| = {np.abs(r['forces']).max():.4f} eV/Å  dipole = {dipole} e·Å")
    if args.output:
        for atoms, r in zip(structures, results):
            atoms.info["polarizability"] = r["polarizability"].reshape(-1)
            atoms.calc = SinglePointCalculator(atoms, **{k: v for k, v in r.items() if k != "polarizability"})
        ase.io.write(args.output, structures)
        print(f"wrote {len(structures)} structures with predictions to {args.output}")
    return 0


def _predict_arguments(sub) -> None:
    """The ``predict`` command and its arguments."""
    predict = sub.add_parser("predict", help="evaluate a model on structure files (any ase.io format)")
    predict.add_argument("model", help="model file (.pt)")
    predict.add_argument("structures", nargs="+", help="structure files (any ase.io format; every frame)")
    predict.add_argument("-o", "--output", help="write structures with predictions (extxyz)")
    predict.add_argument("--batch-size", type=whole(1), default=64, help="structures per model call (default 64)")
    add_device_dtype(predict, "float32")
    predict.set_defaults(func=_predict)


def _train(args: argparse.Namespace) -> int:
    from .training.train import TrainConfig, train

    config = TrainConfig.from_yaml(args.config)
    if args.committee is None:
        check_outputs(inputs={"config": args.config}, outputs=config.written_files())
        with resumable(lambda: _training_resume_hint(config.run_dir / "checkpoint.pt")):
            train(config, fresh=args.fresh)
        return 0
    from .training.committee import member_configs

    members = member_configs(config, args.committee)
    for k, member in enumerate(members):
        print(f"committee member {k + 1} of {len(members)}: seed {member.seed} -> {member.output}", flush=True)
        check_outputs(inputs={"config": args.config}, outputs=member.written_files())
        with resumable(lambda: f"committee member {k + 1} (the earlier ones are done): "
                       + _training_resume_hint(member.run_dir / "checkpoint.pt")):
            train(member, fresh=args.fresh)
    print("use them together: MPNNCalculator([" + ", ".join(repr(m.output) for m in members) + "])")
    return 0


def _train_arguments(sub) -> None:
    """The ``train`` command and its arguments."""
    train = sub.add_parser("train", help="train a model from a YAML config (resumes from its checkpoint)",
                           epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("config", help="YAML training config (see below)")
    train.add_argument("--committee", type=int, metavar="N",
                       help="train N members with seeds seed, seed+1, ... into OUTPUT_0.pt ... OUTPUT_{N-1}.pt "
                            "(MPNNCalculator([...]) gives their mean and spread)")
    train.add_argument("--fresh", action="store_true", help="discard the checkpoint in WORKDIR and train from the "
                       "start (a resumed run must have the checkpoint's config and data)")
    train.set_defaults(func=_train)


def _eval(args: argparse.Namespace) -> int:
    from . import load_model
    from .training.data import read_dataset
    from .training.evaluate import error_metrics, format_metrics, parity_plot, predict_dataset

    check_outputs(inputs={"data": args.data, "model": args.model}, outputs={"plot (--plot)": args.plot})
    model = load_model(args.model, device=args.device, dtype=torch_dtype(args.dtype))
    dataset = read_dataset(args.data, json.loads(args.keys) if args.keys else None, index=args.index)
    what = f"index {args.index}"
    if args.split:
        split = model.metadata.get("split")
        if not split:
            raise ValueError(f"{args.model} has no saved split: evaluate without --split")
        indices = split[args.split]
        if max(indices, default=-1) >= len(dataset):
            raise ValueError(f"the saved split does not fit {' + '.join(args.data)} ({len(dataset)} structures)")
        dataset = dataset.subset(indices)
        what = f"the model's {args.split} split"
    predicted, reference = predict_dataset(model, dataset, args.batch_size)
    print(f"{args.model} on {' + '.join(args.data)} ({len(dataset)} structures, {what})")
    print(format_metrics(error_metrics(predicted, reference)))
    if args.plot:
        parity_plot(predicted, reference, args.plot)
        print(f"parity plot written to {args.plot}")
    return 0


def _eval_arguments(sub) -> None:
    """The ``eval`` command and its arguments."""
    evaluate = sub.add_parser("eval", help="errors of a model on labelled data")
    evaluate.add_argument("model", help="model file (.pt)")
    evaluate.add_argument("data", nargs="+",
                          help="extxyz or ASE .db files with reference labels (several are concatenated, "
                               "in the order the model was trained on them, for --split)")
    evaluate.add_argument("--index", default=":", help="frames to use, ase.io syntax (default all)")
    evaluate.add_argument("--split", choices=["train", "validation", "test"],
                          help="use only the frames of this split saved in the model file")
    evaluate.add_argument("--keys", help='JSON label -> key map, e.g. \'{"energy": "E_dft"}\'')
    evaluate.add_argument("--plot", help="write a parity plot (PNG)")
    evaluate.add_argument("--batch-size", type=whole(1), default=32, help="structures per model call (default 32)")
    add_device_dtype(evaluate, "float64")
    evaluate.set_defaults(func=_eval)


def _ipi_client(args: argparse.Namespace) -> int:
    from . import MPNNCalculator
    from .md.ipi_client import IPIConnectionError, IPIProtocolError, run_client

    if args.address:
        host, _, port = args.address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--address must be HOST:PORT, got {args.address!r}")
        if not 0 < int(port) < 65536:
            raise ValueError(f"--address {args.address}: the port must be from 1 to 65535 (i-PI's <port>)")
        where = dict(address=(host, int(port)))
    else:
        where = dict(unix=args.unix, sockets_prefix=args.sockets_prefix)
    calc = MPNNCalculator(args.model, device=args.device, dtype=torch_dtype(args.dtype))
    atoms = read_structures(args.structure)
    try:
        run_client(calc, atoms, extras=args.extras, extras_units=args.extras_units,
                   connect_timeout=args.connect_timeout,
                   timeout=args.timeout, log=lambda line: print(line, flush=True), **where)
    except (IPIConnectionError, IPIProtocolError) as err:
        print(f"ase-mpnn: error: {err}", file=sys.stderr)
        return 1
    return 0


def _ipi_client_arguments(sub) -> None:
    """The ``ipi-client`` command and its arguments."""
    ipi = sub.add_parser("ipi-client", help="serve an i-PI server's force requests (with dipole and "
                         "polarizability as JSON extras in atomic units: e·Bohr, Bohr³)")
    ipi.add_argument("--model", required=True, help="model file (.pt), e.g. models/painn_water.pt")
    where = ipi.add_mutually_exclusive_group(required=True)
    where.add_argument("--address", help="inet socket HOST:PORT, e.g. 127.0.0.1:31415")
    where.add_argument("--unix", help="unix socket name, as in i-PI's <ffsocket mode='unix'><address>")
    ipi.add_argument("--sockets-prefix", default="/tmp/ipi_",
                     help="i-PI's sockets_prefix: the socket file is PREFIX+NAME (default /tmp/ipi_)")
    ipi.add_argument("--structure", required=True,
                     help="structure file with the atoms in i-PI's order (atomic numbers, pbc, charge)")
    add_device_dtype(ipi, "float32")
    ipi.add_argument("--extras", nargs="*", default=["dipole", "polarizability"],
                     choices=["dipole", "polarizability"],
                     help="results sent as JSON extras (default both; none: empty extras)")
    ipi.add_argument("--extras-units", default="atomic", choices=["atomic", "ase"],
                     help="units of the extras: atomic (e·Bohr, Bohr³) or ase (e·Å, e²Å²/eV)")
    ipi.add_argument("--connect-timeout", type=number(0), default=60.0,
                     help="seconds to retry connecting while i-PI starts (default 60)")
    ipi.add_argument("--timeout", type=number(0), default=600.0,
                     help="give up after this many seconds without a message from i-PI, which polls live "
                          "clients continually (default 600; 0: wait for ever)")
    ipi.set_defaults(func=_ipi_client)


def _md(args: argparse.Namespace) -> int:
    import os

    from . import MPNNCalculator
    from .md import MDRecorder, langevin, nve, run_md

    checkpoint = args.checkpoint or f"{args.output}.checkpoint.npz"
    check_outputs(inputs={"structure": args.structure, "model": args.model},
                  outputs={"record (-o)": args.output, "checkpoint": checkpoint})
    atoms = read_structures(args.structure)
    atoms.calc = MPNNCalculator(args.model, device=args.device, dtype=torch_dtype(args.dtype), compile=args.compile)
    resuming = os.path.exists(checkpoint) and not args.restart
    if not resuming:  # a resumed run takes its atoms and momenta from the checkpoint
        start_md(atoms, args)
    if args.nve:
        dynamics = nve(atoms, timestep_fs=args.timestep)
    else:
        dynamics = langevin(atoms, args.temperature, args.timestep, args.friction, seed=args.seed)
    metadata = ({"ensemble": "NVE"} if args.nve else
                {"ensemble": "NVT Langevin", "temperature_K": args.temperature, "friction_per_fs": args.friction})
    # What the checkpoint cannot tell from the dynamics: compared when the run resumes.
    settings = {"seed": args.seed, "structure": file_fingerprint(args.structure), "equilibrate": args.equilibrate}
    with resumable(lambda: _resume_hint(checkpoint)):
        with MDRecorder(atoms, args.output, interval=args.interval, mode="a" if resuming else "w",
                        timestep_fs=args.timestep, metadata=metadata) as recorder:
            run_md(dynamics, args.steps, recorder, checkpoint_path=checkpoint,
                   checkpoint_interval=args.checkpoint_interval, progress=not args.no_progress,
                   settings=settings, restart=args.restart)
            frames = recorder.n_frames
    print(f"{args.output}: {frames} frames up to step {dynamics.nsteps}; checkpoint {checkpoint}"
          + (" (resumed)" if resuming else ""))
    return 0


def _md_arguments(sub) -> None:
    """The ``md`` command and its arguments."""
    md = sub.add_parser("md", help="Langevin (or NVE) MD with a model, recording observables to HDF5")
    md.add_argument("structure", help="starting structure (any ase.io format)")
    md.add_argument("--model", required=True, help="model file (.pt), e.g. models/painn_water.pt")
    md.add_argument("--steps", type=whole(0), required=True, help="total steps (a restart runs the rest)")
    md.add_argument("--temperature", type=number(0), default=300.0, help="K (default 300)")
    md.add_argument("--timestep", type=number(0, strict=True), default=0.5, help="fs (default 0.5)")
    md.add_argument("--friction", type=number(0), default=0.01, help="Langevin friction, 1/fs (default 0.01)")
    md.add_argument("--nve", action="store_true", help="velocity Verlet instead of Langevin")
    md.add_argument("--equilibrate", type=whole(0), default=0, metavar="STEPS",
                    help="Langevin steps at --temperature before recording starts, not recorded (default 0). "
                         "Velocities start at --temperature (Maxwell-Boltzmann) unless the file has momenta")
    md.add_argument("--seed", type=int, default=0, help="seed of the thermostat noise and initial velocities")
    md.add_argument("-o", "--output", default="md.h5", help="HDF5 record (default md.h5)")
    md.add_argument("--interval", type=whole(1), default=1, help="record every N steps (default 1)")
    add_run_control(md)
    add_device_dtype(md, "float32")
    md.set_defaults(func=_md)


def start_md(atoms, args: argparse.Namespace) -> None:
    """Velocities at the target temperature unless the file has momenta; then the
    unrecorded equilibration (Langevin at --temperature, also before an NVE run)."""
    from .md import langevin
    from .md.initial import has_momenta, thermalize

    rng = np.random.default_rng([args.seed, 1])  # not the production thermostat's stream
    if has_momenta(atoms):
        print(f"{args.structure}: starting from the file's momenta ({atoms.get_temperature():.1f} K)")
    else:
        thermalize(atoms, args.temperature, rng)
        print(f"{args.structure}: Maxwell-Boltzmann velocities at {args.temperature:g} K "
              "(no net translation or rotation)")
    if args.equilibrate:
        friction = args.friction if args.friction > 0 else 0.01
        langevin(atoms, args.temperature, args.timestep, friction, seed=rng).run(args.equilibrate)
        print(f"equilibrated {args.equilibrate} steps ({args.equilibrate * args.timestep:g} fs, not recorded): "
              f"{atoms.get_temperature():.1f} K")


def _rpmd(args: argparse.Namespace) -> int:
    import os

    from ase import units

    from . import MPNNCalculator
    from .md import RingPolymerMD, RingPolymerRecorder, run_rpmd

    thermostat = None if args.thermostat == "none" else args.thermostat
    checkpoint = args.checkpoint or f"{args.output}.checkpoint.npz"
    check_outputs(inputs={"structure": args.structure, "model": args.model},
                  outputs={"record (-o)": args.output, "checkpoint": checkpoint})
    calc = MPNNCalculator(args.model, device=args.device, dtype=torch_dtype(args.dtype), compile=args.compile)
    resuming = os.path.exists(checkpoint) and not args.restart
    # What the checkpoint cannot tell from the run itself: stored, and compared on resume.
    settings = {"seed": args.seed, "structure": file_fingerprint(args.structure)}
    # A resumed run takes its beads, momenta and random state from the checkpoint (run_rpmd).
    md = RingPolymerMD(read_structures(args.structure), calc, n_beads=args.beads, temperature_K=args.temperature,
                       timestep=args.timestep * units.fs, thermostat=thermostat, tau=args.tau * units.fs,
                       seed=args.seed, propagator=args.propagator)
    with resumable(lambda: _resume_hint(checkpoint)):
        with RingPolymerRecorder(md, args.output, interval=args.interval, mode="w",
                                 beads=args.record_beads) as recorder:
            run_rpmd(md, args.steps, recorder, checkpoint_path=checkpoint,
                     checkpoint_interval=args.checkpoint_interval, progress=not args.no_progress,
                     settings=settings, restart=args.restart)
            frames = recorder.n_frames
    print(f"{args.output}: {frames} frames up to step {md.nsteps} ({md.n_beads} beads, {md.temperature_K:g} K, "
          f"{md.thermostat or 'no'} thermostat); checkpoint {checkpoint}" + (" (resumed)" if resuming else ""))
    classical = 1.5 * len(md.atoms) * units.kB * md.temperature_K
    print(f"last frame: quantum kinetic energy (centroid virial) {md.centroid_virial_kinetic_energy:.4f} eV "
          f"(classical {classical:.4f} eV), bead temperature {md.temperature:.1f} K")
    return 0


def _rpmd_arguments(sub) -> None:
    """The ``rpmd`` command and its arguments."""
    rpmd = sub.add_parser("rpmd", help="ring-polymer MD with a model (all beads in one batched call), "
                          "recording centroid observables to HDF5")
    rpmd.add_argument("structure", help="starting structure (any ase.io format); beads start on it")
    rpmd.add_argument("--model", required=True, help="model file (.pt), e.g. models/painn_water.pt")
    rpmd.add_argument("--steps", type=whole(0), required=True, help="total steps (a restart runs the rest)")
    rpmd.add_argument("--beads", type=whole(1), default=32, help="number of beads P (default 32)")
    rpmd.add_argument("--temperature", type=number(0, strict=True), default=300.0, help="K (default 300)")
    rpmd.add_argument("--timestep", type=number(0, strict=True), default=0.25, help="fs (default 0.25)")
    rpmd.add_argument("--thermostat", default="pile_l", choices=["pile_l", "pile_g", "trpmd", "none"],
                      help="pile_l (default), pile_g, trpmd (centroid unthermostatted: for spectra), none (NVE)")
    rpmd.add_argument("--tau", type=number(0, strict=True), default=100.0, help="centroid thermostat time constant, fs (default 100)")
    rpmd.add_argument("--propagator", default="exact", choices=["exact", "cayley"],
                      help="free ring-polymer propagation (cayley: stable for large P·dt)")
    rpmd.add_argument("--seed", type=int, default=0, help="seed of the thermostat noise")
    rpmd.add_argument("-o", "--output", default="rpmd.h5", help="HDF5 record (default rpmd.h5)")
    rpmd.add_argument("--interval", type=whole(1), default=4, help="record every N steps (default 4)")
    rpmd.add_argument("--record-beads", action="store_true", help="also record every bead's positions")
    add_run_control(rpmd)
    add_device_dtype(rpmd, "float32")
    rpmd.set_defaults(func=_rpmd)


def _spectrum(args: argparse.Namespace) -> int:
    from .spectra.report import parse_reference, write_spectra

    chosen = {"ir": args.ir, "raman": args.raman, "power": args.power}
    if not any(chosen.values()):
        chosen = {"ir": True, "raman": True, "power": True}
    if args.predict == "always" and not args.model:
        raise ValueError("--predict always needs --model")
    try:
        keys = json.loads(args.keys) if args.keys else None
    except json.JSONDecodeError as err:
        raise ValueError(f"--keys must be JSON, e.g. '{{\"dipole\": \"REF_dipole\"}}': {err}") from None
    loading = dict(dt_fs=args.dt, model=args.model, predict=args.predict, keys=keys, format=args.format,
                   pbc=False if args.no_pbc else None, extras_units=args.ipi_extras_units, device=args.device,
                   dtype=args.dtype, batch_size=args.batch_size, max_edges=args.max_edges, cache_dir=args.cache,
                   progress=not args.no_progress)
    report = write_spectra(args.records, args.output, temperature_K=args.temperature, max_lag_fs=args.max_lag,
                           window=None if args.window == "none" else args.window,
                           quantum_correction=args.quantum_correction, laser_wavenumber_cm1=args.laser,
                           xlim=tuple(args.range), reference=parse_reference(args.reference), **chosen, **loading)
    print(report.text)
    return 0


def _spectrum_arguments(sub) -> None:
    """The ``spectrum`` command and its arguments."""
    spectrum = sub.add_parser("spectrum", help="IR, Raman and power spectra of MD trajectories (CSV, PNG, peak tables)")
    spectrum.add_argument("records", nargs="+", help="recorder HDF5 files (ase-mpnn md / rpmd), RPMD .npz, ASE .traj, "
                          "extxyz or any ase.io trajectory, or an i-PI run's input .xml; several are independent "
                          "trajectories, averaged with a standard error")
    spectrum.add_argument("--ir", action="store_true", help="IR absorption (needs dipoles)")
    spectrum.add_argument("--raman", action="store_true", help="Raman, polarized and depolarized (polarizabilities)")
    spectrum.add_argument("--power", action="store_true", help="vibrational density of states (velocities)")
    spectrum.add_argument("-o", "--output", default="spectrum", help="output prefix (default 'spectrum': "
                          "spectrum_ir.csv, spectrum_ir.png, ..., spectrum_peaks.md)")
    spectrum.add_argument("--temperature", type=number(0, strict=True), help="K, for absolute IR units (default: the records')")
    spectrum.add_argument("--max-lag", type=number(0, strict=True), default=2000.0,
                          help="correlation length in fs (default 2000: Hann lines ≈ 12 cm⁻¹ wide)")
    spectrum.add_argument("--window", default="hann", choices=["hann", "gaussian", "cos2", "none"],
                          help="lag window of the correlation functions (default hann; gaussian: broader, "
                               "no side lobes; cos2: narrower; none: sinc ringing)")
    spectrum.add_argument("--quantum-correction", choices=["harmonic", "standard", "schofield"],
                          help="for classical records (never for RPMD ones)")
    spectrum.add_argument("--laser", type=float, help="laser wavenumber (cm⁻¹): weight Raman by the Stokes factor")
    spectrum.add_argument("--range", type=float, nargs=2, default=[0.0, 4500.0], metavar=("LO", "HI"),
                          help="cm⁻¹ range of plots and peak tables (default 0 4500)")
    spectrum.add_argument("--reference", nargs="+", help="'water' (experimental gas-phase bands) or positions in cm⁻¹")
    spectrum.add_argument("--dt", type=number(0, strict=True), help="time between frames in fs (MD time step × writing interval), for "
                          "files that do not store it (extxyz, .traj not written by ASE's dynamics)")
    spectrum.add_argument("--model", help="model file: predicts the dipoles/polarizabilities that files lack")
    spectrum.add_argument("--predict", default="missing", choices=["missing", "always"],
                          help="with --model: predict only what files lack (default) or always (replace theirs)")
    add_device_dtype(spectrum, "float32")
    spectrum.add_argument("--batch-size", type=whole(1), help="most frames (× beads) per model call (default 2048)")
    spectrum.add_argument("--max-edges", type=whole(1), help="most graph edges per model call, at least one frame "
                          "(default 1500 on a CPU: cache-sized batches are fastest; 200000 on a GPU)")
    spectrum.add_argument("--cache", metavar="DIR", help="keep predictions in DIR: the next spectrum of the same "
                          "trajectory with the same model reads them instead of predicting again")
    spectrum.add_argument("--keys", help='JSON: where ASE files keep the series, e.g. \'{"dipole": "REF_dipole", '
                          '"time": "t_fs"}\' (defaults: dipole, polarizability, time_fs)')
    spectrum.add_argument("--format", help="ase.io format of the files, when the extension does not tell it")
    spectrum.add_argument("--no-pbc", action="store_true", help="treat the systems as isolated (no unwrapping, "
                          "non-periodic predictions): for a molecule in an i-PI box")
    spectrum.add_argument("--ipi-extras-units", default="atomic", choices=["atomic", "ase"],
                          help="units of i-PI dipole/polarizability extras (ipi-client --extras-units; default atomic)")
    spectrum.add_argument("--no-progress", action="store_true", help="no progress bar while predicting")
    spectrum.set_defaults(func=_spectrum)


def _harmonic(args: argparse.Namespace) -> int:
    from .spectra.harmonic_report import harmonic_report

    read_structures(args.structure)  # an unreadable file: one line, before the model loads
    print(harmonic_report(args.structure, args.model, optimize=not args.no_optimize, fmax=args.fmax,
                          delta=args.delta, device=args.device, dtype=args.dtype, workdir=args.workdir,
                          reference=args.reference))
    return 0


def _harmonic_arguments(sub) -> None:
    """The ``harmonic`` command and its arguments."""
    harmonic = sub.add_parser("harmonic", help="harmonic frequencies, IR (km/mol) and Raman intensities "
                              "of a model (ase.vibrations), for comparison with MD spectra")
    harmonic.add_argument("structure", help="structure file (any ase.io format; the last frame)")
    harmonic.add_argument("--model", required=True, help="model file (.pt), e.g. models/painn_water.pt")
    harmonic.add_argument("--no-optimize", action="store_true", help="do not relax the structure first")
    harmonic.add_argument("--fmax", type=number(0, strict=True), default=1e-4, help="relaxation threshold, eV/Å (default 1e-4)")
    harmonic.add_argument("--delta", type=number(0, strict=True), default=1e-3,
                          help="finite-difference step, Å (default 1e-3: the δ → 0 limit)")
    harmonic.add_argument("--workdir", help="keep the displacement cache here (default: temporary)")
    harmonic.add_argument("--reference", help="JSON of reference harmonic numbers to print beside the model's "
                                              "(e.g. data/water_b3lyp_harmonic.json)")
    add_device_dtype(harmonic, "float64")
    harmonic.set_defaults(func=_harmonic)


def whole(minimum: int):
    """An argparse type: a whole number >= ``minimum``, refused with the range otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {value}")
        return value
    return parse


def number(minimum: float, strict: bool = False):
    """An argparse type: a finite number >= ``minimum`` (> with ``strict``)."""
    relation = ">" if strict else ">="

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {relation} {minimum:g}, got {text!r}") from None
        if not (math.isfinite(value) and (value > minimum if strict else value >= minimum)):
            raise argparse.ArgumentTypeError(f"must be a finite number {relation} {minimum:g}, got {text}")
        return value
    return parse


def read_structures(path: str, index: str | int = -1):
    """Frames of a structure file (``ase.io.read``), or a one-line ValueError saying why not."""
    import ase.io

    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such structure file" + (" (a directory)" if os.path.isdir(path) else ""))
    try:
        return ase.io.read(path, index)
    except Exception as err:  # ase.io raises many types for files it cannot parse
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"{path}: cannot read structures ({type(err).__name__}{': ' + first if first else ''}): is it a "
            "structure file (extxyz, xyz, cif, POSCAR, ...) with the right extension?"
        ) from None


class Interrupted(Exception):
    """Ctrl-C during a command that can be resumed; the message says how."""


@contextmanager
def resumable(how_to_resume: str | Callable[[], str]):
    """Turn Ctrl-C inside the block into :class:`Interrupted` saying ``how_to_resume``
    (a callable is asked when it happens: what was saved by then)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(how_to_resume() if callable(how_to_resume) else how_to_resume) from None


def _training_resume_hint(checkpoint) -> str:
    """What a Ctrl-C'd training leaves and how to continue it (checked when it happens)."""
    if checkpoint.is_file():
        return (f"training is saved up to its last finished epoch ({checkpoint}): run the same command again to "
                "resume from there (--fresh starts over)")
    return "no epoch had finished (no checkpoint yet): running the same command again starts the training afresh"


def _resume_hint(checkpoint: str) -> str:
    """What a Ctrl-C'd MD run leaves and how to continue it (checked when it happens)."""
    if os.path.exists(checkpoint):
        return (f"the run is saved up to its last checkpoint ({checkpoint}): run the same command again to resume "
                "from there (frames recorded after it are dropped; --restart starts over)")
    return "no checkpoint was written yet: running the same command again starts the run from the beginning"


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[name]


def add_run_control(parser: argparse.ArgumentParser) -> None:
    """Checkpoint, restart and progress options of the MD commands (md, rpmd)."""
    parser.add_argument("--checkpoint", help="checkpoint file (default OUTPUT.checkpoint.npz); "
                        "if it exists the run resumes from it")
    parser.add_argument("--checkpoint-interval", type=whole(1), default=1000,
                        help="steps between checkpoints (default 1000)")
    parser.add_argument("--restart", action="store_true", help="discard an existing checkpoint and start the run "
                        "afresh, replacing the record (a resumed run must have the checkpoint's settings)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model's representation (PaiNN, SchNet, BPNN, EGNN): about 1.25x "
                             "faster Langevin MD of a small molecule after 15-25 s of compiling (needs a C++ "
                             "compiler); large PaiNN graphs run eagerly, with the C kernels")


def add_device_dtype(parser: argparse.ArgumentParser, dtype: str) -> None:
    """``--device`` and ``--dtype``; analysis commands default to float64, dynamics to float32."""
    why = ("float64: finite differences and error statistics need the precision" if dtype == "float64"
           else "float32: fast; use float64 for finite differences or long NVE")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu; cuda needs a "
                        "CUDA build of torch)")
    parser.add_argument("--dtype", default=dtype, choices=["float32", "float64"],
                        help=f"precision of the model evaluation (default {why})")


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    parts = [f"ase-mpnn {__version__}"]
    for package in ("torch", "ase", "e3nn", "vesin"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} missing")
    return ", ".join(parts)


TRAIN_EPILOG = """\
The config is YAML; only 'data' is required. Every key, its default and what it does:
models/recipes/reference.yaml. The shipped models' recipes are in models/recipes/.
Re-running the same config resumes from WORKDIR/checkpoint.pt.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``ase-mpnn`` parser; each command's arguments are defined next to its handler."""
    parser = argparse.ArgumentParser(
        prog="ase-mpnn", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Equivariant message-passing potentials in ASE: train, predict, MD, RPMD and "
                    "vibrational spectra.",
        epilog="examples:\n" + __doc__.split("\n\n", 1)[1].strip("\n").rstrip('"'))
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_arguments in (_create_arguments, _info_arguments, _predict_arguments, _md_arguments,
                          _rpmd_arguments, _spectrum_arguments, _harmonic_arguments, _train_arguments,
                          _eval_arguments, _ipi_client_arguments):
        add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A spinning OpenMP runtime (libgomp's default ACTIVE policy) makes training 3-4x
    # slower on a machine with other work; torch's runtime reads this once, at import,
    # which is why ase_mpnn imports torch lazily. An explicit setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning  # one line on stderr, as errors are
        try:
            return args.func(args)
        except ValueError as err:  # our errors say what to do; no traceback
            print(f"ase-mpnn: error: {err}", file=sys.stderr)
            return 2
        except Interrupted as err:
            print(f"\nase-mpnn: interrupted: {err}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            print("\nase-mpnn: interrupted", file=sys.stderr)
            return 130
        except RuntimeError as err:
            from .md.record_file import RecorderError  # imported here: it loads h5py

            if not isinstance(err, RecorderError):
                raise
            print(f"ase-mpnn: error: {err}", file=sys.stderr)  # e.g. the record is locked by another run
            return 2
        except OSError as err:  # a missing or unreadable file, named
            what = err.strerror or ("no such file" if isinstance(err, FileNotFoundError) else type(err).__name__)
            name = err.filename if err.filename is not None else (err.args[0] if err.args else "")
            print(f"ase-mpnn: error: {what}: {name}", file=sys.stderr)
            return 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"ase-mpnn: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

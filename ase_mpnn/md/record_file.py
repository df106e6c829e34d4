"""The HDF5 file behind the MD recorders: append frames, survive kills, one writer per file.

Both :class:`~ase_mpnn.md.recorder.MDRecorder` (any ASE dynamics) and
:class:`~ase_mpnn.md.rpmd_recorder.RingPolymerRecorder` write through :class:`FrameFile`;
this module knows nothing about dynamics, only about frames.

File. HDF5 through h5py, ``libver="latest"``, in SWMR mode (single writer, multiple
readers): frames go to chunked, resizable datasets (first axis = frame), so the file can
be read while the run goes on and after the writer was killed. Readers must open it with
``swmr=True`` (:func:`read_record` does): a plain ``h5py.File(path, "r")`` is refused by
HDF5 while a writer has the file open or after a writer died without closing it.
Static datasets (``numbers``, ``masses``, ``pbc``...) are written once; every dataset has
a ``units`` attribute; the root has ``format``, ``version`` and the recorder's attributes.

Buffering. Frames are kept in memory and written in blocks: when ``flush_interval_s``
seconds of wall time have passed since the last write, on :meth:`FrameFile.flush`
(recorders call it before every checkpoint) and on close. A block costs about what one
frame costs (one HDF5 write and flush per dataset), so for a 3-atom molecule this takes
the recorder from ~17 % of an MD step to ~1 %. A kill loses at most the frames of the
last ``flush_interval_s`` seconds (default 1 s); ``flush_interval_s=0`` writes and
flushes every frame.

A writer killed between two datasets of one block leaves datasets of different lengths,
or lengths ahead of their data (HDF5 fills what was never written with zeros); readers
use the common length, and no more than the ``committed_frames`` count, which the writer
updates only after a block's data is flushed (complete frames only). ``step`` is written
last. A file shorter than its HDF5 superblock says (an incomplete copy, a full disk) is
refused with :class:`RecorderError`: HDF5 would read the missing parts as zeros.

One writer per file. HDF5 drops its own file lock in SWMR mode (so that readers can open
the file), which would let a second writer truncate a file under a running one; a
:class:`FrameFile` therefore holds an advisory lock on ``<real path>.lock`` (``fcntl.flock``,
released by the OS when the process dies; removed when the writer closes; POSIX only). The
lock is named after the file's real path (symbolic links resolved), so a second writer
that reaches the same file through a link is refused too.

Restart. ``mode="a"`` continues an existing file (one left by a killed writer included:
it is first rewritten with its complete frames, since HDF5 refuses to reopen it for
writing). :meth:`FrameFile.truncate` drops frames written after a checkpoint.
``mode="w"`` replaces an existing file only when the first frame is written: until then
:meth:`FrameFile.continue_file` can still continue it instead (``run_md`` and ``run_rpmd``
do when they resume from a checkpoint), and a recorder closed without frames leaves it
as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import h5py
import numpy as np

from ..atomic_file import atomic_write
from ..model.properties import PROPERTY_TABLE

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no writer lock
    fcntl = None

FORMAT = "ase_mpnn.md.recorder"
VERSION = 1

#: Units of every dataset a recorder may write (also stored as ``units`` attributes).
UNITS: dict[str, str] = {
    "step": "1",
    "time": "fs",
    "positions": "Å",
    "velocities": "Å/fs",
    "cell": "Å",
    "potential_energy": "eV",
    "kinetic_energy": "eV",
    "temperature": "K",
    # the model's properties (dipole, polarizability, charges, forces, energies, stress)
    **{name: p.unit for name, p in PROPERTY_TABLE.items() if name != "energy"},
    "numbers": "1",
    "masses": "amu",
    "pbc": "1",
    # ring-polymer MD (RingPolymerRecorder)
    "primitive_kinetic_energy": "eV",
    "conserved_energy": "eV",
    "bead_positions": "Å",
    "bead_dipoles": "e·Å",
}
#: Dataset (one int64) with the number of frames whose data is completely on disk.
COMMITTED = "committed_frames"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Chunks of at most ~1 MiB: large enough for few HDF5 index entries, small enough for big cells.
_CHUNK_BYTES = 1 << 20


class RecorderError(RuntimeError):
    """The file cannot be written as asked (wrong system, step order, closed recorder)."""


def _frame_names(f: h5py.File, static: set[str]) -> list[str]:
    """The per-frame datasets (first axis = frame)."""
    return [k for k in f if k not in static and k != COMMITTED]


def _complete_frames(f: h5py.File, static: set[str]) -> int:
    """Frames present in every per-frame dataset and committed by the writer.

    A kill can leave the last block partial, or datasets already extended whose data
    never reached the file (those frames would read as zeros); the committed count is
    written only after a block's data is flushed. Files from before the count: the
    common length.
    """
    n = min((f[k].shape[0] for k in _frame_names(f, static)), default=0)
    if COMMITTED in f:
        n = min(n, int(f[COMMITTED][0]))
    return n


def _check_not_truncated(path: str | os.PathLike) -> None:
    """Refuse a file that is shorter than its HDF5 superblock says.

    A file cut short (an incomplete copy, a full disk) opens in SWMR mode without HDF5's
    own size check: the missing chunks would read as zeros, or metadata reads retry for
    minutes. The superblock (version 2 or 3, which ``libver="latest"`` writes) stores the
    end-of-file address; during a run and after a killed writer it never exceeds the size.
    """
    with open(path, "rb") as fh:
        head = fh.read(48)
    if len(head) < 36 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3) or head[9] != 8:
        return  # not a recorder's superblock: HDF5 itself decides
    base = int.from_bytes(head[12:20], "little")
    end = base + int.from_bytes(head[28:36], "little")
    size = os.path.getsize(path)
    if size < end:
        raise RecorderError(
            f"{os.fspath(path)} is truncated: it has {size} bytes, but its HDF5 header says it ends at byte {end} "
            "(an incomplete copy or a full disk?). Its frames cannot be trusted (the missing parts would read as "
            "zeros): restore the file from a complete copy"
        )


def _static_names(f: h5py.File) -> set[str]:
    return {str(s) for s in f.attrs.get("static", ("numbers", "masses", "pbc"))}


def read_record(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All datasets of a recorder file as arrays, complete frames only.

    Works while a writer is running (SWMR read) and on files whose writer was killed.
    Per-frame arrays have the frame as first axis; static ones (``numbers``, ``masses``,
    ``pbc``) do not. Units: :func:`read_units` (or :data:`UNITS`); root attributes
    (``n_beads`` of an RPMD record, ...): :func:`read_attributes`.
    """
    _check_not_truncated(path)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        static = _static_names(f)
        n = _complete_frames(f, static)
        return {k: (f[k][()] if k in static else f[k][:n]) for k in f if k != COMMITTED}


def read_units(path: str | os.PathLike) -> dict[str, str]:
    """The ``units`` attribute of every dataset of a recorder file."""
    _check_not_truncated(path)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        return {k: str(f[k].attrs["units"]) for k in f if k != COMMITTED}


def read_attributes(path: str | os.PathLike) -> dict[str, Any]:
    """Root attributes of a recorder file: ``format``, ``version``, ``kind`` ("md" or
    "rpmd"), ``interval``, ``properties``, and for RPMD ``n_beads``, ``temperature_K``..."""
    _check_not_truncated(path)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
    attrs.setdefault("kind", "md")
    return attrs


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def lock_path(path: str | os.PathLike) -> str:
    """The writer-lock file of a record: named after its real path, so that every name of
    the file (symbolic links, relative paths) takes the same lock."""
    return os.path.realpath(path) + ".lock"


def _lock_writer(path: str) -> int | None:
    """Take the advisory writer lock of ``path``; returns its file descriptor.

    The lock file is removed when the writer closes (see :func:`_unlock_writer`), so a
    writer that got the lock on a file that was removed meanwhile tries again on the
    new one: the lock is the file that the name points to now, never a removed one.
    """
    if fcntl is None:
        return None
    lock = lock_path(path)
    while True:
        # O_NOFOLLOW: a symbolic link planted at the lock's name is refused, never opened.
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RecorderError(
                f"{path} is being written by another recorder (lock {lock} held): wait for that run to finish, "
                "or record to another file"
            ) from None
        try:
            current = os.stat(lock, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            return fd
        os.close(fd)  # the previous writer removed this lock file as we opened it: take the new one


def _unlock_writer(fd: int | None, path: str | None = None) -> None:
    """Release the writer lock; with ``path``, remove its lock file first (no ``.lock`` left behind)."""
    if fd is None:
        return
    if path is not None:
        lock = lock_path(path)
        try:  # removed while still held, and only if it is still ours
            current = os.stat(lock, follow_symlinks=False)
            mine = os.fstat(fd)
            if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                os.unlink(lock)
        except OSError:
            pass
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _open_swmr_writer(path: str) -> h5py.File:
    """Open an existing file for SWMR writing (append)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    return h5py.File(fid)


def _rewrite_complete(path: str) -> None:
    """Rewrite a file left open by a killed writer, keeping its complete frames.

    HDF5 refuses to reopen such a file for writing until its "open for write" flags are
    cleared (the ``h5clear`` tool); a copy through an SWMR reader needs no extra tool.
    """
    _check_not_truncated(path)
    with h5py.File(path, "r", libver="latest", swmr=True) as src:
        static = _static_names(src)
        n = _complete_frames(src, static)
        # Replaces the file only once the copy is complete (atomic_write: a kill leaves it as it was).
        with atomic_write(path, "w+b") as f, h5py.File(f, "w", libver="latest") as dst:
            dst.attrs.update(dict(src.attrs))
            for name, ds in src.items():
                if name == COMMITTED:
                    continue
                if name in static:
                    out = dst.create_dataset(name, data=ds[()])
                else:
                    out = dst.create_dataset(name, data=ds[:n], maxshape=(None,) + ds.shape[1:], chunks=ds.chunks)
                out.attrs.update(dict(ds.attrs))
            dst.create_dataset(COMMITTED, data=np.array([n], dtype=np.int64))


class FrameFile:
    """An HDF5 recorder file open for appending frames (see the module docstring).

    Args:
        path: the file.
        shapes: per-frame datasets and the shape of one frame, e.g. {"dipole": (3,)};
            must contain ``"step"`` (int64; every other dataset is float64).
        static: datasets written once on creation (``numbers`` must be one of them: it
            identifies the system when a file is continued).
        attrs: root attributes written on creation (``format`` and ``version`` are added).
        mode: "w" creates a new file; an existing one is replaced only when the first
            frame is written (until then :meth:`continue_file` may continue it instead;
            closed without frames, it is left as it was). "a" continues an existing file
            (created if missing).
        check: called with the open file in mode "a" to refuse an incompatible file
            (raise :class:`RecorderError`); the system's ``numbers`` and the dataset names
            are checked here already.
        flush_interval_s: write buffered frames when this much wall time has passed since
            the last write (0: write and flush every frame).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shapes: Mapping[str, tuple[int, ...]],
        static: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
        mode: str = "w",
        check: Callable[[h5py.File], None] | None = None,
        flush_interval_s: float = 1.0,
    ):
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        if not flush_interval_s >= 0:
            raise ValueError(f"flush_interval_s must be >= 0, got {flush_interval_s!r}")
        if "step" not in shapes or "numbers" not in static:
            raise ValueError("a recorder file needs a 'step' dataset and static 'numbers'")
        self.path = os.fspath(path)
        self.shapes = dict(shapes)
        self.flush_interval_s = float(flush_interval_s)
        self._static = {k: np.asarray(v) for k, v in static.items()}
        self._attrs = dict(attrs)
        self._check = check
        self._buffer: list[dict[str, Any]] = []
        self._last_write = time.monotonic()
        self._file: h5py.File | None = None
        self._committed: h5py.Dataset | None = None
        self._closed = False
        if os.path.isdir(self.path):
            raise RecorderError(f"{self.path} is a directory: give the record a file name, e.g. {self.path}/md.h5")
        self._lock = _lock_writer(self.path)
        try:
            # Mode "w" over an existing file: nothing is destroyed until the first frame is
            # written, so that a run resuming from a checkpoint can still continue the file.
            self._replace_pending = mode == "w" and os.path.exists(self.path)
            if self._replace_pending and not os.access(self.path, os.W_OK):
                raise RecorderError(f"{self.path} exists and is not writable: cannot replace it")
            if not self._replace_pending:
                self._file = self._open(mode)
        except BaseException:
            _unlock_writer(self._lock, self.path)
            raise
        self._bind()

    def _bind(self) -> None:
        """Take the datasets, frame count and last step from the open file (or none yet)."""
        if self._file is None:
            self._datasets: dict[str, h5py.Dataset] = {}
            self._written = 0
        else:
            self._datasets = {name: self._file[name] for name in self.shapes}
            self._committed = self._file[COMMITTED] if COMMITTED in self._file else None
            self._written = _complete_frames(self._file, set(self._static))
        #: Step of the last frame (buffered or written; -1 when empty).
        self.last_step = int(self._datasets["step"][self._written - 1]) if self._written else -1

    @property
    def n_frames(self) -> int:
        """Frames in the file plus frames waiting in the buffer."""
        return self._written + len(self._buffer)

    @property
    def is_open(self) -> bool:
        return not self._closed

    @property
    def replace_pending(self) -> bool:
        """Mode "w" found an existing file that no frame has replaced yet."""
        return self._replace_pending and not self._closed

    def continue_file(self) -> None:
        """Continue the existing file as mode "a" would, instead of replacing it.

        For a recorder opened with mode "w" on an existing file before any frame was
        written (``run_md`` and ``run_rpmd`` call it when they resume from a checkpoint:
        the record belongs to the run they continue). A no-op otherwise.
        """
        self._require_open()
        if not self._replace_pending:
            return
        if self._buffer:
            raise RecorderError(f"{self.path}: frames were recorded already; the existing file cannot be continued")
        self._file = self._open("a")
        self._replace_pending = False
        self._bind()

    # Opening -------------------------------------------------------------------------
    def _open(self, mode: str) -> h5py.File:
        if mode == "a" and os.path.exists(self.path):
            try:
                f = _open_swmr_writer(self.path)
            except OSError:
                # Left open by a killed writer (or not an HDF5 file: then this fails too).
                try:
                    _rewrite_complete(self.path)
                    f = _open_swmr_writer(self.path)
                except OSError as err:
                    raise RecorderError(
                        f"{self.path} cannot be continued: not a readable recorder file ({err}). Record to another "
                        "file, or move this one away"
                    ) from None
            try:
                self._check_compatible(f)
                n = _complete_frames(f, set(self._static))
                if COMMITTED in f:
                    f[COMMITTED][0] = n
                for name in self.shapes:
                    if f[name].shape[0] > n:
                        f[name].resize(n, axis=0)
                f.flush()
            except BaseException:
                f.close()
                raise
            return f
        f = h5py.File(self.path, "w", libver="latest")
        try:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["static"] = sorted(self._static)
            for key, value in self._attrs.items():
                f.attrs[key] = value
            for name, data in self._static.items():
                f.create_dataset(name, data=data).attrs["units"] = UNITS.get(name, "")
            for name, shape in self.shapes.items():
                frame_bytes = 8 * int(np.prod(shape, dtype=np.int64))
                chunk = max(1, min(1024, _CHUNK_BYTES // max(frame_bytes, 1)))
                ds = f.create_dataset(
                    name, shape=(0,) + shape, maxshape=(None,) + shape, chunks=(chunk,) + shape,
                    dtype=np.int64 if name == "step" else np.float64,
                )
                ds.attrs["units"] = UNITS.get(name, "")
            f.create_dataset(COMMITTED, data=np.zeros(1, dtype=np.int64)).attrs["units"] = "1"
            # From here on no dataset or attribute may be created (SWMR rule); readers may open.
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        return f

    def _check_compatible(self, f: h5py.File) -> None:
        if f.attrs.get("format") != FORMAT:
            raise RecorderError(f"{self.path} is not a recorder file (format {f.attrs.get('format')!r})")
        if not np.array_equal(f["numbers"][()], self._static["numbers"]):
            raise RecorderError(f"{self.path} holds a different system (atomic numbers differ)")
        missing = [name for name in self.shapes if name not in f]
        if missing:
            raise RecorderError(f"{self.path} has no datasets {missing}: it was written by another kind of run")
        if self._check is not None:
            self._check(f)

    # Frames --------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self._closed:
            raise RecorderError(f"recorder for {self.path} is closed")

    def append(self, frame: Mapping[str, Any]) -> None:
        """Add one frame (a value for every dataset); its step must exceed the last one."""
        self._require_open()
        step = int(frame["step"])
        if step <= self.last_step:
            raise RecorderError(
                f"step {step} is not after the file's last step {self.last_step}: to continue a run restore "
                "the dynamics' step counter (last_step), or drop later frames with truncate(step)"
            )
        # Copies: the caller's arrays (atoms.positions...) change in place after this call.
        self._buffer.append({name: np.array(frame[name], dtype=np.int64 if name == "step" else np.float64)
                             for name in self.shapes})
        self.last_step = step
        if time.monotonic() - self._last_write >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered frames and flush the file (a no-op when nothing is buffered)."""
        self._last_write = time.monotonic()
        if not self._buffer or self._closed:
            return
        if self._replace_pending:  # the first frame: now the existing file is replaced
            self._file = self._open("w")
            self._replace_pending = False
            self._datasets = {name: self._file[name] for name in self.shapes}
            self._committed = self._file[COMMITTED]
        n, k = self._written, len(self._buffer)
        # "step" goes last: a block cut by a kill then always lacks it, and readers use
        # the common length of all datasets.
        for name in sorted(self.shapes, key=lambda key: key == "step"):
            shape = self.shapes[name]
            block = np.stack([frame[name] for frame in self._buffer]).reshape((k,) + shape)
            # Low-level writes: h5py's ``ds[a:b] = x`` costs ~60 µs per dataset in argument
            # handling alone, a visible share of a 2 ms step when flushing every frame.
            dsid = self._datasets[name].id
            dsid.set_extent((n + k,) + shape)
            fspace = dsid.get_space()
            fspace.select_hyperslab((n,) + (0,) * len(shape), (k,) + shape)
            dsid.write(h5py.h5s.create_simple(block.shape), fspace, block)
        self._file.flush()
        # Committed only once the block's data is in the file: a kill before this line
        # leaves extended datasets whose new frames readers must not take (zeros).
        self._commit(n + k)
        self._written = n + k
        self._buffer.clear()

    def _commit(self, n: int) -> None:
        """Record ``n`` as the number of complete frames (files from before the count have none)."""
        if self._committed is not None:
            self._committed.id.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array([n], dtype=np.int64))
            self._file.flush()

    def truncate(self, after_step: int) -> int:
        """Drop the frames with step > ``after_step`` (e.g. written after a checkpoint); returns how many."""
        self._require_open()
        self.flush()
        if self._file is None:  # mode "w", nothing written: the existing file is not this run's
            return 0
        steps = self._datasets["step"][: self._written]
        keep = int(np.searchsorted(steps, after_step, side="right"))
        dropped = self._written - keep
        if dropped:
            self._commit(keep)  # first: a kill while resizing leaves no dropped frame counted
            for ds in self._datasets.values():
                ds.resize(keep, axis=0)
            self._file.flush()
            self._written = keep
            self.last_step = int(steps[keep - 1]) if keep else -1
        return dropped

    def close(self) -> None:
        """Write what is buffered, close the file and release the writer lock.

        A recorder opened with mode "w" on an existing file that never wrote a frame
        leaves that file as it was.
        """
        if self._closed:
            return
        try:
            self.flush()
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._closed = True
            _unlock_writer(self._lock, self.path)
            self._lock = None


class FrameRecorder:
    """What the MD and RPMD recorders share: a :class:`FrameFile` and the context manager.

    Subclasses set ``self._frames`` and implement ``close`` (which must close it).
    """

    _frames: FrameFile

    @property
    def n_frames(self) -> int:
        """Frames recorded so far (written or waiting in the buffer)."""
        return self._frames.n_frames

    @property
    def last_step(self) -> int:
        """Step of the last frame recorded (-1 when none)."""
        return self._frames.last_step

    def flush(self) -> None:
        """Write buffered frames to the file now (before a checkpoint, for example)."""
        self._frames.flush()

    def truncate(self, after_step: int) -> int:
        """Drop the frames with step > ``after_step`` (e.g. written after a checkpoint); returns how many."""
        return self._frames.truncate(after_step)

    def continue_file(self) -> None:
        """Continue the existing file instead of replacing it (mode "w" before the first frame;
        see :meth:`FrameFile.continue_file`)."""
        self._frames.continue_file()

    def close(self) -> None:  # pragma: no cover - every recorder overrides it
        self._frames.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

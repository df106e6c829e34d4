"""Write a file so that readers see the old version or the new one, never half of either.

    with atomic_write("model.pt") as f:
        torch.save(payload, f)

The content goes to a temporary file in the target's directory, created by
:func:`tempfile.mkstemp`: an unpredictable name opened with ``O_CREAT | O_EXCL``, so a
file or symbolic link planted in advance can neither be overwritten nor followed. The
temporary file is flushed to disk (``fsync``) and renamed over the target
(``os.replace``, atomic on POSIX). If anything goes wrong before the rename, including
``KeyboardInterrupt``, the temporary file is removed and the target keeps its old content.

A target that is a symbolic link is replaced by the new file (the link, not what it
points to): writing never reaches a file through a link someone else put there.

A writer killed outright (SIGKILL, power loss) cannot remove its temporary file; the
next successful write of the same target removes such leftovers (regular files named
like its own temporaries and older than :data:`STALE_AFTER_S`, so that a concurrent
writer's file in progress is left alone).
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

__all__ = ["STALE_AFTER_S", "atomic_write"]

#: Age (s) from which a leftover temporary file of a target counts as abandoned.
STALE_AFTER_S = 600.0


def _default_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (0o666 less the umask).

    ``mkstemp`` creates its file with 0o600; without this a model or checkpoint would
    silently become unreadable to the group and to others.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when the block ends.

    Args:
        path: the file to write (created or replaced).
        mode: "wb" (default), "w" (text; ``open_kwargs`` such as ``newline=""`` or
            ``encoding`` go to :func:`os.fdopen`) or "w+b" (binary, readable too: for
            writers that seek back and read, such as ``h5py.File(f, "w")``).

    Yields the open file object. On a normal exit the data is fsynced and the file
    renamed to ``path``; on any exception the temporary file is deleted and ``path`` is
    untouched.
    """
    if mode not in ("w", "wb", "w+b"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w', 'wb' or 'w+b', got {mode!r}")
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(directory)
    _remove_abandoned_temporaries(directory, target.name)


def _remove_abandoned_temporaries(directory: Path, name: str) -> None:
    """Delete ``.NAME.*.tmp`` regular files older than :data:`STALE_AFTER_S` (killed writers')."""
    now = time.time()
    for leftover in directory.glob(f".{name}.*.tmp"):
        with suppress(OSError):
            info = leftover.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_AFTER_S:
                leftover.unlink()


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every system can fsync a directory)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

"""Refuse to write an output over an input: a mistyped ``-o`` must never destroy data.

    check_outputs(inputs={"structure": "water.xyz", "model": "m.pt"},
                  outputs={"record": "md.h5", "checkpoint": "md.h5.checkpoint.npz"})

Two paths name the same file when they resolve to the same real path (symbolic links,
``..``, relative paths) or, for files that exist, when ``os.path.samefile`` says so (hard
links, case-insensitive file systems). Outputs must also differ from each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Union

__all__ = ["check_outputs", "same_file"]

PathLike = Union[str, "os.PathLike[str]"]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` are the same file (existing or not)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the real paths decided
        return False


def _named(paths: Mapping[str, PathLike | Iterable[PathLike] | None]) -> list[tuple[str, PathLike]]:
    """(name, path) pairs; a name may stand for a list of paths (several data files)."""
    pairs = []
    for name, value in paths.items():
        if value is None:
            continue
        if isinstance(value, (str, os.PathLike)):
            pairs.append((name, value))
        else:
            pairs.extend((name, p) for p in value)
    return pairs


def check_outputs(inputs: Mapping[str, PathLike | Iterable[PathLike] | None],
                  outputs: Mapping[str, PathLike | None]) -> None:
    """Raise ``ValueError`` if an output would overwrite an input or another output.

    Args:
        inputs: what the run reads, by the name the user knows it by (``"data"``,
            ``"structure"``...); a value may be a list of paths; None entries are skipped.
        outputs: what the run writes, by name; None entries are skipped.

    Call it before anything is written.
    """
    written = _named(outputs)
    for out_name, out_path in written:
        for in_name, in_path in _named(inputs):
            if same_file(out_path, in_path):
                raise ValueError(
                    f"the {out_name} {os.fspath(out_path)} is the {in_name} file {os.fspath(in_path)}: writing it "
                    f"would destroy the {in_name}. Choose another {out_name} path"
                )
    for k, (name_a, path_a) in enumerate(written):
        for name_b, path_b in written[k + 1:]:
            if same_file(path_a, path_b):
                raise ValueError(
                    f"the {name_a} and the {name_b} are the same file ({os.fspath(path_a)}): one would overwrite "
                    "the other. Choose different paths"
                )

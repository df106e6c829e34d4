"""Plots of spectra to image files (matplotlib's Agg canvas: no display, no pyplot state)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .lineshapes import RamanSpectra, Spectrum


def _as_list(spectra: Spectrum | RamanSpectra | Sequence[Spectrum | RamanSpectra]) -> list[Spectrum]:
    items = [spectra] if isinstance(spectra, (Spectrum, RamanSpectra)) else list(spectra)
    out: list[Spectrum] = []
    for item in items:
        out.extend(item.as_list()[:2] if isinstance(item, RamanSpectra) else [item])
    if not out:
        raise ValueError("nothing to plot")
    return out


def plot_spectra(
    spectra: Spectrum | RamanSpectra | Sequence[Spectrum | RamanSpectra],
    path: str | os.PathLike,
    *,
    xlim: tuple[float, float] | None = (0.0, 4500.0),
    reference: Mapping[str, float] | Sequence[float] | None = None,
    normalize: bool | str = False,
    title: str | None = None,
    ylabel: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.0),
    dpi: int = 150,
) -> str:
    """Plot spectra against wavenumber (cm⁻¹) and save to ``path`` (format from its suffix).

    Args:
        spectra: one or several :class:`Spectrum` (a :class:`RamanSpectra` adds its
            parallel and perpendicular spectra).
        xlim: wavenumber range (None: the full grid).
        reference: band positions in cm⁻¹ (dict name → position, or a list) drawn as
            dashed vertical lines, e.g. ``WATER_GAS_FUNDAMENTALS``.
        normalize: ``True``/``"each"``: scale each spectrum (and its band) to a
            maximum of 1 within ``xlim``; ``"common"``: one factor for all, so that
            relative intensities (e.g. Raman I_∥ against I_⊥) are kept.
        ylabel: default "intensity (<units of the first spectrum>)".

    The standard error (``std_error``) is drawn as a shaded ±1 band. Returns the path.
    """
    items = _as_list(spectra)
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if normalize not in (False, True, "each", "common"):
        raise ValueError(f"normalize must be False, True, 'each' or 'common', got {normalize!r}")
    shown_all = [s.crop(*xlim) if xlim is not None else s for s in items]
    tops = [np.nanmax(np.abs(s.intensity)) if s.intensity.size else 0.0 for s in shown_all]
    for s, shown, top in zip(items, shown_all, tops):
        scale = 1.0
        reference_top = max(tops) if normalize == "common" else top
        if normalize and reference_top > 0:
            scale = 1.0 / reference_top
        line, = ax.plot(shown.wavenumber, shown.intensity * scale, lw=1.0, label=s.label or s.kind)
        if shown.std_error is not None:
            lo = (shown.intensity - shown.std_error) * scale
            hi = (shown.intensity + shown.std_error) * scale
            ax.fill_between(shown.wavenumber, lo, hi, color=line.get_color(), alpha=0.25, lw=0)
    if reference is not None:
        _draw_reference(ax, reference, xlim or (float(items[0].wavenumber[0]), float(items[0].wavenumber[-1])))
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_xlabel("wavenumber (cm⁻¹)")
    default = "intensity (normalised)" if normalize else f"intensity ({items[0].units})"
    ax.set_ylabel(ylabel or default)
    if title:
        ax.set_title(title)
    if len(items) > 1 or any(s.label for s in items) or any(s.std_error is not None for s in items):
        handles, labels = ax.get_legend_handles_labels()
        if any(s.std_error is not None for s in items):
            from matplotlib.patches import Patch

            handles.append(Patch(color="0.6", alpha=0.4, lw=0))
            labels.append("± 1 standard error")
        ax.legend(handles, labels, fontsize=8, frameon=False)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path)
    return path


def _draw_reference(ax, reference: Mapping[str, float] | Sequence[float], xlim: tuple[float, float]) -> None:
    """Dashed lines at the reference bands; names stacked where lines are close."""
    items = sorted(reference.items() if isinstance(reference, Mapping) else [(None, r) for r in reference],
                   key=lambda item: item[1])
    crowded = 0.06 * (xlim[1] - xlim[0])  # names closer than this would overlap
    level, previous = 0, -np.inf
    for name, value in items:
        if not xlim[0] <= value <= xlim[1]:
            continue
        ax.axvline(value, color="0.45", ls="--", lw=0.8, zorder=0)
        if not name:
            continue
        level = level + 1 if value - previous < crowded else 0
        previous = value
        ax.annotate(str(name), (value, 0.98 - 0.3 * (level % 3)), xycoords=("data", "axes fraction"),
                    rotation=90, ha="right", va="top", fontsize=7, color="0.3")

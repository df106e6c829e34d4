"""IR, Raman and power spectra from MD time series, in physical units.

    from ase_mpnn.spectra import ir_spectrum_from_file, find_peaks, peak_table, plot_spectra
    ir = ir_spectrum_from_file("water.h5", temperature_K=300.0, max_lag_fs=2000.0)
    print(peak_table(find_peaks(ir, lo=1000, hi=4200), WATER_GAS_FUNDAMENTALS))
    print(ir.km_per_mol(1400, 1800), "km/mol")

    ir = ir_spectrum_from_file("md.traj", model="models/painn_water.pt")  # any trajectory

Modules: :mod:`.correlation` (ACFs, lag windows, spectral densities),
:mod:`.lineshapes` (IR, Raman, VDOS, :class:`Spectrum`), :mod:`.quantum` (quantum
correction factors), :mod:`.sources` (time series from files: recorder HDF5 (MD and RPMD),
ASE trajectories, extxyz, i-PI runs), :mod:`.trajectories` (readers of ASE and i-PI files,
unwrapping of periodic positions), :mod:`.prediction` (dipoles and polarizabilities of a
trajectory from a model, in batches, cached), :mod:`.peaks`,
:mod:`.plot`, :mod:`.harmonic` (harmonic frequencies, IR/Raman intensities and
normal-mode sampling through ``ase.vibrations``), :mod:`.report` (files for
``ase-mpnn spectrum``).
"""

from ..md.normal_modes import normal_mode_sampling
from .correlation import autocorrelation, cosine_transform, lag_window, spectral_density
from .harmonic import HarmonicResult, harmonic_analysis
from .harmonic_report import harmonic_report, load_reference, reference_table
from .lineshapes import (
    POLARIZABILITY_TO_A3,
    RamanSpectra,
    Spectrum,
    average_spectra,
    band_intensity_km_per_mol,
    ir_spectrum,
    power_spectrum,
    raman_scattering_factor,
    raman_spectrum,
)
from .peaks import WATER_GAS_FUNDAMENTALS, Peak, find_peaks, peak_table
from .plot import plot_spectra
from .prediction import predict_series
from .quantum import absorption_multiplier, correction_factor, reduced_frequency
from .report import SpectraReport, write_spectra
from .sources import (
    MissingSeriesError,
    ir_spectrum_from_file,
    load_all,
    load_series,
    power_spectrum_from_file,
    raman_spectrum_from_file,
    uniform_dt,
)
from .trajectories import TrajectoryError, UnwrapError, unwrap_positions

__all__ = [
    "POLARIZABILITY_TO_A3",
    "WATER_GAS_FUNDAMENTALS",
    "HarmonicResult",
    "MissingSeriesError",
    "Peak",
    "RamanSpectra",
    "SpectraReport",
    "Spectrum",
    "TrajectoryError",
    "UnwrapError",
    "absorption_multiplier",
    "autocorrelation",
    "average_spectra",
    "band_intensity_km_per_mol",
    "correction_factor",
    "cosine_transform",
    "find_peaks",
    "harmonic_analysis",
    "harmonic_report",
    "load_reference",
    "reference_table",
    "ir_spectrum",
    "ir_spectrum_from_file",
    "lag_window",
    "load_all",
    "load_series",
    "normal_mode_sampling",
    "peak_table",
    "plot_spectra",
    "power_spectrum",
    "power_spectrum_from_file",
    "predict_series",
    "raman_scattering_factor",
    "raman_spectrum",
    "raman_spectrum_from_file",
    "reduced_frequency",
    "spectral_density",
    "uniform_dt",
    "unwrap_positions",
    "write_spectra",
]

"""Argument checks shared by the library and the command line: dtype, device, finite weights.

Each raises ``ValueError`` (which the command line prints as one line) with what is
wrong and what to do, before torch fails later with an obscure message (an int32
model, a half-precision one that returns NaN, "Torch not compiled with CUDA enabled").
"""

from __future__ import annotations

import torch

__all__ = ["MODEL_DTYPES", "check_device", "check_dtype", "non_finite_parameters"]

#: Floating-point types a model can be evaluated in. float16/bfloat16 are refused: their
#: 3 significant digits turn the total energy of a molecule (≈ −2000 eV for water) into
#: noise of ±1 eV and forces into NaN.
MODEL_DTYPES = (torch.float32, torch.float64)


def check_dtype(dtype: torch.dtype | None, what: str = "dtype") -> torch.dtype | None:
    """``dtype`` if it is float32, float64 or None; a ValueError naming the choices otherwise."""
    if dtype is None or dtype in MODEL_DTYPES:
        return dtype
    raise ValueError(
        f"{what} {dtype} is not supported: models run in torch.float32 (fast) or torch.float64 (for finite "
        "differences and long NVE runs); lower precision returns non-finite or meaningless energies"
    )


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` after checking that this torch can use it."""
    try:
        result = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device, e.g. 'cpu', 'cuda' or 'cuda:1' ({err})") from None
    if result.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            raise ValueError(
                f"device {str(device)!r}: this torch ({torch.__version__}) was built without CUDA support. "
                "Use the CPU (--device cpu) or install a CUDA build of torch (https://pytorch.org/get-started)"
            )
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r}: torch has CUDA support but sees no GPU (driver missing, or "
                "CUDA_VISIBLE_DEVICES empty?). Use --device cpu or make a GPU visible"
            )
        if result.index is not None and result.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif result.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: Apple's MPS backend is not available here; use --device cpu")
    return result


def non_finite_parameters(module: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``module`` that hold NaN or infinite values."""
    return [name for name, t in module.state_dict().items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]

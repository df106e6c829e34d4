"""Device-agnostic code, checked without a GPU: every tensor a model call creates names its device.

``device="cuda"`` breaks where code creates a tensor with a factory (``torch.zeros``,
``torch.arange``, ``torch.tensor``...) without ``device=``: it lands on the CPU and the
next operation mixes devices. A GPU run catches that (``test_calculator.py::test_cuda_matches_cpu``,
skipped here); this test catches it on any machine by watching every factory call made
during a forward and backward pass of each architecture through the calculator.
"""

from __future__ import annotations

import pytest
import torch
from ase.build import molecule
from torch.overrides import TorchFunctionMode

from ase_mpnn import MPNNCalculator
from conftest import make_model

FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.eye, torch.linspace,
             torch.tensor, torch.as_tensor, torch.randn, torch.rand, torch.zeros_like, torch.ones_like}
LIKE = {torch.zeros_like, torch.ones_like}  # take the device of their input unless told otherwise


class FactoryWatch(TorchFunctionMode):
    """Records factory calls that do not say on which device their tensor goes."""

    def __init__(self):
        super().__init__()
        self.unplaced: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and func not in LIKE and "device" not in kwargs:
            import traceback

            where = [f for f in traceback.extract_stack()[:-1] if "ase_mpnn" in f.filename]
            if where:  # our code, not torch's or e3nn's internals
                self.unplaced.append(f"{func.__name__} at {where[-1].filename}:{where[-1].lineno}")
        return func(*args, **(kwargs or {}))


def test_every_tensor_factory_in_a_model_call_names_its_device(architecture):
    calc = MPNNCalculator(make_model(architecture), dtype=torch.float64)
    box = molecule("H2O")
    box.set_cell([3.3, 3.1, 3.6])
    box.pbc = True
    structures = [molecule("H2O"), box]
    with FactoryWatch() as watch:
        calc.predict(structures, ("energy", "forces", "stress", "dipole", "charges", "polarizability"))
    assert not watch.unplaced, sorted(set(watch.unplaced))


def test_the_watch_catches_a_factory_without_device():
    with FactoryWatch() as watch:
        exec(compile("import torch\ntorch.zeros(3)\n", "ase_mpnn/fake.py", "exec"))
    assert watch.unplaced and "ase_mpnn/fake.py" in watch.unplaced[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a CUDA device")
def test_cuda_without_a_cuda_build_says_so():
    with pytest.raises((ValueError, RuntimeError), match="(?i)cuda"):
        MPNNCalculator(make_model("painn"), device="cuda")

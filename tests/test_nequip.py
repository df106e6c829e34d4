"""NequIP specifics: its convolution is e3nn's TensorProduct; radial weights vanish at r_c."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from ase_mpnn.model.zoo.nequip import NequIP
from ase_mpnn.model.nn.e3nn_utils import restore_exact_constants_


@pytest.mark.parametrize("layer_index", [0, 1], ids=["scalar input", "full input"])
def test_convolution_equals_e3nn_tensor_product(layer_index):
    torch.manual_seed(0)
    F, lmax, n, n_edges = 3, 2, 5, 12
    net = NequIP(
        2, 4.0, n_features=F, lmax=lmax, n_layers=2, n_rbf=4, radial_hidden=8, radial_layers=1
    ).double()
    layer = net.layers[layer_index]
    irreps_in = layer.linear_in.irreps_in
    tp = o3.TensorProduct(
        irreps_in,
        net.irreps_sh,
        layer.irreps_mid,
        [
            (l1 if layer_index else 0, l2, i, "uvu", True)
            for i, (l1, l2, _) in enumerate(layer.paths)
        ],
        shared_weights=False,
        internal_weights=False,
    ).double()
    restore_exact_constants_(tp)
    h = torch.randn(n, irreps_in.dim, dtype=torch.float64)
    receiver, sender = torch.randint(0, n, (2, n_edges))
    sh = o3.spherical_harmonics(
        net.irreps_sh, torch.randn(n_edges, 3, dtype=torch.float64), True, normalization="component"
    )
    weights = torch.randn(n_edges, tp.weight_numel, dtype=torch.float64)
    expected = torch.zeros(n, tp.irreps_out.dim, dtype=torch.float64).index_add(
        0, receiver, tp(h[sender], sh, weights)
    )
    out = layer.convolve(h, sh, weights, receiver, sender)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_radial_weights_vanish_smoothly_at_cutoff():
    torch.manual_seed(0)
    net = NequIP(2, 3.0, n_features=4, n_layers=1, n_rbf=4, radial_hidden=8).double()
    r = torch.tensor([2.9, 2.99, 3.0, 3.2], dtype=torch.float64, requires_grad=True)
    weights = net.layers[0].radial(net.rbf(r) * net.envelope(r)[:, None])
    grad = torch.autograd.grad(weights.sum(), r)[0]
    assert weights[2:].abs().max() == 0 and grad[2:].abs().max() == 0
    assert weights[1].abs().max() < 1e-6 < weights[0].abs().max()

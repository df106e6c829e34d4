"""Run-time shim for mace-torch's environment: e3nn 0.4.4 under torch >= 2.6.

mace-torch pins e3nn==0.4.4. At import, ``e3nn.o3._wigner`` reads its bundled
``constants.pt`` with a bare ``torch.load(path)``. Since torch 2.6 ``torch.load``
defaults to ``weights_only=True``, whose unpickler accepts only allow-listed types, and
that file contains Python ``slice`` objects; so ``import e3nn.o3`` (and with it
``import mace.modules``) fails under torch 2.13 with "Unsupported global: GLOBAL slice
was not an allowed global by default".

The shim adds the builtin ``slice`` to torch's allow-list (what the error message itself
suggests). It does not turn ``weights_only`` off and changes nothing else; it must be
imported before e3nn. worker_mace.py imports it first, and setup_anchors.sh imports it in
its check of the environment.
"""

import torch

torch.serialization.add_safe_globals([slice])

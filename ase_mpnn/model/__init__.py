"""The model: neighbor lists and graphs, building blocks, architectures, output heads, files.

Pipeline order: :mod:`.neighbors` (periodic pair lists) → :mod:`.graph` (batched
tensors) → :mod:`.zoo` (eight architectures on the :mod:`.nn` blocks, one contract in
:mod:`.nn.representation`) → :mod:`.potential` and :mod:`.heads` (energy, forces,
stress, charges, dipole, polarizability; the property table in :mod:`.properties`) →
:mod:`.io` (model files). :mod:`.committee_model` evaluates several models in one pass.
"""

"""Training on the user's data: :mod:`.data` (extxyz / ASE db, splits), :mod:`.train`
(the trainer, checkpoints, fine-tuning), :mod:`.evaluate` (errors on held-out data),
:mod:`.committee` (several seeds), :mod:`.plots` (learning curve, parity plots),
:mod:`.config_checks` and :mod:`.label_outliers` (settings and labels checked first).
"""

"""Range checks for the numbers of a training config, with messages that say what to write.

A setting outside its range does not fail at once: ``ema_decay: 1.5`` extrapolates the
weights away from the trained ones, a negative loss weight rewards errors, ``ema_decay:
1`` saves the untrained start. Each is refused before training, naming the key, the value
and the range.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_training_numbers"]


def _text_hint(value: Any) -> str:
    if isinstance(value, str):
        # PyYAML reads 1e-3 (no decimal point) as text, a common surprise.
        return " (it is text: YAML reads a number like 1e-3 without a decimal point as a string; write 1.0e-3)"
    return ""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}{_text_hint(value)}")
    return float(value)


def _whole(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}{_text_hint(value)}")


def _in_range(name: str, value: Any, low: float, high: float, *, low_open: bool, high_open: bool,
              meaning: str = "") -> None:
    x = _number(name, value)
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if math.isnan(x) or not (above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}{meaning}")


def check_training_numbers(config: Any) -> None:
    """Raise ``ValueError`` for the first numeric setting of ``config`` out of its range.

    ``config`` is a :class:`~ase_mpnn.training.train.TrainConfig`. Whole numbers: ``seed`` and ``split_seed`` (if given) ≥ 0,
    ``batch_size`` ≥ 1, ``max_epochs`` ≥ 0, ``warmup_epochs`` ≥ 0, ``plateau_patience`` ≥ 0,
    ``early_stopping_patience`` ≥ 1. Real numbers: ``cutoff`` > 0, ``lr`` > 0,
    ``min_lr`` in [0, lr], ``weight_decay`` ≥ 0, ``plateau_factor`` in (0, 1),
    ``ema_decay`` in [0, 1), ``clip_grad_norm`` > 0 (inf: no clipping), ``max_minutes``
    > 0 or None, ``split`` fractions ≥ 0, loss weights ≥ 0 with at least one > 0.
    """
    inf = math.inf
    _whole("seed", config.seed, 0)
    if config.split_seed is not None:
        _whole("split_seed", config.split_seed, 0)
    _whole("batch_size", config.batch_size, 1)
    _whole("max_epochs", config.max_epochs, 0)
    _whole("warmup_epochs", config.warmup_epochs, 0)
    _whole("plateau_patience", config.plateau_patience, 0)
    _whole("early_stopping_patience", config.early_stopping_patience, 1)
    _in_range("cutoff", config.cutoff, 0, inf, low_open=True, high_open=True, meaning=" (Å)")
    _in_range("lr", config.lr, 0, inf, low_open=True, high_open=True)
    _in_range("min_lr", config.min_lr, 0, config.lr, low_open=False, high_open=False,
              meaning=" (the floor of the learning rate: at most lr)")
    _in_range("weight_decay", config.weight_decay, 0, inf, low_open=False, high_open=True)
    _in_range("plateau_factor", config.plateau_factor, 0, 1, low_open=True, high_open=True,
              meaning=" (the learning rate is multiplied by it on a plateau)")
    _in_range("ema_decay", config.ema_decay, 0, 1, low_open=False, high_open=True,
              meaning=" (0 disables the moving average; 1 would never move it from the untrained weights, "
                      "above 1 extrapolates away from the trained ones)")
    _in_range("clip_grad_norm", config.clip_grad_norm, 0, inf, low_open=True, high_open=False,
              meaning=" (.inf: no clipping)")
    if config.max_minutes is not None:
        _in_range("max_minutes", config.max_minutes, 0, inf, low_open=True, high_open=False,
                  meaning=" (or leave it out: no time limit)")
    if not isinstance(config.split, (list, tuple)) or len(config.split) not in (2, 3):
        raise ValueError(f"split must be [train, validation] or [train, validation, test] fractions, "
                         f"got {config.split!r}")
    for k, fraction in enumerate(config.split):
        _in_range(f"split[{k}]", fraction, 0, 1, low_open=False, high_open=False)
    if not isinstance(config.loss_weights, dict):
        raise ValueError(f"loss_weights must be a mapping label -> weight, got {config.loss_weights!r}")
    for label, weight in config.loss_weights.items():
        _in_range(f"loss_weights.{label}", weight, 0, inf, low_open=False, high_open=True,
                  meaning=" (a negative weight would reward errors; 0 leaves the label out)")
    if not any(float(w) > 0 for w in config.loss_weights.values()):
        raise ValueError(f"loss_weights must give at least one label a weight > 0, got {config.loss_weights!r}")

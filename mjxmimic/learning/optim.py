"""Optimisers matching MimicKit's ``MPOptimizer`` semantics, built with optax.

MimicKit's "SGD" is ``torch.optim.SGD(lr, momentum=0.9, weight_decay=wd)`` (coupled L2:
wd*p is added to the gradient *before* the momentum buffer) and its "Adam" is
``torch.optim.AdamW(lr, weight_decay=wd)``. Gradient-norm clipping (``grad_clip`` > 0)
is applied to the raw gradient first, as ``clip_grad_norm_`` runs before ``step()``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax.numpy as jnp
import optax


@dataclass(frozen=True)
class OptimizerConfig:
    type: str = "sgd"  # "sgd" (MimicKit default) or "adam" (AdamW)
    learning_rate: float = 1e-4
    momentum: float = 0.9  # SGD only; MimicKit hard-codes 0.9
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max global grad norm; 0 disables
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-8


def make_optimizer(cfg: OptimizerConfig, adjustable_lr: bool = False) -> optax.GradientTransformation:
    """``adjustable_lr``: the learning rate lives in the optimiser state (optax
    ``inject_hyperparams``), so :func:`set_learning_rate` can change it inside a jitted loop."""
    if adjustable_lr:
        return optax.inject_hyperparams(
            lambda learning_rate: make_optimizer(dataclasses.replace(cfg, learning_rate=learning_rate)))(
            learning_rate=cfg.learning_rate)
    parts = []
    if cfg.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(cfg.grad_clip))
    kind = cfg.type.lower()
    if kind == "sgd":
        if cfg.weight_decay:
            parts.append(optax.add_decayed_weights(cfg.weight_decay))  # torch's coupled L2
        # optax trace == torch momentum buffer: v = m*v + g; p -= lr*v (no dampening).
        parts.append(optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None))
    elif kind in ("adam", "adamw"):
        parts.append(optax.adamw(cfg.learning_rate, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps,
                                 weight_decay=cfg.weight_decay))
    else:
        raise ValueError(f"unknown optimizer type {cfg.type!r}; use 'sgd' or 'adam'")
    return optax.chain(*parts)


def learning_rate(opt_state):
    """The current learning rate of an optimiser made with ``adjustable_lr=True``."""
    return opt_state.hyperparams["learning_rate"]


def set_learning_rate(opt_state, lr):
    """A copy of an ``adjustable_lr`` optimiser state with a new learning rate."""
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = jnp.asarray(lr, jnp.asarray(hp["learning_rate"]).dtype)
    return opt_state._replace(hyperparams=hp)

"""The functional env contract shared by every env and learner.

An env is a frozen (hashable, static) Python object holding shapes and config; all
runtime data lives in two pytrees: ``params`` (MJX model, motion arrays, numbers a
user may sweep) and ``EnvState``. ``reset``/``step`` are pure and work on a single
env; learners ``jax.vmap`` them over envs and ``jax.jit`` the whole iteration.
"""
from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class EnvState:
    """One env's state after a step (or reset).

    obs: observation the policy acts on next (already the reset obs if done).
    terminal_obs: observation at the end of the step before any auto-reset; equals
        ``obs`` unless ``done``. Learners bootstrap timeouts from it.
    reward: reward of the step that produced this state (0 after reset).
    done: the episode ended at this step (failure, success or timeout).
    truncated: it ended by timeout only (value is bootstrapped).
    metrics: per-env scalars that learners average for logging (fixed key set).
    info: env-private pytree (phase, targets, AMP history, counters...).
    """

    physics: Any
    obs: jax.Array
    terminal_obs: jax.Array
    reward: jax.Array
    done: jax.Array
    truncated: jax.Array
    metrics: dict
    info: dict
    key: jax.Array


class Env(Protocol):
    obs_size: int
    action_size: int

    def reset(self, params: Any, key: jax.Array) -> EnvState: ...

    def step(self, params: Any, state: EnvState, action: jax.Array) -> EnvState: ...


def select_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Per-env ``where`` over two pytrees of the same structure (pred is a scalar)."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)

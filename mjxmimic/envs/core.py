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

__all__ = ["EnvState", "Env", "select_tree", "raw_key", "LAPACK_SPLIT_FLOPS", "cpu_env_chunk", "vmap_envs", "env_chunk"]


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



def raw_key(key: jax.Array) -> jax.Array:
    """A raw uint32 PRNG key from either a raw or a typed (``jax.random.key``) key."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key

# jaxlib's CPU LAPACK kernels (MJX factors the mass matrix and the Newton Hessian with a batched
# Cholesky) split a batch whose work exceeds this many FLOPs over XLA's intra-op thread pool and
# block the calling pool thread until the pieces finish. When every pool thread does that at once,
# nothing is left to run the pieces and the program hangs at 0% CPU (seen: 64 K1 kick envs on a
# 2-core CPU, jaxlib 0.10.2). Batches under the threshold run inline, so on the CPU envs are
# stepped in chunks that stay under it; GPUs and TPUs take the whole batch in one vmap.
LAPACK_SPLIT_FLOPS = 200_000


def cpu_env_chunk(nv: int) -> int:
    """Most envs per batched Cholesky that jaxlib runs inline (its cost model: nv³/3 per matrix)."""
    return max(1, (LAPACK_SPLIT_FLOPS - 1) // max(nv ** 3 // 3, 1))


def vmap_envs(fn, chunk: int | None = None):
    """``fn(params, *xs)`` for one env -> the same over a leading env axis of every ``xs``.

    ``chunk``: on the CPU backend, at most this many envs per vmapped call (a ``lax.map`` over
    chunks, same results as one vmap); None or another backend: one vmap over all envs."""
    tmap = jax.tree_util.tree_map

    def batched(params, *xs):
        vf = jax.vmap(fn, in_axes=(None,) + (0,) * len(xs))
        n = jax.tree_util.tree_leaves(xs)[0].shape[0]
        if chunk is None or n <= chunk or jax.default_backend() != "cpu":
            return vf(params, *xs)
        # Equal chunks (one compiled body): pad with copies of the first envs, drop them after.
        # Explicit shapes, not lax.map's batch_size: MJX data has zero-size fields, and a
        # reshape that infers a dimension next to a 0 fails.
        k = -(-n // chunk)
        c = -(-n // k)
        pad = k * c - n
        head = tmap(lambda x: jnp.concatenate([x, x[:pad]]).reshape((k, c) + x.shape[1:]), xs)
        out = jax.lax.map(lambda x: vf(params, *x), head)
        return tmap(lambda y: y.reshape((k * c,) + y.shape[2:])[:n], out)
    return batched


def env_chunk(env) -> int | None:
    """``cpu_env_chunk`` for an env with an MJX model (``env.model``); None for model-free envs."""
    model = getattr(env, "model", None)
    return None if model is None else cpu_env_chunk(int(model.nv))

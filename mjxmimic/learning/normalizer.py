"""Running mean/std normaliser as a pytree (MimicKit ``Normalizer``), updated in-graph.

Statistics are merged per batch with weights count/(count+n) and n/(count+n), std is
sqrt(max(E[x^2] - E[x]^2, min_std^2)). Learners pass ``enabled`` so the stats freeze
after ``normalizer_samples`` env samples, as MimicKit does.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Normalizer:
    # float32 count: only used for merge weights, and int32 would overflow after 2^31 samples.
    count: jax.Array
    mean: jax.Array
    mean_sq: jax.Array
    std: jax.Array


def init(size: int, dtype=jnp.float32) -> Normalizer:
    return Normalizer(count=jnp.zeros((), jnp.float32), mean=jnp.zeros((size,), dtype),
                      mean_sq=jnp.ones((size,), dtype), std=jnp.ones((size,), dtype))


def update(norm: Normalizer, x: jax.Array, enabled=True, min_std: float = 1e-4) -> Normalizer:
    """Merge the batch ``x`` ([..., size]) into the stats; a no-op where ``enabled`` is False."""
    x = x.reshape(-1, norm.mean.shape[-1]).astype(jnp.float32)
    n = jnp.float32(x.shape[0])
    total = norm.count + n
    w_old, w_new = norm.count / total, n / total
    mean = w_old * norm.mean + w_new * jnp.mean(x, axis=0)
    mean_sq = w_old * norm.mean_sq + w_new * jnp.mean(jnp.square(x), axis=0)
    std = jnp.sqrt(jnp.maximum(mean_sq - jnp.square(mean), min_std * min_std))
    new = Normalizer(count=total, mean=mean, mean_sq=mean_sq, std=std)
    enabled = jnp.asarray(enabled)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(enabled, a, b), new, norm)


def normalize(norm: Normalizer, x: jax.Array, clip: float = 10.0) -> jax.Array:
    z = (x - norm.mean) / norm.std
    return jnp.clip(z, -clip, clip) if clip is not None and clip != float("inf") else z


# ---------------------------------------------------------------------------------------
# MimicKit ``DiffNormalizer`` (ADD): x / max(E|x|, min_diff) per dimension. No centring and no
# clipping, so the zero vector (ADD's positive sample) stays exactly zero.
# ---------------------------------------------------------------------------------------
@struct.dataclass
class DiffNormalizer:
    count: jax.Array
    abs_mean: jax.Array


def diff_init(size: int, dtype=jnp.float32) -> DiffNormalizer:
    return DiffNormalizer(count=jnp.zeros((), jnp.float32), abs_mean=jnp.ones((size,), dtype))


def diff_update(norm: DiffNormalizer, x: jax.Array, enabled=True) -> DiffNormalizer:
    """Merge the batch's mean |x| into the running one (count-weighted, as :func:`update`)."""
    x = x.reshape(-1, norm.abs_mean.shape[-1]).astype(jnp.float32)
    n = jnp.float32(x.shape[0])
    total = norm.count + n
    new = DiffNormalizer(count=total, abs_mean=(norm.count / total) * norm.abs_mean
                         + (n / total) * jnp.mean(jnp.abs(x), axis=0))
    enabled = jnp.asarray(enabled)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(enabled, a, b), new, norm)


def diff_normalize(norm: DiffNormalizer, x: jax.Array, min_diff: float = 1e-4) -> jax.Array:
    return x / jnp.maximum(norm.abs_mean, min_diff)

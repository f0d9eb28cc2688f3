"""Episode-level evaluation of a policy: one jittable rollout shared by the trainer and ``play``.

MimicKit's test mode: actions from ``policy_fn`` (deterministic in practice), every env runs
until it has finished ``ceil(num_episodes / num_envs)`` episodes or ``max_steps`` pass.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from mjxmimic.envs.core import env_chunk, raw_key, vmap_envs


def evaluate_policy(env, env_params, policy_fn: Callable, key, num_envs: int, num_episodes: int,
                    max_steps: int) -> dict:
    """Roll ``num_envs`` envs (``env.reset``/``env.step`` batched here) and summarise.

    Returns (scalars, as arrays):
      ``episodes``, ``episode_return``, ``episode_length`` (control steps), ``full_length``
      (fraction of episodes ended by the time limit rather than failure or success),
      ``reward_mean`` and ``step/<k>`` (per-step means of reward and env metrics over all steps),
      ``end/<k>`` (env metrics at the last step of each finished episode, averaged), ``steps``.
    Each env counts only its first ``ceil(num_episodes / num_envs)`` episodes, so envs that keep
    finishing short episodes do not under-represent long ones."""
    key = raw_key(key)
    min_eps = max(1, math.ceil(num_episodes / num_envs))
    v_reset, v_step = vmap_envs(env.reset, env_chunk(env)), vmap_envs(env.step, env_chunk(env))
    state = v_reset(env_params, jax.random.split(key, num_envs))
    zf = jnp.zeros((), jnp.float32)
    c0 = dict(t=jnp.zeros((), jnp.int32), s=state, eps=jnp.zeros((num_envs,), jnp.int32),
              ret=jnp.zeros((num_envs,)), ep_len=jnp.zeros((num_envs,)), ret_sum=zf, len_sum=zf, trunc=zf,
              r_sum=zf, step_sum={k: zf for k in state.metrics}, end_sum={k: zf for k in state.metrics})

    def cond(c):
        return (c["t"] < max_steps) & jnp.any(c["eps"] < min_eps)

    def body(c):
        s = v_step(env_params, c["s"], policy_fn(c["s"].obs))
        counted = s.done.astype(bool) & (c["eps"] < min_eps)
        d = counted.astype(jnp.float32)
        ret, ep_len = c["ret"] + s.reward, c["ep_len"] + 1
        return dict(t=c["t"] + 1, s=s, eps=c["eps"] + counted,
                    ret=jnp.where(s.done, 0.0, ret), ep_len=jnp.where(s.done, 0.0, ep_len),
                    ret_sum=c["ret_sum"] + jnp.sum(d * ret), len_sum=c["len_sum"] + jnp.sum(d * ep_len),
                    trunc=c["trunc"] + jnp.sum(d * s.truncated), r_sum=c["r_sum"] + jnp.mean(s.reward),
                    step_sum={k: c["step_sum"][k] + jnp.mean(v) for k, v in s.metrics.items()},
                    end_sum={k: c["end_sum"][k] + jnp.sum(d * v) for k, v in s.metrics.items()})

    c = jax.lax.while_loop(cond, body, c0)
    n = jnp.maximum(jnp.sum(c["eps"]), 1).astype(jnp.float32)
    steps = jnp.maximum(c["t"], 1).astype(jnp.float32)
    out = {"episodes": jnp.sum(c["eps"]), "episode_return": c["ret_sum"] / n, "episode_length": c["len_sum"] / n,
           "full_length": c["trunc"] / n, "reward_mean": c["r_sum"] / steps, "steps": c["t"]}
    out.update({f"step/{k}": v / steps for k, v in c["step_sum"].items()})
    out.update({f"end/{k}": v / n for k, v in c["end_sum"].items()})
    return out

"""Tiny pure-JAX envs obeying ``mjxmimic.envs.core`` for learner tests.

PointReach: a 2-D point moves by ``speed * clip(a, -1, 1)`` per step towards a random
target; reward exp(-4 d²); episodes time out (truncated) after ``episode_steps`` and fail
(terminated) if the point leaves the [-fail_box, fail_box]² square. Auto-resets.

AMPPoint: same kinematics, no task reward; the discriminator sees the point position
after each step; demo disc obs are N(demo_center, demo_std² I).

Why fail_box is 1.5, not larger: timeouts bootstrap from V(terminal_obs). If points could
drift far beyond the start square before timing out, those terminal states would only ever
be seen as bootstrap inputs, never as training inputs, and the critic's extrapolation
there feeds back into its targets (values diverged with a 2.0 box and MimicKit defaults).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from mjxmimic.envs.core import EnvState, select_tree


def _auto_reset(env, params, state: EnvState, physics, obs, reward, done, truncated, metrics, info):
    """Build the post-step EnvState: reset done envs but keep the terminal obs/info."""
    key, k_reset = jax.random.split(state.key)
    fresh = env.reset(params, k_reset)
    return EnvState(
        physics=select_tree(done, fresh.physics, physics),
        obs=jnp.where(done, fresh.obs, obs),
        terminal_obs=obs,
        reward=reward,
        done=done,
        truncated=truncated,
        metrics=metrics,
        info=info,  # pre-reset info: AMP disc obs of the step just taken
        key=key,
    )


@dataclass(frozen=True)
class PointReachEnv:
    obs_size: int = 4  # position, target - position
    action_size: int = 2
    episode_steps: int = 25
    fail_box: float = 1.5

    def default_params(self):
        return {"speed": jnp.float32(0.1)}

    def _obs(self, pos, target):
        return jnp.concatenate([pos, target - pos])

    def reset(self, params, key):
        k_pos, k_tar, key = jax.random.split(key, 3)
        pos = jax.random.uniform(k_pos, (2,), minval=-1.0, maxval=1.0)
        target = jax.random.uniform(k_tar, (2,), minval=-1.0, maxval=1.0)
        obs = self._obs(pos, target)
        physics = {"pos": pos, "target": target, "t": jnp.zeros((), jnp.int32)}
        return EnvState(physics=physics, obs=obs, terminal_obs=obs, reward=jnp.zeros(()),
                        done=jnp.zeros((), bool), truncated=jnp.zeros((), bool),
                        metrics={"dist": jnp.linalg.norm(target - pos)}, info={}, key=key)

    def step(self, params, state, action):
        ph = state.physics
        pos = ph["pos"] + params["speed"] * jnp.clip(action, -1.0, 1.0)
        t = ph["t"] + 1
        dist = jnp.linalg.norm(ph["target"] - pos)
        reward = jnp.exp(-4.0 * dist**2)
        failed = jnp.any(jnp.abs(pos) > self.fail_box)
        timeout = t >= self.episode_steps
        physics = {"pos": pos, "target": ph["target"], "t": t}
        return _auto_reset(self, params, state, physics, self._obs(pos, ph["target"]), reward,
                           failed | timeout, timeout & ~failed, {"dist": dist}, {})


@dataclass(frozen=True)
class AMPPointEnv:
    obs_size: int = 2
    action_size: int = 2
    disc_obs_size: int = 2
    episode_steps: int = 25
    fail_box: float = 1.5
    demo_center: tuple = (0.5, -0.5)
    demo_std: float = 0.1

    def default_params(self):
        return {"speed": jnp.float32(0.1)}

    def reset(self, params, key):
        k_pos, key = jax.random.split(key)
        pos = jax.random.uniform(k_pos, (2,), minval=-1.0, maxval=1.0)
        return EnvState(physics={"pos": pos, "t": jnp.zeros((), jnp.int32)}, obs=pos, terminal_obs=pos,
                        reward=jnp.zeros(()), done=jnp.zeros((), bool), truncated=jnp.zeros((), bool),
                        metrics={"demo_dist": self._demo_dist(pos)}, info={"disc_obs": pos}, key=key)

    def _demo_dist(self, pos):
        return jnp.linalg.norm(pos - jnp.asarray(self.demo_center))

    def step(self, params, state, action):
        pos = state.physics["pos"] + params["speed"] * jnp.clip(action, -1.0, 1.0)
        t = state.physics["t"] + 1
        failed = jnp.any(jnp.abs(pos) > self.fail_box)
        timeout = t >= self.episode_steps
        return _auto_reset(self, params, state, {"pos": pos, "t": t}, pos, jnp.zeros(()),
                           failed | timeout, timeout & ~failed, {"demo_dist": self._demo_dist(pos)},
                           {"disc_obs": pos})

    def demo_disc_obs(self, params, key, n):
        return jnp.asarray(self.demo_center) + self.demo_std * jax.random.normal(key, (n, self.disc_obs_size))


@dataclass(frozen=True)
class PrivilegedReachEnv(PointReachEnv):
    """PointReach with an asymmetric critic and an env-wide curriculum, for the learner's hooks.

    obs = [target - pos (the actor's 2) | pos, target (privileged 4)]; ``actor_obs_size`` 2.
    Curriculum: ``cstate["episodes"]`` counts every finished episode of all envs; ``apply``
    hands the count to the envs, which report it as the metric ``seen``.
    """

    obs_size: int = 6
    actor_obs_size: int = 2

    def default_params(self):
        return {"speed": jnp.float32(0.1), "seen": jnp.float32(0.0)}

    def _obs(self, pos, target):
        return jnp.concatenate([target - pos, pos, target])

    def step(self, params, state, action):
        s = super().step(params, state, action)
        return s.replace(metrics={**s.metrics, "seen": params["seen"]})

    def reset(self, params, key):
        s = super().reset(params, key)
        return s.replace(metrics={**s.metrics, "seen": params["seen"]})

    def curriculum_init(self, params):
        return {"episodes": jnp.zeros((), jnp.float32)}

    def curriculum_collect(self, state):
        return state.done.astype(jnp.float32)

    def curriculum_update(self, cstate, done):
        n = cstate["episodes"] + jnp.sum(done)
        return {"episodes": n}, {"episodes": n}

    def curriculum_apply(self, params, cstate):
        return {**params, "seen": cstate["episodes"]}


@dataclass(frozen=True)
class ADDPointEnv(AMPPointEnv):
    """AMPPoint for ADD: the reference is the point ``demo_center``, and the disc obs is the
    difference d = reference - position (ADD's zero positive: being on the reference)."""

    def reset(self, params, key):
        s = super().reset(params, key)
        return s.replace(info={"disc_obs": jnp.asarray(self.demo_center) - s.obs})

    def step(self, params, state, action):
        s = super().step(params, state, action)
        return s.replace(info={"disc_obs": jnp.asarray(self.demo_center) - s.terminal_obs})

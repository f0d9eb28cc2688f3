"""MimicKit's ASE env (``ase_env.py``) on MJX: the AMP env with a skill latent per env.

    env, params = make_amp_env(ASEEnvConfig(robot="k1", motion_files=(...)), env_cls=ASEEnv)
    state = env.reset(params, key)          # state.info["latent"]: z, unit norm
    env.latent(state.obs)                   # the z the next action is taken with

Latent z: ``latent_dim`` numbers uniform on the unit sphere (a normalised standard normal),
drawn at every reset and again once the episode time reaches ``info["latent_time"]``, which
is then set to now + U(latent_time_min, latent_time_max) (MimicKit: 0..5 s).

Observation: the AMP env's with z as its task obs, i.e. [char obs | z] (``observation:
robot``: [robot terms | z | char obs | z], then any ``critic_dr_obs`` values); so the actor and
the critic both see z, and PPO runs unchanged. Two consequences: z goes through the obs
normaliser like every obs entry (per-dim std ≈ 1/√latent_dim, so the nets see ≈√latent_dim·z;
MimicKit feeds z raw); and when z is redrawn mid-episode the TD target of that step bootstraps
V(s', z_new), where MimicKit keeps V(s', z_old) (one step in ~75 at 30 Hz).

Reset: with probability ``default_reset_prob`` (0.5) the character starts from the default
pose at rest instead of the reference state; as in MimicKit the disc history is still filled
from the sampled reference clip (``_reset_disc_hist`` runs after ``_reset_char``). The env
reward (task reward) is 0; the learner (``learning.ase``) adds the disc and encoder rewards.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from mjxmimic.envs.amp import AMPEnv, AMPEnvConfig

__all__ = ["ASEEnvConfig", "ASEEnv", "sample_latent", "next_latent_time"]


@dataclasses.dataclass(frozen=True)
class ASEEnvConfig(AMPEnvConfig):
    """MimicKit ``ase_humanoid_env.yaml`` settings beyond the AMP env's."""

    latent_dim: int = 64
    latent_time_min: float = 0.0        # s: a latent is held for U(min, max) seconds
    latent_time_max: float = 5.0
    default_reset_prob: float = 0.5     # start from the default pose instead of the reference

    def __post_init__(self):
        super().__post_init__()
        if self.latent_dim < 1:
            raise ValueError("latent_dim must be >= 1")
        if not 0 <= self.latent_time_min <= self.latent_time_max:
            raise ValueError("need 0 <= latent_time_min <= latent_time_max")
        if not 0 <= self.default_reset_prob <= 1:
            raise ValueError("default_reset_prob must be in [0, 1]")


def sample_latent(key, dim: int, shape=()) -> jax.Array:
    """[*shape, dim] latents uniform on the unit sphere (normalised standard normals)."""
    z = jax.random.normal(key, tuple(shape) + (dim,), jnp.float32)
    return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def next_latent_time(key, now, tmin: float, tmax: float) -> jax.Array:
    """When the next latent is drawn: now + U(tmin, tmax) seconds."""
    return now + jax.random.uniform(key, (), jnp.float32, tmin, tmax)


class ASEEnv(AMPEnv):
    """AMP env whose task obs is the latent z (``latent_size`` numbers, the last ones of obs
    but for the critic's ``dr_obs_size`` randomisation values)."""

    def __init__(self, cfg: ASEEnvConfig, robot=None, model=None):
        if cfg.obs_history > 1:   # the latent's place in the obs (latent/with_latent) assumes one frame
            raise ValueError("ASE envs do not support obs_history > 1")
        self.task_obs_size = int(cfg.latent_dim)   # before the AMP env sizes its obs
        self.latent_size = int(cfg.latent_dim)
        super().__init__(cfg, robot, model)

    # ---- where z sits in the obs ------------------------------------------------------
    @property
    def _latent_start(self) -> int:
        """Where z starts: at the end of the full (critic) obs, before any dr_obs values."""
        return self.obs_size - self.dr_obs_size - self.latent_size

    def latent(self, obs) -> jax.Array:
        """The latent of an obs (or a batch of them)."""
        return obs[..., self._latent_start:self._latent_start + self.latent_size]

    def with_latent(self, obs, z) -> jax.Array:
        """``obs`` with its latent (both copies with ``observation: robot``) replaced by ``z``."""
        L = self.latent_size
        starts = [self._latent_start] + ([self.actor_obs_size - L] if self.cfg.observation == "robot" else [])
        for s in starts:
            obs = jnp.concatenate([obs[..., :s], z, obs[..., s + L:]], axis=-1)
        return obs

    # ---- hooks ------------------------------------------------------------------------
    def initial_state(self, params, key):
        qpos, qvel, info = super().initial_state(params, key)
        use_default = jax.random.uniform(jax.random.fold_in(key, 2)) < self.cfg.default_reset_prob
        dq, dv = self.full_state(jnp.asarray(self.init_qpos), jnp.zeros((self.robot.model.nv,), jnp.float32))
        return jnp.where(use_default, dq, qpos), jnp.where(use_default, dv, qvel), info

    def new_latent(self, key, info, now) -> dict:
        c = self.cfg
        k_z, k_t = jax.random.split(key)
        return {**info, "latent": sample_latent(k_z, self.latent_size),
                "latent_time": next_latent_time(k_t, now, c.latent_time_min, c.latent_time_max)}

    def task_init(self, params, key, qpos, qvel, info):
        return qpos, qvel, self.new_latent(key, info, jnp.zeros((), jnp.float32))

    def task_obs(self, params, data, frame, info):
        return info["latent"]

    def task_step(self, params, key, prev_data, data, frame, info):
        now = info["step"].astype(jnp.float32) * self.control_dt
        redraw = now >= info["latent_time"]
        info = jax.tree_util.tree_map(lambda a, b: jnp.where(redraw, a, b), self.new_latent(key, info, now), info)
        z = jnp.zeros((), bool)
        return jnp.zeros((), jnp.float32), z, z, {}, info

"""A high-level task policy over a frozen ASE low-level policy (MimicKit has none): steering.

    env, params = make_ase_steer_env(ASESteerConfig(robot="k1", low_level_run="runs/k1_ase"))
    state = env.step(params, state, latent_action)     # [latent_dim], any scale

The action is a latent, L2-normalised inside the env. Each env step runs ``low_level_steps``
control steps of the steering env (``envs.tasks.SteeringEnv``: its reward, target and
observation), each with the PD target the frozen low-level actor (its deterministic mean)
gives for [low-level obs | z]; the step's reward is their sum. An episode that ends within
a step ends the step: the remaining control steps are discarded.

The low-level policy is the last checkpoint of an ASE run directory (``low_level_run``, a
``train --env <robot>_ase`` run); its weights and obs normaliser ride in the env params
(``ASESteerParams.low_policy``), so they are inputs of the jitted iteration, and no gradient
reaches them (PPO differentiates only its own actor and critic). Without motion settings of
its own the env starts episodes from the low-level run's style clips.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from mjxmimic.envs.amp import load_style_motions
from mjxmimic.envs.char import CharParams
from mjxmimic.envs.core import select_tree
from mjxmimic.envs.tasks import SteeringConfig, SteeringEnv

__all__ = ["ASESteerConfig", "ASESteerParams", "ASESteerEnv", "load_low_level", "make_ase_steer_env"]


@dataclasses.dataclass(frozen=True)
class ASESteerConfig(SteeringConfig):
    low_level_run: str = ""             # run directory of the frozen low-level ASE policy
    low_level_steps: int = 1            # control steps per high-level action (latent held)

    def __post_init__(self):
        super().__post_init__()
        if self.low_level_steps < 1:
            raise ValueError("low_level_steps must be >= 1")
        if self.observation != "full":
            raise ValueError("the ASE high-level env has only observation: full")


@struct.dataclass
class ASESteerParams(CharParams):
    low_policy: Any     # what ``low_policy_fn`` takes: the low-level run's PolicyParams


class ASESteerEnv(SteeringEnv):
    """Steering with latent actions (``action_size`` = the low level's latent size)."""

    def __init__(self, cfg: ASESteerConfig, low_env, low_policy_fn: Callable, robot=None, model=None):
        super().__init__(cfg, robot, model)
        if low_env.robot.name != self.robot.name:
            raise ValueError(f"the low-level run is for robot {low_env.robot.name}, this config's robot is "
                             f"{self.robot.name}")
        if abs(low_env.control_dt - self.control_dt) > 1e-9:
            raise ValueError(f"the low-level run steps at {1 / low_env.control_dt:g} Hz, this config at "
                             f"{1 / self.control_dt:g} Hz")
        if low_env.cfg.observation != "full":
            raise ValueError("the low-level run must use observation: full")
        for k, v in (("low", low_env), ("low_policy_fn", low_policy_fn), ("action_size", low_env.latent_size),
                     ("action_low", None), ("action_high", None)):   # latents: no action bounds
            object.__setattr__(self, k, v)

    def default_params(self, motion=None, low_policy=None) -> ASESteerParams:
        p = super().default_params(motion)
        return ASESteerParams(model=p.model, motion=p.motion, ground_contact_height=p.ground_contact_height,
                              low_policy=low_policy)

    def action_to_target(self, action):
        return self.low.action_to_target(action)   # the joint bounds (this env's own actions are latents)

    def low_level_step(self, params: ASESteerParams, state, z):
        """One control step of the steering env with the low-level policy's PD target for z."""
        obs = self.low.observation(params, state.physics, {"latent": z})
        return super().step(params, state, self.low_policy_fn(params.low_policy, obs))

    def step(self, params: ASESteerParams, state, action):
        # Wraps the character template's step (not a hook): one action spans several control steps,
        # scanned so that the physics appears once in the compiled graph.
        z = action / jnp.maximum(jnp.linalg.norm(action, axis=-1, keepdims=True), 1e-6)

        def body(carry, _):
            s, ret, ended = carry
            nxt = self.low_level_step(params, s, z)
            return (select_tree(ended, s, nxt), ret + jnp.where(ended, 0.0, nxt.reward), ended | nxt.done), None

        zero = jnp.zeros((), jnp.float32)
        (last, ret, _), _ = jax.lax.scan(body, (state, zero, jnp.zeros((), bool)), None,
                                         length=self.cfg.low_level_steps)
        return last.replace(reward=ret)


def load_low_level(run_dir: str, robot: str):
    """(env, params, trainer, train_state) of a low-level ASE run's last checkpoint; one clear
    ValueError when it is missing, not an ASE run, or for another robot."""
    from mjxmimic.envs.registry import ConfigError, load_config
    from mjxmimic.learning import CheckpointError

    hint = f"train one first: python -m mjxmimic.train --env {robot}_ase --out {run_dir or 'runs/' + robot + '_ase'}"
    p = Path(run_dir) if run_dir else None
    if p is None or not (p / "config.yaml").is_file():
        raise ValueError(f"low_level_run {run_dir!r} is not a run directory (no config.yaml); {hint}")
    try:
        c = load_config(p / "config.yaml")
    except ConfigError as e:
        raise ValueError(f"low_level_run {run_dir}: {e}") from None
    if c["kind"] != "ase":
        raise ValueError(f"low_level_run {run_dir} is a '{c['kind']}' run, not an ASE one (env.name: ase); {hint}")
    if c["env_cfg"].robot != robot:
        raise ValueError(f"low_level_run {run_dir} is for robot {c['env_cfg'].robot}, this config's robot is {robot}")
    from mjxmimic.export import load_run
    try:
        env, params, _, trainer, ts = load_run(p)
    except (CheckpointError, ValueError) as e:
        raise ValueError(f"low_level_run {run_dir}: no usable checkpoint ({e}); {hint}") from None
    return env, params, trainer, ts


def make_ase_steer_env(cfg: ASESteerConfig, motion=None):
    """(env, params): the low-level run loaded and frozen into the params; style clips for the
    reference-state init from ``motion`` / ``cfg.motion_files``, else the low-level run's."""
    from mjxmimic.learning.ppo import policy_params

    low_env, low_params, trainer, ts = load_low_level(cfg.low_level_run, cfg.robot)
    env = ASESteerEnv(cfg, low_env, trainer.policy)
    if motion is None and cfg.motion_files:
        motion = load_style_motions(cfg.motion_files, env.robot, cfg.motion_file_weights)
    return env, env.default_params(motion if motion is not None else low_params.motion, policy_params(ts))

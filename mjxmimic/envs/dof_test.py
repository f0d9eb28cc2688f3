"""MimicKit's DoF-test env (``char_dof_test_env.py``): the robot hangs in the air and each
actuated joint in turn sweeps its range, to check joint axes, limits and gains by eye.

    python -m mjxmimic.view --dof-test --robot k1 --out k1_dof.mp4    # = --env k1_dof_test

The root is pinned: after every physics step it is put back at its start pose (the robot's
default root, raised by ``lift``) with zero velocity, so the base never moves (exactly, with no
soft weld to sag). Every joint rests at 0 (clipped into its range). Joint j (robot joint order)
owns the time [j·T, (j+1)·T), T = ``seconds_per_dof`` (4 s, MimicKit's); its PD target goes
rest -> lower limit (first 20% of T), holds (10%), -> upper limit (40%), holds (10%), -> rest
(20%): :func:`sweep_target`. The motors are on (the robot's position servos); the action is
ignored. Contacts are off (nothing to touch in the air). Reward 0, no failure; the episode ends
after the last joint's sweep.
"""
from __future__ import annotations

import copy
import dataclasses

import jax.numpy as jnp
import mujoco
import numpy as np

from mjxmimic.envs import physics
from mjxmimic.envs.char import CharConfig, CharEnv
from mjxmimic.robots import load_robot

__all__ = ["DofTestConfig", "DofTestEnv", "sweep_target", "SWEEP_KNOTS"]

# Phase of a joint's window -> where its target is: rest, lower, lower, upper, upper, rest.
SWEEP_KNOTS = (0.0, 0.2, 0.3, 0.7, 0.8, 1.0)


@dataclasses.dataclass(frozen=True)
class DofTestConfig(CharConfig):
    seconds_per_dof: float = 4.0        # MimicKit
    lift: float = 0.3                   # m the root is raised above its standing height
    enable_early_termination: bool = False
    rand_reset: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not self.seconds_per_dof > 0 or self.lift < 0:
            raise ValueError("seconds_per_dof must be > 0 and lift >= 0")


def sweep_target(t, low, high, rest, seconds_per_dof: float):
    """PD targets [J] at time ``t`` (s) of the sweep (see the module docstring)."""
    n = low.shape[-1]
    j = jnp.clip(jnp.floor(t / seconds_per_dof), 0, n - 1).astype(jnp.int32)
    phase = jnp.clip(t / seconds_per_dof - j, 0.0, 1.0)
    vals = jnp.stack([rest[j], low[j], low[j], high[j], high[j], rest[j]])
    return rest.at[j].set(jnp.interp(phase, jnp.asarray(SWEEP_KNOTS, rest.dtype), vals))


class DofTestEnv(CharEnv):
    """The joint sweep (see the module docstring); no MotionLib needed."""

    def __init__(self, cfg: DofTestConfig, robot=None):
        if robot is None:
            robot = load_robot(cfg.robot)
        # Hanging in the air, the robot touches nothing (its geoms never collide with each other):
        # contacts off keeps MJX from compiling collision code it never needs.
        model = copy.copy(robot.model)
        model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
        super().__init__(cfg, robot, model=model)
        r = self.robot
        lo, hi = np.asarray(r.joint_range, np.float32).T
        qpos = np.asarray(r.default_qpos, np.float32).copy()
        qpos[2] += cfg.lift
        rest = np.clip(0.0, lo, hi).astype(np.float32)
        qpos[r.qpos_idx] = rest
        object.__setattr__(self, "joint_low", lo)
        object.__setattr__(self, "joint_high", hi)
        object.__setattr__(self, "rest_joint_pos", rest)
        object.__setattr__(self, "init_qpos", qpos)
        object.__setattr__(self, "max_episode_steps",
                           int(round(self.num_joints * cfg.seconds_per_dof / self.control_dt)))

    def target(self, t):
        return sweep_target(t, jnp.asarray(self.joint_low), jnp.asarray(self.joint_high),
                            jnp.asarray(self.rest_joint_pos), self.cfg.seconds_per_dof)

    def initial_state(self, params, key):
        # The init pose at rest, whatever the params' motion (none is needed).
        return super().initial_state(params.replace(motion=None), key)

    def physics_step(self, params, state, action):
        t = (state.info["step"] + 1).astype(jnp.float32) * self.control_dt
        return physics.pd_step(params.model, state.physics, self.target(t), self.num_substeps,
                               pin_root=jnp.asarray(self.init_qpos[0:7]))

    def evaluate(self, params, data, info):
        return self.observation(params, data, info), jnp.zeros((), jnp.float32), jnp.zeros((), bool), \
            jnp.zeros((), bool), {}

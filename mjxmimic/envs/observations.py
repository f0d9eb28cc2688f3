"""Observation terms shared by the envs: the robot-side terms (what the robot measures),
uniform observation noise, and the actor-observation layout every env reports.

``env.observation`` (a config field of every character env):
  * ``full``  -- today's observation of each env, unchanged;
  * ``robot`` -- the actor sees only what the robot measures plus the task's inputs, with
    uniform noise; the critic sees privileged state appended (obs = [actor | critic], the
    learner reads ``env.actor_obs_size``). Tracking and the AMP envs implement it.

Layout (``env.actor_obs_layout()``): one dict per actor term, in order,
``{"name", "size", "noise"}`` (noise: the half-width of the uniform noise at
``obs_noise_scale`` 1, 0 if none); the sizes sum to the actor's part of the obs.
Noise half-widths of the robot terms: Booster's K1 deployment (IMU orientation 0.05,
gyro 0.2, joint pos 0.01, joint vel 0.5; ``shared/docs/deployment_notes.md``), projected
gravity 0.05 as Unitree's G1 recipe.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from mjxmimic import math as rmath

__all__ = ["OBSERVATIONS", "ROBOT_NOISE", "add_noise", "layout", "layout_size", "projected_gravity", "gyro",
           "check_observation"]

OBSERVATIONS = ("full", "robot")

# Uniform noise half-widths of the robot-side terms (see the module docstring).
ROBOT_NOISE = {"projected_gravity": 0.05, "anchor_ori": 0.05, "gyro": 0.2, "joint_pos": 0.01, "joint_vel": 0.5}


def check_observation(name: str):
    if name not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {list(OBSERVATIONS)}, got {name!r}")


def projected_gravity(root_rot):
    """World −z in the root's frame (what an IMU's orientation gives without yaw). [..., 3]"""
    down = jnp.broadcast_to(jnp.array([0.0, 0.0, -1.0], jnp.float32), root_rot.shape[:-1] + (3,))
    return rmath.quat_rotate_inv(root_rot, down)


def gyro(qvel):
    """The root body's angular velocity in its own frame (a free joint's qvel[3:6]; the IMU gyro)."""
    return qvel[..., 3:6]


def add_noise(values: Sequence[jax.Array], widths: Sequence[float], key, scale):
    """Each value plus ``scale · w · U(-1, 1)`` of its own shape (one key per term, split
    from ``key``); a term of width 0 is returned untouched (no ``+ 0``, bit for bit)."""
    keys = jax.random.split(key, len(values))
    return [x + scale * w * jax.random.uniform(k, x.shape, minval=-1.0) if w else x
            for x, w, k in zip(values, widths, keys)]


def layout(names: Sequence[str], sizes: Mapping[str, int], noise: Mapping[str, float]) -> list[dict]:
    """The layout of named terms: ``[{"name", "size", "noise"}]`` (noise 0 for unlisted names)."""
    if len(set(names)) != len(names):
        raise ValueError(f"observation term names must be unique, got {list(names)}")
    return [{"name": n, "size": int(sizes[n]), "noise": float(noise.get(n, 0.0))} for n in names]


def layout_size(terms: Sequence[dict]) -> int:
    return sum(t["size"] for t in terms)

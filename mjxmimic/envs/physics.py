"""MJX physics helpers shared by every character env (pure, single-env, vmap/jit-safe).

    n = num_substeps(robot.model.opt.timestep, 1 / 30)   # 4 at 120 Hz
    data = set_state(model, qpos, qvel)                    # fresh Data + kinematics
    data = pd_step(model, data, target, n)                 # ctrl = PD target, n mj steps
    bad = is_unstable(data, max_qvel)                      # NaN guard

Conventions (MuJoCo free joint): qpos[0:3] world root position, qpos[3:7] root
quaternion (wxyz), qvel[0:3] world linear velocity, qvel[3:6] *body-frame* angular
velocity. :func:`root_state` returns MimicKit's convention (both velocities in world).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from mjxmimic import math as rmath
from mjxmimic.robots.geometry import geom_min_z

__all__ = ["num_substeps", "set_state", "pd_step", "is_unstable", "root_state", "geoms_min_z"]


def num_substeps(sim_timestep: float, control_dt: float) -> int:
    """Physics steps per control step; control_dt must be a whole multiple of the sim step."""
    if sim_timestep <= 0 or control_dt <= 0:
        raise ValueError(f"timesteps must be positive (sim {sim_timestep}, control {control_dt})")
    n = control_dt / sim_timestep
    k = int(round(n))
    if k < 1 or not math.isclose(n, k, rel_tol=1e-4, abs_tol=1e-4):
        raise ValueError(f"control period {control_dt:.6g}s is not a whole multiple of the simulation "
                         f"timestep {sim_timestep:.6g}s (ratio {n:.4f})")
    return k


def set_state(model: mjx.Model, qpos, qvel, ctrl=None) -> mjx.Data:
    """A fresh mjx.Data at (qpos, qvel) with kinematics (body/geom poses) computed.

    Starting from ``make_data`` clears everything else (warm starts, contacts, forces),
    so a reset never inherits solver state from the previous episode.
    """
    d = mjx.make_data(model)
    d = d.replace(qpos=jnp.asarray(qpos, d.qpos.dtype), qvel=jnp.asarray(qvel, d.qvel.dtype))
    if ctrl is not None:
        d = d.replace(ctrl=jnp.asarray(ctrl, d.ctrl.dtype))
    return mjx.kinematics(model, d)


def pd_step(model: mjx.Model, data: mjx.Data, target, num_steps: int, sync_kinematics: bool = True,
            delay=None, prev_targets=None, pin_root=None) -> mjx.Data:
    """Hold ``ctrl = target`` (position-actuator PD targets) for ``num_steps`` mj steps.

    ``mj_step`` leaves body/geom poses at the start of its last step (they are computed
    before integrating); ``sync_kinematics`` recomputes them from the final qpos, so body
    positions, geom clearances and qpos/qvel all describe the same instant.

    Actuator delay: with ``delay`` (d physics steps, traced int) the target reaches the
    actuators d mj steps after the control step starts; until then the actuators get the
    target that was current d steps earlier, taken from ``prev_targets`` [H, J] (the previous
    control steps' targets, latest first; H = ceil(d_max / num_steps)). Substep k applies the
    target of ceil((d − k)/num_steps) control steps ago (0: this one).

    ``pin_root`` (qpos[0:7], no delay): the free root is put back there at rest after every mj
    step, a base fixed in the air (the DoF-test env)."""
    if delay is None:
        data = data.replace(ctrl=jnp.asarray(target, data.ctrl.dtype))

        def body(d, _):
            d = mjx.step(model, d)
            if pin_root is not None:
                d = d.replace(qpos=d.qpos.at[0:7].set(pin_root), qvel=d.qvel.at[0:6].set(0.0))
            return d, None

        data, _ = jax.lax.scan(body, data, None, length=num_steps)
    else:
        stack = jnp.concatenate([jnp.asarray(target, data.ctrl.dtype)[None],
                                 jnp.asarray(prev_targets, data.ctrl.dtype)], axis=0)

        def body(d, k):
            back = jnp.clip((delay - k + num_steps - 1) // num_steps, 0, stack.shape[0] - 1)
            return mjx.step(model, d.replace(ctrl=stack[back])), None

        data, _ = jax.lax.scan(body, data, jnp.arange(num_steps, dtype=jnp.int32))
    return mjx.kinematics(model, data) if sync_kinematics else data


def is_unstable(data: mjx.Data, max_qvel: float) -> jax.Array:
    """True when the state is unusable: non-finite qpos/qvel or any |qvel| > max_qvel."""
    finite = jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel))
    fast = jnp.any(jnp.abs(data.qvel) > max_qvel)
    return ~finite | fast


def root_state(data: mjx.Data):
    """(root_pos, root_rot wxyz unit, root_vel world, root_ang_vel world) of a free-floating robot."""
    pos = data.qpos[0:3]
    rot = rmath.normalize(data.qpos[3:7])
    vel = data.qvel[0:3]
    ang_vel = rmath.quat_rotate(rot, data.qvel[3:6])
    return pos, rot, vel, ang_vel


def geoms_min_z(model_geom_type: np.ndarray, model_geom_size: np.ndarray, data: mjx.Data,
                geom_ids: np.ndarray) -> jax.Array:
    """Lowest world z of the given geoms (static numpy ids) in ``data``."""
    g = np.asarray(geom_ids, np.int32)
    if g.size == 0:
        return jnp.zeros((0,), data.qpos.dtype)
    return geom_min_z(model_geom_type[g], model_geom_size[g], data.geom_xpos[g], data.geom_xmat[g])

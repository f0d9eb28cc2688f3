"""Actuation profiles of a robot: the simulation model as converted ("sim") or the numbers a
vendor deploys (``profiles:`` in ``robots/<name>/robot.yaml``).

    profile = load_profile(load_robot("k1"), "deploy")   # Profile: arrays in the robot's joint order
    model = apply_profile(robot.model, robot, profile)     # a copy with the firmware's PD
    qpos = profile_default_qpos(robot, profile)            # standing pose, soles on the floor

The firmware closes τ = kp·(q* − q) − kd·q̇ clipped to ±effort; a MuJoCo position actuator
with gainprm = kp, biasprm = (0, −kp, −kd) and forcerange = ±effort computes exactly that
from ctrl = q*, so the profile sets those (and the rotor armature) on the robot's actuators.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Optional

import mujoco
import numpy as np

from mjxmimic.robots.spec import PROFILE_SIM

__all__ = ["Profile", "load_profile", "apply_profile", "scale_gains", "scale_effort", "profile_default_qpos",
           "effort_over_kp", "PROFILE_SIM"]


@dataclasses.dataclass(frozen=True, eq=False)
class Profile:
    """Per-joint arrays in the robot's joint (= actuator) order.

    ``control_freq``/``action_scale_factor`` are None for "sim": the env config sets them."""

    name: str
    kp: np.ndarray
    kd: np.ndarray
    effort: np.ndarray
    armature: np.ndarray
    default_joint_pos: np.ndarray
    control_freq: Optional[float]
    sim_timestep: float
    action_scale_factor: Optional[float]
    sources: tuple[str, ...]

    @property
    def action_scale(self) -> np.ndarray:
        """s_j = factor·effort_j/kp_j (the ``effort_over_kp`` rule), for a deploy profile."""
        if self.action_scale_factor is None:
            raise ValueError(f"profile '{self.name}' has no action scale rule (the env config sets it)")
        return effort_over_kp(self.action_scale_factor, self.effort, self.kp)


def effort_over_kp(factor: float, effort, kp) -> np.ndarray:
    """Action scale s_j = factor·τmax_j/Kp_j: a full action moves the target by the offset the
    servo holds at factor·τmax (Booster, BeyondMimic)."""
    return factor * np.asarray(effort, np.float64) / np.asarray(kp, np.float64)


def load_profile(robot, name: str) -> Profile:
    """The robot's profile ``name``: "sim" (today's model) or one of robot.yaml's ``profiles``."""
    if name == PROFILE_SIM:
        # What the model simulates (its XML rounds robot.yaml's rule gains to 6 digits).
        m, idx = robot.model, robot.qvel_idx
        return Profile(name=name, kp=m.actuator_gainprm[:, 0].copy(), kd=-m.actuator_biasprm[:, 2],
                       effort=np.asarray(robot.effort, np.float64), armature=m.dof_armature[idx].copy(),
                       default_joint_pos=np.asarray(robot.default_joint_pos, np.float64), control_freq=None,
                       sim_timestep=float(m.opt.timestep), action_scale_factor=None,
                       sources=(f"robots/{robot.name}/{robot.name}.xml (from robot.yaml: joints, gain_rule, default_pose)",))
    profiles = robot.spec.profiles
    if name not in profiles:
        raise ValueError(f"robot {robot.name} has no profile '{name}'; profiles: {[PROFILE_SIM] + sorted(profiles)}")
    p = profiles[name]
    a = lambda v: np.asarray(v, np.float64)  # noqa: E731
    return Profile(name=name, kp=a(p.kp), kd=a(p.kd), effort=a(p.effort), armature=a(p.armature),
                   default_joint_pos=a(p.default_pos), control_freq=p.control_freq, sim_timestep=p.sim_timestep,
                   action_scale_factor=p.action_scale_factor, sources=(p.source,))


def apply_profile(model: mujoco.MjModel, robot, profile: Profile) -> mujoco.MjModel:
    """A copy of ``model`` (the robot's model or a scene with the robot's actuators first) with
    the profile's PD gains, effort limits, armature and physics timestep."""
    m = copy.deepcopy(model)
    nu = robot.model.nu
    if m.nu < nu or not np.array_equal(m.actuator_trnid[:nu, 0], robot.model.actuator_trnid[:, 0]):
        raise ValueError(f"apply_profile: the model must start with robot {robot.name}'s actuators")
    kp, kd, tau = profile.kp, profile.kd, profile.effort
    m.actuator_gainprm[:nu, :] = 0.0
    m.actuator_gainprm[:nu, 0] = kp
    m.actuator_biasprm[:nu, :] = 0.0
    m.actuator_biasprm[:nu, 1] = -kp
    m.actuator_biasprm[:nu, 2] = -kd
    m.actuator_forcelimited[:nu] = 1
    m.actuator_forcerange[:nu] = np.stack([-tau, tau], axis=-1)
    m.dof_armature[robot.qvel_idx] = profile.armature
    m.opt.timestep = profile.sim_timestep
    # Constants MuJoCo derives from the inertia at compile time (dof_invweight0, actuator_acc0, ...).
    mujoco.mj_setConst(m, mujoco.MjData(m))
    return m


def scale_gains(model: mujoco.MjModel, nu: int, kp_factor: float, kd_factor: float) -> mujoco.MjModel:
    """A copy of ``model`` whose first ``nu`` position actuators have kp·kp_factor and kd·kd_factor
    (effort limits unchanged). The SDK sends kp/kd with every command, so these are the gains the
    firmware then runs; export writes them from the model into policy.json."""
    m = copy.deepcopy(model)
    m.actuator_gainprm[:nu, 0] *= kp_factor
    m.actuator_biasprm[:nu, 1] *= kp_factor
    m.actuator_biasprm[:nu, 2] *= kd_factor
    return m


def scale_effort(model: mujoco.MjModel, nu: int, factor: float) -> mujoco.MjModel:
    """A copy of ``model`` whose first ``nu`` actuators have their force limits times ``factor``."""
    m = copy.deepcopy(model)
    m.actuator_forcerange[:nu] *= factor
    return m


def profile_default_qpos(robot, profile: Profile) -> np.ndarray:
    """The robot's standing qpos [nq] with the profile's joint angles, root lifted so that the
    lowest sole point touches the floor (as the robot's own default pose)."""
    q = np.asarray(robot.default_qpos, np.float64).copy()
    q[robot.qpos_idx] = profile.default_joint_pos
    q[2] = 0.0
    q[2] = -robot.lowest_point(q, robot.foot_geom_ids)
    return q

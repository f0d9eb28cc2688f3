"""MimicKit's character env (``char_env.py``) on MJX, and the building blocks every
character env (DeepMimic, AMP, tasks, kick) reuses.

    env = CharEnv(CharConfig(robot="g1"))
    params = env.default_params(motion_lib)      # CharParams pytree (MJX model, MotionLib, numbers)
    state = env.reset(params, key)               # one env; vmap/jit outside
    state = env.step(params, state, pd_target)   # auto-resets when done

Actions are **PD targets in radians** (MimicKit's "pos" control mode), clipped to
``[env.action_low, env.action_high]``. MimicKit's agent maps the policy's normalised
output affinely onto those bounds (``a_norm``); our PPO learner does the same from the
same two attributes, so an env never sees normalised actions. Bounds (MimicKit
``_build_action_bounds_pos``): mid = 0 with ``zero_center_action`` else the joint-range
mid-point (``action_center: default_pose``: the standing pose instead); half width =
1.4 * max(|hi - mid|, |lo - mid|). (MuJoCo's position actuators
additionally clamp ctrl to their ctrlrange, which the robot MJCFs set to the joint range.)

Building blocks (all pure; reuse them rather than re-deriving):
  * :func:`action_bounds`, :meth:`CharEnv.action_to_target` -- PD/action mapping.
  * :mod:`mjxmimic.envs.physics` -- substep count, ``pd_step``, ``set_state``, NaN guard.
  * :meth:`CharEnv.char_frame` -- the simulated character as a
    :class:`~mjxmimic.motions.lib.MotionFrame` (same fields as a reference frame).
  * :func:`joint_rotations`, :func:`compute_char_obs` -- MimicKit's char observation.
  * :meth:`CharEnv.has_fallen` / :func:`fallen` -- fall detection (MJX / any simulator).
  * :meth:`CharEnv.initial_state` -- reference-state init (random clip/time) or default pose.
  * :func:`auto_reset` -- the post-step EnvState with auto-reset, terminal obs and NaN guard.

:meth:`CharEnv.reset` and :meth:`CharEnv.step` are the one episode template of every
character env; subclasses override hooks, never reset/step:
  * :meth:`~CharEnv.initial_state` (qpos, qvel, info of a new episode), ``task_init`` (a
    task's targets and scene objects; called with its own key when ``task_key``),
    :meth:`~CharEnv.init_info` (info entries that need the physics state, e.g. AMP's history);
  * :meth:`~CharEnv.observation` (obs of a state), :meth:`~CharEnv.evaluate` (obs, reward,
    failed, succeeded, metrics of a state after a step; at reset it gives the obs and the
    metric keys), :meth:`~CharEnv.post_physics` (info right after the physics of a step),
    :meth:`~CharEnv.evaluate_step` (when a step's evaluation needs the previous state or
    changes ``info``; default: ``evaluate``);
  * :meth:`~CharEnv.record_action` (``info`` of a step from its env action, before the physics);
    :meth:`~CharEnv.physics_step` (a step's physics; default: PD targets from the action);
  * :meth:`~CharEnv.actor_obs_layout` (the named actor obs terms; ``observation: robot`` only
    where ``robot_obs`` is True);
  * :meth:`~CharEnv.stack_obs_history` at the end of ``__init__`` of an env with an actor/critic
    split, once it has sized one observation frame (``cfg.obs_history``);
  * ``terminal_info_keys`` (keys of ``info`` that keep their *pre-reset* value on the
    returned state, e.g. AMP's ``disc_obs``) and ``success_bootstrap``.

Time: ``info["step"]`` counts control steps since reset; the motion time is
``info["motion_time0"] + step * control_dt`` (MimicKit's time buffer + time offset).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import mjx

from mjxmimic import math as rmath
from mjxmimic.envs import physics, randomize
from mjxmimic.envs.observations import check_observation, layout
from mjxmimic.envs.randomize import RandomizeConfig
from mjxmimic.envs.core import EnvState, select_tree
from mjxmimic.motions import lib as mlib
from mjxmimic.motions.lib import MotionFrame, MotionLib
from mjxmimic.robots import Robot, load_robot, put_model
from mjxmimic.robots.profiles import (PROFILE_SIM, apply_profile, load_profile, profile_default_qpos,
                                     scale_effort, scale_gains)

__all__ = ["CharConfig", "CharParams", "CharEnv", "action_bounds", "joint_rotations", "compute_char_obs",
           "char_obs_size", "fallen", "auto_reset", "local_body_pos", "heading_local", "TERM_METRICS",
           "ACTION_CENTERS"]

ACTION_CENTERS = ("mimickit", "default_pose")

# Per-step indicators of how the step ended (fixed keys every character env reports).
# Fractions of episodes follow from ratios of their means, e.g. term_timeout / (sum of all).
TERM_METRICS = ("nan_resets", "term_fail", "term_success", "term_timeout")


# ---------------------------------------------------------------------------------------
# config and params
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CharConfig:
    """Static settings of a character env (MimicKit ``char_env`` / engine config names)."""

    robot: str = "g1"
    control_freq: float = 30.0          # Hz; substeps = control period / robot model timestep (profile sim)
    episode_length: float = 10.0        # seconds (timeout, bootstrapped)
    global_obs: bool = False
    root_height_obs: bool = True
    observation: str = "full"           # full | robot (mjxmimic.envs.observations)
    # The actor sees its last obs_history observation frames, newest first (obs = [a_t, a_{t-1}, ...,
    # a_{t-H+1} | critic part]); envs with an actor/critic split only (observation: robot, tracking).
    obs_history: int = 1
    zero_center_action: bool = False
    # Centre of the action bounds: "mimickit" (0 with zero_center_action, else the joint range's
    # middle) or "default_pose" (the profile's standing pose, so a zero action stands: on K1 a
    # zero shoulder roll holds the arms out sideways).
    action_center: str = "mimickit"
    action_bound_scale: float = 1.4     # MimicKit widens the joint range by 1.4 for the action bounds
    key_bodies: Optional[tuple[str, ...]] = None  # body names; None: the robot spec's key bodies
    contact_bodies: Optional[tuple[str, ...]] = None  # bodies allowed to touch the ground; None: robot spec
    enable_early_termination: bool = True
    ground_contact_height: float = 0.01  # m; a non-contact geom lower than this "touches the ground"
    rand_reset: bool = True             # reset at a random time of a random clip (needs a MotionLib)
    init_pose: Optional[tuple[float, ...]] = None   # qpos [nq] used without a MotionLib; None: robot default pose
    max_qvel: float = 200.0             # NaN guard: |qvel| above this (m/s or rad/s) resets the env
    # Actuation: "sim" (the robot model as converted) or a profile of robots/<robot>/robot.yaml
    # ("deploy": the vendor's gains, effort limits, armature and default pose). A profile other
    # than sim is the one source of the physics timestep and the control rate: it replaces
    # control_freq (and the tracking env's sim_timestep and action_scale_factor).
    profile: str = "sim"
    # (kp factor, kd factor) on the profile's PD gains, e.g. stiffer gains than the vendor's for a
    # motion (Booster retunes gains per motion; the SDK sends kp/kd with each command). Action
    # ranges and scales stay the profile's. None: the profile's gains.
    gain_scale: Optional[tuple[float, float]] = None
    # Factor on every actuator's effort limit: a what-if for diagnosing a clip ("does this motion
    # need more torque than the robot has?"), not a deploy setting (export writes the scaled limits).
    effort_scale: float = 1.0
    randomize: RandomizeConfig = RandomizeConfig()   # domain randomisation, all off by default

    def __post_init__(self):
        if self.control_freq <= 0 or self.episode_length <= 0:
            raise ValueError("control_freq and episode_length must be positive")
        if self.action_bound_scale <= 0 or self.max_qvel <= 0:
            raise ValueError("action_bound_scale and max_qvel must be positive")
        check_observation(self.observation)
        if self.action_center not in ACTION_CENTERS:
            raise ValueError(f"action_center must be one of {ACTION_CENTERS}, got {self.action_center!r}")
        if not isinstance(self.profile, str) or not self.profile:
            raise ValueError(f"profile must be a profile name (sim, deploy, ...), got {self.profile!r}")
        if self.gain_scale is not None and (len(self.gain_scale) != 2 or min(self.gain_scale) <= 0):
            raise ValueError(f"gain_scale must be [kp factor, kd factor], both > 0, got {self.gain_scale!r}")
        if not isinstance(self.obs_history, int) or self.obs_history < 1:
            raise ValueError(f"obs_history must be an integer >= 1, got {self.obs_history!r}")
        if not self.effort_scale > 0:
            raise ValueError(f"effort_scale must be > 0, got {self.effort_scale!r}")


@struct.dataclass
class CharParams:
    """Runtime data of a character env (a pytree; learners pass it into their jit)."""

    model: mjx.Model
    motion: Optional[MotionLib]
    ground_contact_height: jax.Array
    # The randomisation ramp's strength (randomize.ramp_strength), set by the trainer through
    # schedule_apply; None: the full ranges (evaluation, and every env without a ramp).
    dr_strength: Optional[jax.Array] = struct.field(default=None, kw_only=True)


# ---------------------------------------------------------------------------------------
# pure building blocks
# ---------------------------------------------------------------------------------------
def action_bounds(joint_range: np.ndarray, zero_center: bool, scale: float = 1.4, center=None):
    """MimicKit's PD-target bounds from joint limits [J, 2] -> (low [J], high [J]); ``center``
    [J] replaces MimicKit's middle (0 or the range's middle) when given."""
    lo, hi = np.asarray(joint_range, np.float64).T
    mid = np.zeros_like(hi) if zero_center else 0.5 * (lo + hi)
    if center is not None:
        mid = np.asarray(center, np.float64)
    half = scale * np.maximum(np.abs(hi - mid), np.abs(lo - mid))
    return (mid - half).astype(np.float32), (mid + half).astype(np.float32)


def joint_rotations(joint_pos, joint_axes):
    """Local rotation of each hinge joint: a rotation of ``joint_pos`` about its axis. [..., J, 4]"""
    return rmath.quat_from_axis_angle(jnp.asarray(joint_axes), joint_pos)


def local_body_pos(root_rot, rel_pos):
    """Rotate root-relative positions [..., K, 3] into the root's heading frame."""
    h = rmath.heading_quat_inv(root_rot)
    return rmath.quat_rotate(h[..., None, :], rel_pos)


def heading_local(root_rot, root_vel, root_ang_vel):
    """(root rot, lin vel, ang vel) expressed in the root's own heading frame."""
    h = rmath.heading_quat_inv(root_rot)
    return rmath.quat_mul(h, root_rot), rmath.quat_rotate(h, root_vel), rmath.quat_rotate(h, root_ang_vel)


def compute_char_obs(root_pos, root_rot, root_vel, root_ang_vel, joint_rot, dof_vel, key_pos,
                     global_obs: bool, root_height_obs: bool):
    """MimicKit ``compute_char_obs`` for one env (or any batch): in order
    [root height] (if root_height_obs), root rot tan-norm (6), root vel (3), root ang vel (3),
    joint rot tan-norm (6 per joint), joint vel (J), key-body positions relative to the
    root (3 per key body). Root rot/vels and key positions are in the heading frame unless
    ``global_obs``; key positions are always relative to the root position.
    """
    if global_obs:
        rot_obs, vel_obs, ang_obs = root_rot, root_vel, root_ang_vel
    else:
        rot_obs, vel_obs, ang_obs = heading_local(root_rot, root_vel, root_ang_vel)
    batch = root_pos.shape[:-1]
    parts = [rmath.quat_to_tan_norm(rot_obs), vel_obs, ang_obs,
             rmath.quat_to_tan_norm(joint_rot).reshape(batch + (-1,)), dof_vel]
    if key_pos.shape[-2] > 0:
        rel = key_pos - root_pos[..., None, :]
        if not global_obs:
            rel = local_body_pos(root_rot, rel)
        parts.append(rel.reshape(batch + (-1,)))
    if root_height_obs:
        parts.insert(0, root_pos[..., 2:3])
    return jnp.concatenate(parts, axis=-1)


def fallen(fall_geom_min_z, ground_contact_height, step):
    """The character env's fall: a fall geom (a body not allowed to touch the ground) lower than
    ``ground_contact_height``, never on an episode's first step (``step`` counts control steps
    since reset, 1 after the first)."""
    return jnp.any(fall_geom_min_z < ground_contact_height) & (step > 1)


def char_obs_size(num_joints: int, num_key_bodies: int, root_height_obs: bool) -> int:
    return int(root_height_obs) + 6 + 3 + 3 + 6 * num_joints + num_joints + 3 * num_key_bodies


def auto_reset(env, params, state: EnvState, physics_data, obs, reward, done, truncated, metrics: dict,
               info: dict, unstable=None, keep_info_keys: Sequence[str] = ()) -> EnvState:
    """The EnvState returned by ``step``: envs that are ``done`` (or ``unstable``) restart
    from ``env.reset``; ``terminal_obs`` is the pre-reset observation.

    NaN guard: an unstable env is done (not truncated, reward 0), its terminal obs and
    metrics are replaced by finite values (the fresh obs / 0) and ``metrics['nan_resets']``
    is 1. ``info`` takes the fresh episode's values except ``keep_info_keys``.
    """
    key, k_reset = jax.random.split(state.key)
    fresh = env.reset(params, k_reset)
    if unstable is None:
        unstable = jnp.zeros((), bool)
    done = jnp.logical_or(done, unstable)
    truncated = jnp.logical_and(truncated, ~unstable)
    reward = jnp.where(unstable | ~jnp.isfinite(reward), 0.0, reward).astype(jnp.float32)
    terminal_obs = jnp.where(unstable, fresh.obs, obs)
    metrics = {k: jnp.where(unstable, jnp.zeros_like(v), v) for k, v in metrics.items()}
    metrics["nan_resets"] = unstable.astype(jnp.float32)
    new_info = {k: (v if k in keep_info_keys else jax.tree_util.tree_map(
        lambda a, b: jnp.where(done, a, b), fresh.info[k], v)) for k, v in info.items()}
    return EnvState(physics=select_tree(done, fresh.physics, physics_data),
                    obs=jnp.where(done, fresh.obs, terminal_obs), terminal_obs=terminal_obs,
                    reward=reward, done=done, truncated=truncated, metrics=metrics, info=new_info, key=key)


# ---------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------
class CharEnv:
    """A humanoid on a plane driven by PD targets (MimicKit ``CharEnv``).

    Reward 1 per step (MimicKit's char env); failure = a body outside ``contact_bodies``
    touching the ground (ignored on the first step of an episode); timeout after
    ``episode_length`` seconds (truncated). Static attributes: obs_size, action_size,
    action_low, action_high, control_dt, num_substeps, max_episode_steps, robot,
    key_body_ids, contact_body_ids, fall_geom_ids, joint_axes.
    """

    terminal_info_keys: tuple = ()
    # Whether the env implements ``observation: robot`` (tracking and the AMP envs do).
    robot_obs: bool = False

    def __init__(self, cfg: CharConfig, robot: Optional[Robot] = None, model: Optional[mujoco.MjModel] = None):
        """``model``: the simulated MjModel when it is more than the robot (a scene with the
        robot's elements first, e.g. a ball appended); default ``robot.model``."""
        robot = robot if robot is not None else load_robot(cfg.robot)
        m = robot.model
        self.cfg = cfg
        self.robot = robot
        self.model = model if model is not None else m
        if self.model.nq < m.nq or self.model.nv < m.nv or self.model.nu != m.nu:
            raise ValueError("model must contain the robot first (same actuators, robot qpos/qvel leading)")
        self.profile = load_profile(robot, cfg.profile)
        deploy = cfg.profile != PROFILE_SIM
        if deploy:
            self.model = model = apply_profile(self.model, robot, self.profile)
        if cfg.gain_scale is not None:
            self.model = model = scale_gains(self.model, m.nu, *map(float, cfg.gain_scale))
        if cfg.effort_scale != 1.0:
            self.model = model = scale_effort(self.model, m.nu, float(cfg.effort_scale))
        self._mjx_model = None if model is None else put_model(model)
        self.control_dt = 1.0 / (self.profile.control_freq if deploy else cfg.control_freq)
        self.num_substeps = physics.num_substeps(float(self.model.opt.timestep), self.control_dt)
        self.max_episode_steps = max(1, int(round(cfg.episode_length / self.control_dt)))
        self.num_joints = robot.num_joints
        self.action_size = robot.num_joints
        center = self.profile.default_joint_pos if cfg.action_center == "default_pose" else None
        self.action_low, self.action_high = action_bounds(robot.joint_range, cfg.zero_center_action,
                                                          cfg.action_bound_scale, center)
        jid = np.array([m.joint(n).id for n in robot.joint_names])
        if np.any(m.jnt_type[jid] != 3):
            raise ValueError(f"{robot.name}: only hinge joints are supported as actuated joints")
        self.joint_axes = m.jnt_axis[jid].astype(np.float32)
        self.key_body_ids = (robot.key_body_ids if cfg.key_bodies is None
                             else np.array([robot.body_id(n) for n in cfg.key_bodies], np.int32))
        self.contact_body_ids = (robot.contact_body_ids if cfg.contact_bodies is None
                                 else np.array([robot.body_id(n) for n in cfg.contact_bodies], np.int32))
        self.fall_geom_ids = robot.fall_geom_ids(self.contact_body_ids)
        self._geom_type = self.model.geom_type.copy()
        self._geom_size = self.model.geom_size.astype(np.float32)
        if cfg.init_pose is not None:
            init = np.asarray(cfg.init_pose, np.float64)
            if init.shape != (m.nq,):
                raise ValueError(f"init_pose must have the robot's nq={m.nq} values, got {init.shape}")
            self.init_qpos = init.astype(np.float32)
        else:
            self.init_qpos = (profile_default_qpos(robot, self.profile) if deploy
                              else robot.default_qpos).astype(np.float32)
        # The PD target's zero (the profile's default joint angles).
        self.default_joint_pos = self.profile.default_joint_pos.astype(np.float32)
        # Coordinates of scene objects after the robot's (their qpos0 / zero velocity).
        self.qpos_tail = self.model.qpos0[m.nq:].astype(np.float32)
        self.nv_tail = self.model.nv - m.nv
        self.obs_size = self.char_obs_size()
        if cfg.observation != "full" and not self.robot_obs:
            raise ValueError(f"{type(self).__name__}: observation {cfg.observation!r} is not implemented "
                             "(only the tracking and AMP envs have a robot set)")
        if cfg.obs_history > 1 and not self.robot_obs:
            raise ValueError(f"{type(self).__name__}: obs_history is not implemented (only the tracking and AMP "
                             "envs split actor and critic)")
        # Domain randomisation: None when off (then reset/step are exactly the plain env's).
        self.dr_layout = (randomize.make_layout(cfg.randomize, robot, self.model, self.num_substeps, self.control_dt)
                          if cfg.randomize.active else None)
        # The randomisation values the critic reads at the end of the obs (``critic_dr_obs``, an
        # option of the envs with an actor/critic split; 0: none, and the obs is unchanged).
        critic_dr = self.dr_layout is not None and getattr(cfg, "critic_dr_obs", False)
        self.dr_obs_size = randomize.dr_obs_size(cfg.randomize, self.dr_layout) if critic_dr else 0
        self._frozen = True

    def __setattr__(self, k, v):
        if getattr(self, "_frozen", False):
            raise dataclasses.FrozenInstanceError(f"{type(self).__name__} is frozen (set {k})")
        object.__setattr__(self, k, v)

    # ---- params -----------------------------------------------------------------------
    def mjx_model(self) -> mjx.Model:
        return self.robot.mjx_model() if self._mjx_model is None else self._mjx_model

    def default_params(self, motion: Optional[MotionLib] = None) -> CharParams:
        if motion is not None:
            self.check_motion(motion)
        return CharParams(model=self.mjx_model(), motion=motion,
                          ground_contact_height=jnp.float32(self.cfg.ground_contact_height))

    def schedule_apply(self, params: CharParams, iteration) -> tuple[CharParams, dict]:
        """The params a training iteration rolls out with, and what to log: with a
        ``randomize.ramp``, its strength at ``iteration`` (the trainer's count, traced)."""
        ramp = self.cfg.randomize.ramp
        if ramp is None or self.dr_layout is None:
            return params, {}
        s = randomize.ramp_strength(ramp, iteration)
        return params.replace(dr_strength=s), {"dr_strength": s}

    def critic_dr_terms(self, info) -> list:
        """The critic's randomisation values of a state (``[dr_obs]``), or ``[]`` without them;
        reset and step put ``info["dr"]`` in place before they build the obs."""
        return [randomize.dr_obs(self.cfg.randomize, self.dr_layout, info["dr"])] if self.dr_obs_size else []

    # ---- the adaptive randomisation ramp, through the trainer's curriculum hooks (learning.ppo.Curriculum)
    @property
    def curriculum_active(self) -> bool:
        """Whether the trainer keeps curriculum state for this env (``randomize.ramp_adaptive``)."""
        return self.dr_layout is not None and self.cfg.randomize.ramp_adaptive is not None

    def curriculum_init(self, params):
        return jnp.zeros((), jnp.float32)   # the randomisation strength starts at 0

    def curriculum_collect(self, state: EnvState):
        m = state.metrics
        return m["term_success"], m["term_fail"], m["term_timeout"]

    def curriculum_update(self, cstate, xs):
        s, rate = randomize.adaptive_strength(cstate, *xs, self.cfg.randomize)
        return s, {"dr_strength": s, "dr_rate": rate}

    def curriculum_apply(self, params: CharParams, cstate) -> CharParams:
        return params.replace(dr_strength=cstate)

    def check_motion(self, motion: MotionLib):
        if tuple(motion.joint_names) != tuple(self.robot.joint_names):
            raise ValueError(f"motion library joints {list(motion.joint_names)} differ from robot "
                             f"{self.robot.name}'s {list(self.robot.joint_names)}")
        if tuple(motion.body_names) and tuple(motion.body_names) != tuple(self.robot.body_names):
            raise ValueError(f"motion library bodies differ from robot {self.robot.name}'s; rebuild it for this robot")

    # ---- sizes ------------------------------------------------------------------------
    def char_obs_size(self) -> int:
        return char_obs_size(self.num_joints, len(self.key_body_ids), self.cfg.root_height_obs)

    def char_obs_layout(self) -> list[dict]:
        """Named slices of :func:`compute_char_obs` (no noise)."""
        J, K = self.num_joints, len(self.key_body_ids)
        sizes = {"root_height": 1, "root_rot": 6, "root_vel": 3, "root_ang_vel": 3, "joint_rot": 6 * J,
                 "joint_vel": J, "key_body_pos": 3 * K}
        names = (["root_height"] if self.cfg.root_height_obs else []) + ["root_rot", "root_vel", "root_ang_vel",
                                                                          "joint_rot", "joint_vel"]
        return layout(names + (["key_body_pos"] if K else []), sizes, {})

    def actor_obs_layout(self) -> list[dict]:
        """One ``{"name", "size", "noise"}`` per actor obs term of one frame, in order (observations.py)."""
        return self.char_obs_layout()

    # ---- observation history ------------------------------------------------------------
    # With cfg.obs_history H > 1 the actor's part of the obs holds its last H frames, newest first:
    # a robot without a velocity sensor reads motion from them (a Booster K1 walking config stacks 10
    # frames, Unitree's G1 recipes 5: deployment notes). info["obs_history"] [H, frame] carries them.
    def stack_obs_history(self):
        """Resize for ``cfg.obs_history``: ``frame_obs_size`` (one frame, as the env sized it),
        ``actor_obs_size`` = H · frame, ``obs_size`` grown by (H − 1) · frame."""
        H = self.cfg.obs_history
        a = getattr(self, "actor_obs_size", None)
        if H > 1 and a is None:
            raise ValueError(f"{type(self).__name__}: obs_history needs an actor/critic split "
                             "(observation: robot, or a tracking env)")
        a = self.obs_size if a is None else a
        object.__setattr__(self, "frame_obs_size", int(a))
        if H > 1:
            object.__setattr__(self, "actor_obs_size", H * int(a))
            object.__setattr__(self, "obs_size", self.obs_size + (H - 1) * int(a))

    def start_obs_history(self, obs, info):
        """A new episode's stacked obs: its first frame repeated H times."""
        if self.cfg.obs_history == 1:
            return obs, info
        return self._stacked(obs, jnp.tile(obs[None, :self.frame_obs_size], (self.cfg.obs_history, 1)), info)

    def push_obs_history(self, obs, info):
        """A step's stacked obs: its frame in front of the previous H − 1."""
        if self.cfg.obs_history == 1:
            return obs, info
        return self._stacked(obs, jnp.concatenate([obs[None, :self.frame_obs_size], info["obs_history"][:-1]]), info)

    def _stacked(self, obs, hist, info):
        """(obs with its actor frame replaced by the frames ``hist`` [H, frame], info carrying them)."""
        return jnp.concatenate([hist.reshape(-1), obs[self.frame_obs_size:]]), {**info, "obs_history": hist}

    # ---- actions ----------------------------------------------------------------------
    def action_to_target(self, action):
        """PD target from an env action (already in radians): clipped to the action bounds."""
        return jnp.clip(action, jnp.asarray(self.action_low), jnp.asarray(self.action_high))

    def normalized_to_action(self, a_norm):
        """What the learner does: map a normalised action in [-1, 1] onto [low, high]."""
        lo, hi = jnp.asarray(self.action_low), jnp.asarray(self.action_high)
        return 0.5 * (hi + lo) + 0.5 * (hi - lo) * a_norm

    # ---- state views ------------------------------------------------------------------
    def char_frame(self, data: mjx.Data) -> MotionFrame:
        """The simulated character in MotionFrame form (body arrays indexed by body id)."""
        pos, rot, vel, ang = physics.root_state(data)
        return MotionFrame(root_pos=pos, root_rot=rot, root_vel=vel, root_ang_vel=ang,
                           joint_pos=data.qpos[self.robot.qpos_idx], joint_vel=data.qvel[self.robot.qvel_idx],
                           body_pos=data.xpos, body_rot=data.xquat)

    def joint_rot(self, joint_pos):
        return joint_rotations(joint_pos, self.joint_axes)

    def char_obs(self, frame: MotionFrame):
        return compute_char_obs(frame.root_pos, frame.root_rot, frame.root_vel, frame.root_ang_vel,
                                self.joint_rot(frame.joint_pos), frame.joint_vel,
                                frame.body_pos[..., self.key_body_ids, :], self.cfg.global_obs,
                                self.cfg.root_height_obs)

    def motion_time(self, info):
        return info["motion_time0"] + info["step"].astype(jnp.float32) * self.control_dt

    # ---- termination ------------------------------------------------------------------
    def has_fallen(self, params: CharParams, data: mjx.Data, info) -> jax.Array:
        """Early termination by ground contact of a non-contact body, never on the first step: a
        fall geom below ``ground_contact_height`` (stands in for MimicKit's ground contact force
        > 0.1 N; the solver never tests these pairs)."""
        if not self.cfg.enable_early_termination or self.fall_geom_ids.size == 0:
            return jnp.zeros((), bool)
        z = physics.geoms_min_z(self._geom_type, self._geom_size, data, self.fall_geom_ids)
        return fallen(z, params.ground_contact_height, info["step"])

    # ---- overridable hooks ------------------------------------------------------------
    def full_state(self, robot_qpos, robot_qvel):
        """Append the scene objects' default coordinates to robot-only qpos/qvel."""
        qpos = jnp.concatenate([robot_qpos, jnp.asarray(self.qpos_tail, robot_qpos.dtype)])
        qvel = jnp.concatenate([robot_qvel, jnp.zeros((self.nv_tail,), robot_qvel.dtype)])
        return qpos, qvel

    def initial_state(self, params: CharParams, key):
        """(qpos, qvel, info) of a new episode: reference-state init from the MotionLib
        (random clip by weight; random time if rand_reset, else 0), or the init pose at rest."""
        info = {"step": jnp.zeros((), jnp.int32), "motion_id": jnp.zeros((), jnp.int32),
                "motion_time0": jnp.zeros((), jnp.float32)}
        if params.motion is None:
            qpos, qvel = jnp.asarray(self.init_qpos), jnp.zeros((self.robot.model.nv,), jnp.float32)
            return (*self.full_state(qpos, qvel), info)
        lib = params.motion
        k_id, k_t = jax.random.split(key)
        mid = mlib.sample_motions(lib, k_id, 1)[0].astype(jnp.int32)
        t = mlib.sample_times(lib, k_t, mid) if self.cfg.rand_reset else jnp.zeros((), jnp.float32)
        f = mlib.sample(lib, mid, t)
        info.update(motion_id=mid, motion_time0=t.astype(jnp.float32))
        return (*self.full_state(f.qpos(lib), f.qvel(lib)), info)

    def observation(self, params: CharParams, data: mjx.Data, info) -> jax.Array:
        return self.char_obs(self.char_frame(data))

    def evaluate(self, params: CharParams, data: mjx.Data, info):
        """After a step: (obs, reward, failed, succeeded, metrics dict)."""
        obs = self.observation(params, data, info)
        return obs, jnp.ones((), jnp.float32), self.has_fallen(params, data, info), jnp.zeros((), bool), {}

    # Reset and every step draw one extra key for the task (targets, ball) when True (the
    # AMP envs); per class, so the random draws of every env stay what they were.
    task_key: bool = False
    # Success ends the episode; when True it is treated like a timeout by the learner (the
    # value of the final state is bootstrapped), so ending early costs no future reward.
    success_bootstrap: bool = False

    def task_init(self, params: CharParams, key, qpos, qvel, info: dict):
        """A new episode's task (called by ``reset`` when ``task_key``): (qpos, qvel, info) with
        task entries added to ``info`` and scene objects placed in qpos/qvel (kick: the ball).
        The robot's root is qpos[0:7]."""
        return qpos, qvel, info

    def physics_step(self, params: CharParams, state: EnvState, action) -> mjx.Data:
        """The physics of one control step (without domain randomisation): the PD target held for
        ``num_substeps`` mj steps. The view-motion env sets the clip's pose instead; the DoF-test env
        drives its own sweep with the root pinned."""
        return physics.pd_step(params.model, state.physics, self.action_to_target(action), self.num_substeps)

    def record_action(self, info: dict, action) -> dict:
        """``info`` of a step before its physics, given the env action (AMP's robot set keeps
        the normalised last action here)."""
        return info

    def init_info(self, params: CharParams, data: mjx.Data, info: dict) -> dict:
        """``info`` of a new episode once its physics state exists (AMP: the disc history)."""
        return info

    def post_physics(self, params: CharParams, prev_data: mjx.Data, data: mjx.Data, info: dict,
                     unstable: jax.Array) -> dict:
        """``info`` right after a step's physics, before it is evaluated (AMP: the disc history);
        ``unstable``: the NaN guard fired on this step."""
        return info

    def evaluate_step(self, params: CharParams, key, prev_data: mjx.Data, data: mjx.Data, info: dict):
        """After a step: (obs, reward, failed, succeeded, metrics, info). ``key``: the task key
        (None unless ``task_key``). Default: :meth:`evaluate` of the new state, info unchanged;
        envs whose step needs the previous state or changes ``info`` override this."""
        return (*self.evaluate(params, data, info), info)

    # ---- contract: the one reset/step of every character env ----------------------------
    def reset(self, params: CharParams, key) -> EnvState:
        k_dr = None
        if self.dr_layout is not None:
            key, k_dr = jax.random.split(key)
        keys = jax.random.split(key, 3 if self.task_key else 2)
        qpos, qvel, info = self.initial_state(params, keys[0])
        if self.task_key:
            qpos, qvel, info = self.task_init(params, keys[1], qpos, qvel, info)
        model = params.model
        if k_dr is not None:
            dr = randomize.sample(self.cfg.randomize, self.dr_layout, k_dr, qpos[self.robot.qpos_idx],
                                  params.dr_strength)
            info = {**info, "dr": dr}
            model = randomize.env_model(model, self.dr_layout, dr)
        data = physics.set_state(model, qpos, qvel, ctrl=qpos[self.robot.qpos_idx])
        info = self.init_info(params, data, info)
        # evaluate() gives the obs and the metric keys (its other outputs mean nothing at reset).
        obs, _, _, _, metrics = jax.tree_util.tree_map(jnp.asarray, self.evaluate(params, data, info))
        obs, info = self.start_obs_history(obs, info)
        metrics = {k: jnp.zeros((), jnp.float32) for k in metrics}
        metrics.update({k: jnp.zeros((), jnp.float32) for k in TERM_METRICS})
        return EnvState(physics=data, obs=obs, terminal_obs=obs, reward=jnp.zeros((), jnp.float32),
                        done=jnp.zeros((), bool), truncated=jnp.zeros((), bool), metrics=metrics, info=info,
                        key=keys[-1])

    def randomized_physics(self, params: CharParams, state: EnvState, action, dr: dict):
        """A step's physics with the env's randomisation: push, calibration offset, delay, its
        own model. -> (data, dr, state with the push key drawn)."""
        lay, cfg = self.dr_layout, self.cfg.randomize
        phys = state.physics
        if "push_countdown" in dr:
            key, k_push = jax.random.split(state.key)
            state = state.replace(key=key)
            qvel, dr = randomize.push(cfg, lay, k_push, phys.qvel, dr, params.dr_strength)
            phys = phys.replace(qvel=qvel)
        target = randomize.pd_target(self.action_to_target(action), dr)
        data = physics.pd_step(randomize.env_model(params.model, lay, dr), phys, target, self.num_substeps,
                               delay=dr.get("delay"), prev_targets=dr.get("prev_targets"))
        return data, randomize.shift_targets(dr, target), state

    def step(self, params: CharParams, state: EnvState, action) -> EnvState:
        k_task = None
        if self.task_key:
            key, k_task = jax.random.split(state.key)
            state = state.replace(key=key)
        dr = state.info.get("dr")
        if dr is None:
            data = self.physics_step(params, state, action)
        else:
            data, dr, state = self.randomized_physics(params, state, action, dr)
        info = {**state.info, "step": state.info["step"] + 1}
        info = self.record_action(info, action)
        if dr is not None:
            info["dr"] = dr
        unstable = physics.is_unstable(data, self.cfg.max_qvel)
        info = self.post_physics(params, state.physics, data, info, unstable)
        obs, reward, failed, succeeded, metrics, info = self.evaluate_step(params, k_task, state.physics, data, info)
        obs, info = self.push_obs_history(obs, info)
        timeout = info["step"] >= self.max_episode_steps
        failed = failed & ~unstable
        succeeded = succeeded & ~failed & ~unstable
        truncated = timeout & ~failed & ~succeeded
        term_timeout = truncated & ~unstable
        if self.success_bootstrap:
            truncated = truncated | succeeded
        done = failed | succeeded | timeout
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
        metrics.update(term_fail=failed.astype(jnp.float32), term_success=succeeded.astype(jnp.float32),
                       term_timeout=term_timeout.astype(jnp.float32))
        return auto_reset(self, params, state, data, obs, jnp.asarray(reward, jnp.float32), done, truncated,
                          metrics, info, unstable=unstable, keep_info_keys=self.terminal_info_keys)

"""BeyondMimic-style motion tracking on MJX (``env: {name: tracking}``).

    env = TrackingEnv(TrackingConfig(robot="g1"))
    params = env.default_params(load_motion_lib("motions/g1/walk.npz", "g1"))

The recipe of BeyondMimic (numbers: ``shared/docs/beyondmimic_notes.md``), beside the
MimicKit-faithful :mod:`~mjxmimic.envs.deepmimic`:

* Timing: 50 Hz policy over ``sim_timestep`` 0.005 s physics (4 substeps).
* Actions: PD target = q_default + s·a with s = ``action_scale_factor``·τmax/Kp per joint,
  unclipped (MuJoCo's ctrlrange still clamps). ``action_low/high`` = q_default ∓ s, so the
  learner's affine map of its normalised action ``a`` is exactly this.
* Anchor-relative targets: with dq the yaw of q_anchor·q*_anchor⁻¹, each tracked body's
  target is p* = (anchor x, anchor y, ref anchor z) + R(dq)(p_ref − p_ref_anchor),
  q* = dq·q_ref: xy and heading follow the robot, height/roll/pitch the reference.
* Observation ``[actor | critic]``: the actor reads the first ``actor_obs_size`` entries
  (additive uniform noise); the critic sees all of it plus a noise-free copy, the
  privileged terms the actor set leaves out and the tracked-body poses in the anchor frame
  (mjlab's critic), then, with ``critic_dr_obs``, the env's domain-randomisation values
  (:func:`~mjxmimic.envs.randomize.dr_obs`). Actor sets (``observation``), both selections
  of :meth:`TrackingEnv.obs_terms`: ``full`` (BeyondMimic's: ref joint pos/vel as
  ``command``, ref anchor pose in the robot anchor frame, base velocities, joint state, last
  action) and ``robot`` (Booster's deployed 119-number K1 set: no anchor position, no linear
  velocity; the gyro is ``base_ang_vel``).
* Reward: Σ w·f·dt over :data:`REWARD_TERMS`; terminations on anchor height, gravity
  tilt and end-effector height errors; 10 s timeout.
* Start states: adaptive (failure-weighted bins per clip), uniform, or the first frame;
  the failure statistics are shared by all envs, so they live outside the env state
  behind the ``curriculum_*`` methods (see :meth:`TrackingEnv.curriculum_update`).

Body velocities: MotionFrame has no per-body velocities, so both the reference and the
simulated body velocities are finite differences over one control step (reference: two
MotionLib samples at t−dt and t; simulation: the previous step's poses kept in ``info``).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mjxmimic import math as rmath
from mjxmimic.envs import physics
from mjxmimic.envs.char import CharConfig, CharEnv, CharParams
from mjxmimic.envs.deepmimic import compute_tracking_error
from mjxmimic.envs.observations import add_noise, layout, layout_size
from mjxmimic.motions import lib as mlib
from mjxmimic.motions.lib import MotionFrame, MotionLib
from mjxmimic.robots.profiles import PROFILE_SIM, effort_over_kp

__all__ = ["TrackingConfig", "TrackingParams", "TrackingEnv", "REWARD_TERMS", "EVAL_OVERRIDES", "OBS_NOISE",
           "relative_targets", "rot6d", "quat_from_euler_xyz", "exp_reward", "action_rate_penalty",
           "joint_limit_penalty", "compute_terminations", "FAIL_CAUSES", "bin_weights", "ema_counts", "make_bins",
           "make_tracking_env"]

REWARD_TERMS = ("anchor_pos", "anchor_ori", "body_pos", "body_ori", "body_lin_vel", "body_ang_vel",
                "joint_pos", "action_rate", "joint_limit", "undesired_contacts")

# Additive uniform observation noise U(-n, n) per actor term (BeyondMimic), times obs_noise_scale.
# (Booster's K1 deployment uses the same widths; its gyro is base_ang_vel.)
OBS_NOISE = {"anchor_pos": 0.25, "anchor_ori": 0.05, "base_lin_vel": 0.5, "base_ang_vel": 0.2,
             "joint_pos": 0.01, "joint_vel": 0.5, "gyro": 0.2}

# Overrides that turn a training config into an evaluation one (play, tracking benchmark).
EVAL_OVERRIDES = {"env.start": "first_frame", "env.obs_noise_scale": 0.0, "env.reset_noise_scale": 0.0,
                  "env.motion_end": "success"}

G1_TRACKED = ("pelvis", "left_hip_roll_link", "left_knee_link", "left_ankle_roll_link", "right_hip_roll_link",
              "right_knee_link", "right_ankle_roll_link", "torso_link", "left_shoulder_roll_link",
              "left_elbow_link", "left_wrist_yaw_link", "right_shoulder_roll_link", "right_elbow_link",
              "right_wrist_yaw_link")
G1_EE = ("left_ankle_roll_link", "right_ankle_roll_link", "left_wrist_yaw_link", "right_wrist_yaw_link")


@dataclasses.dataclass(frozen=True)
class TrackingConfig(CharConfig):
    """Defaults are BeyondMimic's G1 numbers (``beyondmimic_notes.md``)."""

    control_freq: float = 50.0
    sim_timestep: Optional[float] = 0.005       # s; None: the robot model's timestep
    episode_length: float = 10.0
    enable_early_termination: bool = False      # no ground-contact falls: the tracking terminations instead
    action_scale_factor: float = 0.25           # s_j = factor · τmax_j / Kp_j
    anchor_body: str = "torso_link"
    tracked_bodies: tuple[str, ...] = G1_TRACKED
    ee_bodies: tuple[str, ...] = G1_EE
    future_steps: tuple[int, ...] = ()          # extra reference frames (control steps ahead) in the actor obs
    obs_noise_scale: float = 1.0                # times OBS_NOISE; 0 for evaluation
    critic_dr_obs: bool = False                 # the critic also reads randomize.dr_obs (privileged; with DR on)
    reset_noise_scale: float = 1.0              # times the start-state noise ranges; 0 for evaluation
    start: str = "adaptive"                     # adaptive | uniform | first_frame
    motion_end: str = "resample"                # resample (training) | success (evaluation)
    soft_limit_factor: float = 0.9
    # reward weights and σ (each term adds w·f·dt)
    reward_anchor_pos_w: float = 0.5
    reward_anchor_ori_w: float = 0.5
    reward_body_pos_w: float = 1.0
    reward_body_ori_w: float = 1.0
    reward_body_lin_vel_w: float = 1.0
    reward_body_ang_vel_w: float = 1.0
    reward_joint_pos_w: float = 0.0             # not BeyondMimic's: exp(−mean Δq²/σ²) on the joint angles
    reward_action_rate_w: float = -0.1
    reward_joint_limit_w: float = -10.0
    reward_undesired_contacts_w: float = -0.1
    reward_anchor_pos_sigma: float = 0.3
    reward_anchor_ori_sigma: float = 0.4
    reward_body_pos_sigma: float = 0.3
    reward_body_ori_sigma: float = 0.4
    reward_body_lin_vel_sigma: float = 1.0
    reward_body_ang_vel_sigma: float = 3.14
    reward_joint_pos_sigma: float = 0.3         # rad
    # terminations
    term_anchor_height: float = 0.25            # m
    term_gravity_z: float = 0.8
    term_ee_height: float = 0.25                # m
    # adaptive start sampling
    adaptive_bin_seconds: float = 1.0           # B = floor(length / bin_seconds) + 1 bins per clip
    adaptive_alpha: float = 0.001               # per-step EMA rate of the failure counts
    adaptive_uniform: float = 0.1               # u: p_i ∝ Σ_j k_j (c_{i+j} + u/B)
    adaptive_kernel_size: int = 1               # K
    adaptive_lambda: float = 0.8

    def __post_init__(self):
        super().__post_init__()
        if self.start not in ("adaptive", "uniform", "first_frame"):
            raise ValueError(f"start must be adaptive, uniform or first_frame, got {self.start!r}")
        if self.motion_end not in ("resample", "success"):
            raise ValueError(f"motion_end must be resample or success, got {self.motion_end!r}")
        if self.randomize.ramp_adaptive is not None:   # its curriculum hooks are the start sampling's
            raise ValueError("randomize.ramp_adaptive is not available in the tracking env; use randomize.ramp")
        if self.sim_timestep is not None and self.sim_timestep <= 0:
            raise ValueError("sim_timestep must be positive")
        if not self.tracked_bodies or not self.ee_bodies:
            raise ValueError("tracked_bodies and ee_bodies must be non-empty")
        if any(int(s) != s or s < 1 for s in self.future_steps):
            raise ValueError(f"future_steps must be positive integers, got {self.future_steps}")
        if self.action_scale_factor <= 0 or self.adaptive_bin_seconds <= 0 or self.adaptive_kernel_size < 1:
            raise ValueError("action_scale_factor, adaptive_bin_seconds and adaptive_kernel_size must be positive")
        if not 0 < self.adaptive_alpha <= 1 or not 0 < self.soft_limit_factor <= 1:
            raise ValueError("adaptive_alpha and soft_limit_factor must be in (0, 1]")


@struct.dataclass
class TrackingParams(CharParams):
    reward_w: jax.Array             # [len(REWARD_TERMS)]
    reward_sigma: jax.Array         # [7] σ of the exp terms (REWARD_TERMS[:7])
    term_anchor_height: jax.Array
    term_gravity_z: jax.Array
    term_ee_height: jax.Array
    obs_noise_scale: jax.Array
    reset_noise_scale: jax.Array
    bin_start: jax.Array            # [M] first global bin of each clip
    num_bins: jax.Array             # [M] bins of each clip
    bin_motion: jax.Array           # [Btot] clip of each bin
    bin_weights: jax.Array          # [Btot] start-sampling probability of each bin (sums to 1)


# ---------------------------------------------------------------------------------------
# pure functions (one env or any batch)
# ---------------------------------------------------------------------------------------
def rot6d(q):
    """First two rotation-matrix columns, flattened row-major (BeyondMimic's ``mat[..., :2]``). [..., 6]"""
    m = rmath.quat_to_mat(q)[..., :2]
    return m.reshape(m.shape[:-2] + (6,))


def quat_from_euler_xyz(roll, pitch, yaw):
    """R = Rz(yaw)·Ry(pitch)·Rx(roll) as a wxyz quaternion."""
    ax = lambda i: jnp.eye(3, dtype=jnp.float32)[i]  # noqa: E731
    qx, qy, qz = (rmath.quat_from_axis_angle(ax(i), a) for i, a in enumerate((roll, pitch, yaw)))
    return rmath.quat_mul(qz, rmath.quat_mul(qy, qx))


def relative_targets(anchor_pos, anchor_rot, ref_anchor_pos, ref_anchor_rot, ref_body_pos, ref_body_rot):
    """BeyondMimic's anchor-relative body targets (p* [..., B, 3], q* [..., B, 4])."""
    dq = rmath.heading_quat(rmath.quat_mul(anchor_rot, rmath.quat_conj(ref_anchor_rot)))
    base = jnp.concatenate([anchor_pos[..., :2], ref_anchor_pos[..., 2:]], axis=-1)
    p = base[..., None, :] + rmath.quat_rotate(dq[..., None, :], ref_body_pos - ref_anchor_pos[..., None, :])
    q = rmath.quat_mul(jnp.broadcast_to(dq[..., None, :], ref_body_rot.shape), ref_body_rot)
    return p, q


def exp_reward(sq_err, sigma):
    """exp(−e/σ²) of a squared error e."""
    return jnp.exp(-sq_err / (sigma * sigma))


def action_rate_penalty(action, prev_action):
    return jnp.sum((action - prev_action) ** 2, axis=-1)


def joint_limit_penalty(joint_pos, soft_low, soft_high):
    """Σ overshoot past the soft limits (rad)."""
    return jnp.sum(jnp.maximum(soft_low - joint_pos, 0.0) + jnp.maximum(joint_pos - soft_high, 0.0), axis=-1)


FAIL_CAUSES = ("anchor_height", "gravity", "ee_height")   # the order of compute_terminations' flags


def compute_terminations(anchor_z, ref_anchor_z, anchor_rot, ref_anchor_rot, ee_z, ee_target_z,
                         max_height, max_gravity, max_ee_height):
    """(anchor height, gravity tilt, end-effector height) failure flags."""
    down = jnp.array([0.0, 0.0, -1.0], jnp.float32)
    gz = rmath.quat_rotate_inv(anchor_rot, jnp.broadcast_to(down, anchor_rot.shape[:-1] + (3,)))[..., 2]
    gz_ref = rmath.quat_rotate_inv(ref_anchor_rot, jnp.broadcast_to(down, ref_anchor_rot.shape[:-1] + (3,)))[..., 2]
    return (jnp.abs(ref_anchor_z - anchor_z) > max_height, jnp.abs(gz_ref - gz) > max_gravity,
            jnp.any(jnp.abs(ee_target_z - ee_z) > max_ee_height, axis=-1))


def make_bins(length: np.ndarray, bin_seconds: float):
    """Static bin layout of clips with ``length`` seconds: (bin_start [M], num_bins [M], bin_motion [Btot])."""
    nb = (np.floor(np.asarray(length, np.float64) / bin_seconds + 1e-6) + 1).astype(np.int32)
    start = np.concatenate([[0], np.cumsum(nb)[:-1]]).astype(np.int32)
    return start, nb, np.repeat(np.arange(len(nb), dtype=np.int32), nb)


def bin_weights(counts, bin_start, num_bins, bin_motion, motion_weights, uniform: float, kernel_size: int,
                lam: float):
    """Start probability per bin [Btot]: a clip by its dataset weight, then a bin within the
    clip with p_i ∝ Σ_{j<K} k_j (c_{i+j} + u/B), k_j ∝ λ^j, the clip's last bin repeated
    past its end (so failures in later bins also raise earlier ones). One categorical over
    all bins with these probabilities draws exactly that two-level choice."""
    m = bin_motion
    nb = num_bins[m].astype(counts.dtype)
    last = bin_start[m] + num_bins[m] - 1
    k = lam ** np.arange(kernel_size)
    k = k / k.sum()
    idx = jnp.arange(counts.shape[0])
    w = sum(float(kj) * (counts[jnp.minimum(idx + j, last)] + uniform / nb) for j, kj in enumerate(k))
    per_clip = jax.ops.segment_sum(w, m, num_segments=num_bins.shape[0])
    return w / per_clip[m] * motion_weights[m]


def ema_counts(counts, failed, fail_bin, alpha: float):
    """BeyondMimic's per-step EMA c ← α·h_t + (1−α)·c over T steps in closed form.

    failed/fail_bin [T, N]: h_t is the histogram of step t's failures over bins. Returns
    (1−α)^T·c + Σ_t α(1−α)^{T−1−t}·h_t."""
    T = failed.shape[0]
    decay = (1.0 - alpha) ** jnp.arange(T - 1, -1, -1, dtype=jnp.float32)   # (1−α)^{T−1−t}
    w = alpha * decay[:, None] * failed.astype(jnp.float32)
    h = jax.ops.segment_sum(w.reshape(-1), fail_bin.reshape(-1), num_segments=counts.shape[0])
    return (1.0 - alpha) ** T * counts + h


# ---------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------
class TrackingEnv(CharEnv):
    """Track the clips of a MotionLib the BeyondMimic way (see the module docstring).

    Done: a tracking failure (anchor height, gravity tilt, end-effector height), the 10 s
    timeout (truncated), or the end of a non-looping clip: ``motion_end="resample"`` ends
    the episode as truncated (value bootstrapped, no failure: BeyondMimic restarts at a new
    sampled frame without a termination, and ending a truncated episode into a fresh reset
    is the closest our done/reset contract allows), ``"success"`` ends it as a success.

    ``info["last_action"]`` is the policy's normalised action a = (target − q_default)/s,
    as BeyondMimic observes and rate-penalises it (not the PD target in radians).

    Metrics: ``r_<term>`` (the unweighted f of each reward term), deepmimic's
    :data:`~mjxmimic.envs.deepmimic.TRACKING_METRICS` over the tracked bodies (key bodies =
    end effectors; root-relative), the anchor-relative ``rel_body_pos_err`` (mean ‖p*−p‖),
    ``anchor_pos_err``/``anchor_rot_err`` (world), ``ee_height_err`` (max |z*−z|) and
    ``fail_<cause>`` for each termination of :data:`FAIL_CAUSES` (1 on a step where it fires; several
    may fire together), so ``play``'s ``end/fail_ee_height`` is the share of episodes it ended.

    "Undesired contacts": our robot models collide only the feet with the floor, so this
    counts the bodies other than ``ee_bodies`` with a collision geom lower than
    ``ground_contact_height`` (the char env's fall test), not bodies with contact forces.
    """

    terminal_info_keys = ("fail_bin",)
    robot_obs = True

    def __init__(self, cfg: TrackingConfig, robot=None, model=None):
        """``model``: a scene model (as for CharEnv); ``cfg.sim_timestep`` replaces its timestep."""
        from mjxmimic.robots import load_robot
        robot = robot if robot is not None else load_robot(cfg.robot)
        if cfg.sim_timestep is not None and cfg.profile == PROFILE_SIM:   # a deploy profile sets its own
            model = _with_timestep(robot.model if model is None else model, cfg.sim_timestep)
        super().__init__(cfg, robot, model)
        r = self.robot
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        # The profile's gains, not the model's: env.gain_scale changes stiffness, not the action range.
        kp, tau = np.asarray(self.profile.kp), np.asarray(self.profile.effort)
        if np.any(kp <= 0) or np.any(tau <= 0):
            raise ValueError(f"{r.name}: every actuator needs a positive gain and force range for the action scale")
        factor = cfg.action_scale_factor if self.profile.action_scale_factor is None else self.profile.action_scale_factor
        scale = effort_over_kp(factor, tau, kp).astype(np.float32)
        q0 = self.default_joint_pos
        set_("action_scale", scale)
        set_("action_low", q0 - scale)
        set_("action_high", q0 + scale)
        lo, hi = r.joint_range.T
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo) * cfg.soft_limit_factor
        set_("soft_low", (mid - half).astype(np.float32))
        set_("soft_high", (mid + half).astype(np.float32))
        set_("anchor_id", r.body_id(cfg.anchor_body))
        set_("tracked_ids", np.array([r.body_id(n) for n in cfg.tracked_bodies], np.int32))
        set_("ee_ids", np.array([r.body_id(n) for n in cfg.ee_bodies], np.int32))
        # Undesired contacts: collision geoms of the non-end-effector bodies, grouped by body.
        ee = set(self.ee_ids.tolist())
        geoms = np.array([g for g in r.collision_geom_ids if r.model.geom_bodyid[g] not in ee], np.int32)
        bodies = r.model.geom_bodyid[geoms]
        set_("contact_geom_ids", geoms)
        set_("contact_geom_group", np.unique(bodies, return_inverse=True)[1].astype(np.int32))
        set_("num_contact_bodies", int(len(np.unique(bodies))))
        set_("future_steps", tuple(int(s) for s in cfg.future_steps))
        J, B, S = self.num_joints, len(self.tracked_ids), len(self.future_steps)
        set_("term_sizes", {"ref_joint_pos": J, "ref_joint_vel": J, "future_ref_joint_pos": S * J,
                            "future_ref_joint_vel": S * J, "anchor_pos": 3, "anchor_ori": 6, "base_lin_vel": 3,
                            "base_ang_vel": 3, "joint_pos": J, "joint_vel": J, "last_action": J})
        set_("actor_terms", self.obs_selection(cfg.observation))
        used = {t for _, ts in self.actor_terms for t in ts}
        # Privileged: the full set's terms the actor does not see (critic only, noise-free).
        set_("privileged_terms", tuple(t for _, ts in self.obs_selection("full") for t in ts if t not in used))
        set_("actor_obs_size", layout_size(self.actor_obs_layout()))
        set_("obs_size", 2 * self.actor_obs_size + sum(self.term_sizes[t] for t in self.privileged_terms) + 9 * B
             + self.dr_obs_size)
        self.stack_obs_history()

    # ---- params -----------------------------------------------------------------------
    def default_params(self, motion: MotionLib) -> TrackingParams:
        if motion is None:
            raise ValueError("TrackingEnv needs a MotionLib")
        base = super().default_params(motion)
        c = self.cfg
        start, nb, bm = make_bins(np.asarray(motion.length), c.adaptive_bin_seconds)
        f = jnp.float32
        p = TrackingParams(
            model=base.model, motion=base.motion, ground_contact_height=base.ground_contact_height,
            reward_w=jnp.asarray([getattr(c, f"reward_{k}_w") for k in REWARD_TERMS], jnp.float32),
            reward_sigma=jnp.asarray([getattr(c, f"reward_{k}_sigma") for k in REWARD_TERMS[:7]], jnp.float32),
            term_anchor_height=f(c.term_anchor_height), term_gravity_z=f(c.term_gravity_z),
            term_ee_height=f(c.term_ee_height), obs_noise_scale=f(c.obs_noise_scale),
            reset_noise_scale=f(c.reset_noise_scale), bin_start=jnp.asarray(start), num_bins=jnp.asarray(nb),
            bin_motion=jnp.asarray(bm), bin_weights=jnp.zeros((len(bm),), jnp.float32))
        return self.curriculum_apply(p, self.curriculum_init(p), force=True)

    # ---- curriculum (adaptive start sampling; state shared by all envs, kept by the trainer)
    curriculum_active = True   # always (its own hooks replace CharEnv's adaptive randomisation ramp)

    def curriculum_init(self, params: TrackingParams):
        """EMA failure counts per bin [Btot]."""
        return jnp.zeros(params.bin_motion.shape, jnp.float32)

    def curriculum_collect(self, state):
        """(failed, bin of the failure frame) of a post-step state (pre-reset bin, see terminal_info_keys)."""
        return state.metrics["term_fail"] > 0, state.info["fail_bin"]

    def curriculum_update(self, cstate, xs):
        """Apply T per-step EMA updates (xs: failed, fail_bin [T, N]) -> (counts, metrics)."""
        failed, fail_bin = xs
        counts = ema_counts(cstate, failed, fail_bin, self.cfg.adaptive_alpha)
        p = counts / jnp.maximum(jnp.sum(counts), 1e-12)
        ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, 1e-12)), 0.0))
        return counts, {"curriculum_fail_count": jnp.sum(counts), "curriculum_fail_entropy": ent,
                        "curriculum_max_bin_share": jnp.max(p)}

    def curriculum_apply(self, params: TrackingParams, cstate, force: bool = False) -> TrackingParams:
        """Start-bin probabilities from the failure counts (only with ``start: adaptive``)."""
        if self.cfg.start != "adaptive" and not force:
            return params
        c = self.cfg
        w = bin_weights(cstate, params.bin_start, params.num_bins, params.bin_motion, params.motion.weights,
                        c.adaptive_uniform, c.adaptive_kernel_size, c.adaptive_lambda)
        return params.replace(bin_weights=w.astype(jnp.float32))

    # ---- actions ----------------------------------------------------------------------
    def action_to_target(self, action):
        """PD target = the env action itself (q_default + s·a, unclipped)."""
        return action

    def normalized_action(self, action):
        """The policy's action a from a PD target: (target − q_default) / s."""
        return (action - jnp.asarray(self.default_joint_pos)) / jnp.asarray(self.action_scale)

    # ---- time and bins ----------------------------------------------------------------
    def time_bin(self, params: TrackingParams, motion_id, t):
        """Global adaptive-sampling bin of clip time t."""
        phase = mlib.motion_phase(params.motion, motion_id, t)
        nb = params.num_bins[motion_id]
        return params.bin_start[motion_id] + jnp.minimum(jnp.floor(phase * nb).astype(jnp.int32), nb - 1)

    def at_clip_end(self, params: TrackingParams, info):
        lib = params.motion
        mid = info["motion_id"]
        return ~lib.wrap[mid] & (self.motion_time(info) >= lib.length[mid] - 1e-4)

    # ---- reset ------------------------------------------------------------------------
    def initial_state(self, params: TrackingParams, key):
        lib = params.motion
        c = self.cfg
        k_bin, k_u, k_m, k_n = jax.random.split(key, 4)
        if c.start == "first_frame":
            mid = mlib.sample_motions(lib, k_m, 1)[0].astype(jnp.int32)
            t = jnp.zeros((), jnp.float32)
        else:
            # "uniform" keeps default_params' weights (no failures: a clip by weight, then uniform time).
            b = jax.random.categorical(k_bin, jnp.log(jnp.maximum(params.bin_weights, 1e-30)))
            mid = params.bin_motion[b]
            i = (b - params.bin_start[mid]).astype(jnp.float32)
            t = (i + jax.random.uniform(k_u)) / params.num_bins[mid] * lib.length[mid]
        f = mlib.sample(lib, mid, t)
        qpos, qvel = self.reset_noise(params, f.qpos(lib), f.qvel(lib), k_n)
        qpos, qvel = self.full_state(qpos, qvel)
        J = self.num_joints
        nb = len(self.tracked_ids)
        info = {"step": jnp.zeros((), jnp.int32), "motion_id": mid, "motion_time0": t.astype(jnp.float32),
                "last_action": jnp.zeros((J,), jnp.float32), "prev_action": jnp.zeros((J,), jnp.float32),
                "fail_bin": self.time_bin(params, mid, t),
                # Filled from the reset pose by step(); zeros here only fix the shapes.
                "prev_body_pos": jnp.zeros((nb, 3), jnp.float32), "prev_body_rot": jnp.zeros((nb, 4), jnp.float32),
                "noise_key": k_n}
        return qpos, qvel, info

    def reset_noise(self, params: TrackingParams, qpos, qvel, key):
        """BeyondMimic's start-state noise (notes §4) times ``reset_noise_scale``."""
        s = params.reset_noise_scale
        k = jax.random.split(key, 5)
        u = lambda kk, r: s * jax.random.uniform(kk, (len(r),), minval=-1.0) * jnp.asarray(r, jnp.float32)  # noqa
        pos = qpos[0:3] + u(k[0], (0.05, 0.05, 0.01))
        e = u(k[1], (0.1, 0.1, 0.2))
        rot = rmath.normalize(rmath.quat_mul(quat_from_euler_xyz(e[0], e[1], e[2]), qpos[3:7]))
        jp = qpos[self.robot.qpos_idx] + u(k[2], (0.1,) * self.num_joints)
        jp = jnp.clip(jp, jnp.asarray(self.soft_low), jnp.asarray(self.soft_high))
        qpos = qpos.at[0:3].set(pos).at[3:7].set(rot).at[self.robot.qpos_idx].set(jp)
        # qvel[3:6] is the free joint's body-frame angular velocity (where mjlab adds it too).
        qvel = qvel.at[0:3].add(u(k[3], (0.5, 0.5, 0.2))).at[3:6].add(u(k[4], (0.52, 0.52, 0.78)))
        return qpos, qvel

    def reset(self, params, key):
        st = super().reset(params, key)
        info = {**st.info, "prev_body_pos": st.physics.xpos[self.tracked_ids],
                "prev_body_rot": st.physics.xquat[self.tracked_ids]}
        return st.replace(info=info)

    # ---- step -------------------------------------------------------------------------
    def step(self, params: TrackingParams, state, action):
        info = dict(state.info)
        a = self.normalized_action(action)
        t_next = self.motion_time(info) + self.control_dt
        info.update(prev_action=info["last_action"], last_action=a,
                    prev_body_pos=state.physics.xpos[self.tracked_ids],
                    prev_body_rot=state.physics.xquat[self.tracked_ids],
                    fail_bin=self.time_bin(params, info["motion_id"], t_next),
                    noise_key=jax.random.fold_in(info["noise_key"], info["step"]))
        at_end = self.at_clip_end(params, {**info, "step": info["step"] + 1})
        out = super().step(params, state.replace(info=info), action)
        if self.cfg.motion_end == "resample":
            # evaluate() reported the clip end as a success to get the reset; relabel it a truncation.
            relabel = at_end & (out.metrics["term_success"] > 0)
            m = dict(out.metrics)
            m["term_success"] = jnp.where(relabel, 0.0, m["term_success"])
            m["term_timeout"] = jnp.where(relabel, 1.0, m["term_timeout"])
            out = out.replace(truncated=out.truncated | relabel, metrics=m)
        return out

    # ---- reference --------------------------------------------------------------------
    def ref_frames(self, params: TrackingParams, info):
        """(previous reference frame, current frame, future frames [S]) in one MotionLib call."""
        t = self.motion_time(info)
        offs = np.array([-1, 0] + list(self.future_steps), np.float32) * self.control_dt
        times = t + jnp.asarray(offs)
        fr = mlib.sample(params.motion, jnp.broadcast_to(info["motion_id"], times.shape), times)
        take = lambda i: jax.tree_util.tree_map(lambda x: x[i], fr)  # noqa: E731
        return take(0), take(1), take(slice(2, None))

    # ---- observation ------------------------------------------------------------------
    def obs_selection(self, observation: str):
        """An actor set as (layout name, base terms of :meth:`obs_terms` concatenated) pairs.
        Each layout entry draws its own noise key, so ``full`` keeps ``command`` as one entry."""
        fut = ("future_ref_joint_pos", "future_ref_joint_vel") if self.future_steps else ()
        common = (("anchor_ori", ("anchor_ori",)),)
        tail = (("joint_pos", ("joint_pos",)), ("joint_vel", ("joint_vel",)), ("last_action", ("last_action",)))
        if observation == "full":
            return ((("command", ("ref_joint_pos", "ref_joint_vel") + fut), ("anchor_pos", ("anchor_pos",)))
                    + common + (("base_lin_vel", ("base_lin_vel",)), ("base_ang_vel", ("base_ang_vel",))) + tail)
        return (tuple((n, (n,)) for n in ("ref_joint_pos", "ref_joint_vel") + fut) + common
                + (("gyro", ("base_ang_vel",)),) + tail)

    def actor_obs_layout(self) -> list[dict]:
        sizes = {n: sum(self.term_sizes[t] for t in ts) for n, ts in self.actor_terms}
        return layout([n for n, _ in self.actor_terms], sizes, {k: self.cfg.obs_noise_scale * v
                                                               for k, v in OBS_NOISE.items()})

    def obs_terms(self, data, info, ref: MotionFrame, fut: MotionFrame) -> dict:
        """Every base term (noise-free) by name; the actor sets select from these."""
        a_pos, a_rot = data.xpos[self.anchor_id], data.xquat[self.anchor_id]
        r_pos, r_rot = ref.body_pos[self.anchor_id], ref.body_rot[self.anchor_id]
        sim = self.char_frame(data)
        return {"ref_joint_pos": ref.joint_pos, "ref_joint_vel": ref.joint_vel,
                "future_ref_joint_pos": fut.joint_pos.reshape(-1), "future_ref_joint_vel": fut.joint_vel.reshape(-1),
                "anchor_pos": rmath.quat_rotate_inv(a_rot, r_pos - a_pos),
                "anchor_ori": rot6d(rmath.quat_mul(rmath.quat_conj(a_rot), r_rot)),
                "base_lin_vel": rmath.quat_rotate_inv(sim.root_rot, sim.root_vel),
                "base_ang_vel": data.qvel[3:6],
                "joint_pos": sim.joint_pos - jnp.asarray(self.default_joint_pos),
                "joint_vel": sim.joint_vel,
                "last_action": info["last_action"]}

    def build_obs(self, params: TrackingParams, data, info, ref, fut):
        terms = self.obs_terms(data, info, ref, fut)
        join = lambda ts: terms[ts[0]] if len(ts) == 1 else jnp.concatenate([terms[t] for t in ts])  # noqa: E731
        actor = [join(ts) for _, ts in self.actor_terms]
        noisy = add_noise(actor, [OBS_NOISE.get(n, 0.0) for n, _ in self.actor_terms],
                          jax.random.fold_in(info["noise_key"], 1), params.obs_noise_scale)
        a_pos, a_rot = data.xpos[self.anchor_id], data.xquat[self.anchor_id]
        bp = rmath.quat_rotate_inv(a_rot[None], data.xpos[self.tracked_ids] - a_pos)
        br = rot6d(rmath.quat_mul(jnp.broadcast_to(rmath.quat_conj(a_rot), (len(self.tracked_ids), 4)),
                                  data.xquat[self.tracked_ids]))
        return jnp.concatenate(noisy + actor + [terms[t] for t in self.privileged_terms]
                               + [bp.reshape(-1), br.reshape(-1)] + self.critic_dr_terms(info))

    def observation(self, params, data, info):
        _, ref, fut = self.ref_frames(params, info)
        return self.build_obs(params, data, info, ref, fut)

    # ---- reward, termination, metrics -------------------------------------------------
    def undesired_contacts(self, params, data):
        z = physics.geoms_min_z(self._geom_type, self._geom_size, data, self.contact_geom_ids)
        low = (z < params.ground_contact_height).astype(jnp.float32)
        return jnp.sum(jax.ops.segment_max(low, self.contact_geom_group, num_segments=self.num_contact_bodies) > 0)

    def evaluate(self, params: TrackingParams, data, info):
        prev, ref, fut = self.ref_frames(params, info)
        obs = self.build_obs(params, data, info, ref, fut)
        dt = self.control_dt
        ids, aid = self.tracked_ids, self.anchor_id
        a_pos, a_rot = data.xpos[aid], data.xquat[aid]
        r_pos, r_rot = ref.body_pos[aid], ref.body_rot[aid]
        p_t, q_t = relative_targets(a_pos, a_rot, r_pos, r_rot, ref.body_pos[ids], ref.body_rot[ids])
        bp, br = data.xpos[ids], data.xquat[ids]
        # Finite-difference body velocities over one control step (reference and simulation).
        v_ref = (ref.body_pos[ids] - prev.body_pos[ids]) / dt
        w_ref = jax.vmap(rmath.quat_angular_velocity, (0, 0, None))(prev.body_rot[ids], ref.body_rot[ids], dt)
        v_sim = (bp - info["prev_body_pos"]) / dt
        w_sim = jax.vmap(rmath.quat_angular_velocity, (0, 0, None))(info["prev_body_rot"], br, dt)
        jp = data.qpos[self.robot.qpos_idx]
        sig = params.reward_sigma
        body_ang = rmath.quat_diff_angle(br, q_t)
        f = {"anchor_pos": exp_reward(jnp.sum((r_pos - a_pos) ** 2), sig[0]),
             "anchor_ori": exp_reward(rmath.quat_diff_angle(a_rot, r_rot) ** 2, sig[1]),
             "body_pos": exp_reward(jnp.mean(jnp.sum((p_t - bp) ** 2, -1)), sig[2]),
             "body_ori": exp_reward(jnp.mean(body_ang ** 2), sig[3]),
             "body_lin_vel": exp_reward(jnp.mean(jnp.sum((v_ref - v_sim) ** 2, -1)), sig[4]),
             "body_ang_vel": exp_reward(jnp.mean(jnp.sum((w_ref - w_sim) ** 2, -1)), sig[5]),
             "joint_pos": exp_reward(jnp.mean((ref.joint_pos - jp) ** 2), sig[6]),
             "action_rate": action_rate_penalty(info["last_action"], info["prev_action"]),
             "joint_limit": joint_limit_penalty(jp, jnp.asarray(self.soft_low), jnp.asarray(self.soft_high)),
             "undesired_contacts": self.undesired_contacts(params, data)}
        vals = jnp.stack([jnp.asarray(f[k], jnp.float32) for k in REWARD_TERMS])
        reward = jnp.sum(params.reward_w * vals) * dt
        ee_t = ref.body_pos[self.ee_ids, 2]  # z* of an end effector is its reference z (dq is a yaw)
        fails = compute_terminations(a_pos[2], r_pos[2], a_rot, r_rot, data.xpos[self.ee_ids, 2], ee_t,
                                     params.term_anchor_height, params.term_gravity_z, params.term_ee_height)
        failed = fails[0] | fails[1] | fails[2]
        succeeded = self.at_clip_end(params, info)
        metrics = {f"r_{k}": vals[i] for i, k in enumerate(REWARD_TERMS)}
        metrics.update(compute_tracking_error(self.char_frame(data), ref, ids, self.ee_ids))
        metrics.update(anchor_pos_err=jnp.linalg.norm(r_pos - a_pos),
                       anchor_rot_err=rmath.quat_diff_angle(a_rot, r_rot),
                       rel_body_pos_err=jnp.mean(jnp.linalg.norm(p_t - bp, axis=-1)),
                       ee_height_err=jnp.max(jnp.abs(ee_t - data.xpos[self.ee_ids, 2])),
                       **{f"fail_{k}": f.astype(jnp.float32) for k, f in zip(FAIL_CAUSES, fails)})
        return obs, reward, failed, succeeded, metrics


def _with_timestep(model, dt: float):
    """A copy of an MjModel with another physics timestep."""
    import copy
    m = copy.deepcopy(model)
    m.opt.timestep = dt
    return m


def make_tracking_env(cfg: TrackingConfig, motion):
    env = TrackingEnv(cfg)
    return env, env.default_params(motion)


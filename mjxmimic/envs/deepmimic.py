"""MimicKit's DeepMimic env (``deepmimic_env.py``) on MJX: motion tracking with
reference-state init, future-frame target observations, the 5-term tracking reward,
pose termination and tracking-error metrics.

    env = DeepMimicEnv(DeepMimicConfig(robot="g1"))
    params = env.default_params(load_motion_lib("motions/g1/walk.npz", "g1"))

Reference frames come from the MotionLib at ``motion_time = motion_time0 + step * dt``:
the reward and termination compare the simulated character after a step with the
reference at that time; the target observation samples ``tar_obs_steps`` control steps
ahead. Key-body positions of reference frames are the MotionLib's (forward kinematics of
the clip frames, interpolated), not FK of the interpolated pose as in MimicKit; the two
differ by the interpolation error only.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mjxmimic import math as rmath
from mjxmimic.envs.char import CharConfig, CharEnv, CharParams, heading_local, local_body_pos
from mjxmimic.envs.observations import layout
from mjxmimic.motions import lib as mlib
from mjxmimic.motions.lib import MotionFrame, MotionLib

__all__ = ["DeepMimicConfig", "DeepMimicParams", "DeepMimicEnv", "compute_phase_obs", "compute_tar_obs",
           "compute_reward", "compute_pose_fail", "compute_tracking_error", "REWARD_TERMS", "TRACKING_METRICS"]

REWARD_TERMS = ("pose", "vel", "root_pose", "root_vel", "key_pos")
TRACKING_METRICS = ("root_pos_err", "root_rot_err", "body_pos_err", "body_rot_err", "dof_vel_err",
                    "root_vel_err", "root_ang_vel_err", "joint_pos_err", "key_pos_err")


@dataclasses.dataclass(frozen=True)
class DeepMimicConfig(CharConfig):
    """Defaults are MimicKit's ``deepmimic_g1_env.yaml``."""

    episode_length: float = 10.0
    global_obs: bool = True
    root_height_obs: bool = True
    zero_center_action: bool = True
    enable_phase_obs: bool = False
    num_phase_encoding: int = 4
    enable_tar_obs: bool = True
    tar_obs_steps: tuple[int, ...] = (1, 2, 3)
    pose_termination: bool = True
    pose_termination_dist: float = 1.0     # m
    motion_end_termination: bool = True    # non-looping clips end the episode (success) at their end
    joint_err_w: Optional[tuple[float, ...]] = None       # per robot joint (robot.joint_names order); None: all 1
    reward_pose_w: float = 0.5
    reward_vel_w: float = 0.1
    reward_root_pose_w: float = 0.15
    reward_root_vel_w: float = 0.1
    reward_key_pos_w: float = 0.15
    reward_pose_scale: float = 0.25
    reward_vel_scale: float = 0.01
    reward_root_pose_scale: float = 5.0
    reward_root_vel_scale: float = 1.0
    reward_key_pos_scale: float = 10.0

    def __post_init__(self):
        super().__post_init__()
        if self.enable_tar_obs and len(self.tar_obs_steps) == 0:
            raise ValueError("tar_obs_steps must be non-empty when enable_tar_obs")
        if any(int(s) != s or s < 0 for s in self.tar_obs_steps):
            raise ValueError(f"tar_obs_steps must be non-negative integers, got {self.tar_obs_steps}")
        if self.num_phase_encoding < 0:
            raise ValueError("num_phase_encoding must be >= 0")


@struct.dataclass
class DeepMimicParams(CharParams):
    joint_err_w: jax.Array          # [J] per-joint pose/velocity error weights
    pose_termination_dist: jax.Array
    reward_pose_w: jax.Array
    reward_vel_w: jax.Array
    reward_root_pose_w: jax.Array
    reward_root_vel_w: jax.Array
    reward_key_pos_w: jax.Array
    reward_pose_scale: jax.Array
    reward_vel_scale: jax.Array
    reward_root_pose_scale: jax.Array
    reward_root_vel_scale: jax.Array
    reward_key_pos_scale: jax.Array


# ---------------------------------------------------------------------------------------
# pure functions (MimicKit's jit functions, for one env or any batch)
# ---------------------------------------------------------------------------------------
def compute_phase_obs(phase, num_phase_encoding: int):
    """[phase, sin(2π·2^k·phase)_k, cos(2π·2^k·phase)_k] for k < num_phase_encoding."""
    phase = jnp.asarray(phase)[..., None]
    if num_phase_encoding <= 0:
        return phase
    scale = 2.0 * jnp.pi * 2.0 ** jnp.arange(num_phase_encoding, dtype=phase.dtype)
    v = phase * scale
    return jnp.concatenate([phase, jnp.sin(v), jnp.cos(v)], axis=-1)


def compute_tar_obs(ref_root_pos, ref_root_rot, tar_root_pos, tar_root_rot, tar_joint_rot, tar_key_pos,
                    global_obs: bool, root_height_obs: bool):
    """Target-frame observation, flattened over the S target frames.

    ref_root_pos/rot [..., 3/4]: the frame the targets are expressed in (MimicKit: the
    character's root when global_obs, else the first target frame's root, heading only).
    tar_* [..., S, ...]. Per frame: root position relative to ref (z absolute when
    root_height_obs, else dropped), root rot tan-norm, joint rot tan-norm, key positions
    relative to that target's root.
    """
    pos = tar_root_pos - ref_root_pos[..., None, :]
    key = tar_key_pos - tar_root_pos[..., None, :]
    rot = tar_root_rot
    if not global_obs:
        h = rmath.heading_quat_inv(ref_root_rot)[..., None, :]
        pos = rmath.quat_rotate(h, pos)
        rot = rmath.quat_mul(h, rot)
        key = rmath.quat_rotate(h[..., None, :], key)
    if root_height_obs:
        pos = pos.at[..., 2].set(tar_root_pos[..., 2])
    else:
        pos = pos[..., :2]
    lead = tar_root_pos.shape[:-1]
    parts = [pos, rmath.quat_to_tan_norm(rot), rmath.quat_to_tan_norm(tar_joint_rot).reshape(lead + (-1,))]
    if key.shape[-2] > 0:
        parts.append(key.reshape(lead + (-1,)))
    obs = jnp.concatenate(parts, axis=-1)
    return obs.reshape(lead[:-1] + (-1,))


def compute_reward(root_pos, root_rot, root_vel, root_ang_vel, joint_rot, dof_vel, key_pos,
                   tar_root_pos, tar_root_rot, tar_root_vel, tar_root_ang_vel, tar_joint_rot, tar_dof_vel,
                   tar_key_pos, joint_err_w, dof_err_w, track_root_h: bool, track_root: bool,
                   w: Sequence, s: Sequence):
    """MimicKit's DeepMimic reward. ``w``/``s``: weights and scales of (pose, vel, root_pose,
    root_vel, key_pos). Returns (reward, {term: exp(-s·e)}, {term: e})."""
    pose_diff = rmath.quat_diff_angle(joint_rot, tar_joint_rot)
    pose_err = jnp.sum(joint_err_w * pose_diff ** 2, axis=-1)
    vel_err = jnp.sum(dof_err_w * (tar_dof_vel - dof_vel) ** 2, axis=-1)

    mask = jnp.array([float(track_root), float(track_root), float(track_root_h)])
    root_pos_err = jnp.sum(((tar_root_pos - root_pos) * mask) ** 2, axis=-1)

    key_rel = key_pos - root_pos[..., None, :]
    tar_key_rel = tar_key_pos - tar_root_pos[..., None, :]
    if not track_root:
        # Each one in its own heading frame (MimicKit convert_to_local).
        key_rel = local_body_pos(root_rot, key_rel)
        tar_key_rel = local_body_pos(tar_root_rot, tar_key_rel)
        root_rot, root_vel, root_ang_vel = heading_local(root_rot, root_vel, root_ang_vel)
        tar_root_rot, tar_root_vel, tar_root_ang_vel = heading_local(tar_root_rot, tar_root_vel, tar_root_ang_vel)
    root_rot_err = rmath.quat_diff_angle(root_rot, tar_root_rot) ** 2
    root_vel_err = jnp.sum((tar_root_vel - root_vel) ** 2, axis=-1)
    root_ang_vel_err = jnp.sum((tar_root_ang_vel - root_ang_vel) ** 2, axis=-1)
    key_err = jnp.sum((tar_key_rel - key_rel) ** 2, axis=(-2, -1))

    errs = {"pose": pose_err, "vel": vel_err, "root_pose": root_pos_err + 0.1 * root_rot_err,
            "root_vel": root_vel_err + 0.1 * root_ang_vel_err, "key_pos": key_err}
    terms = {k: jnp.exp(-sc * errs[k]) for k, sc in zip(REWARD_TERMS, s)}
    r = sum(wk * terms[k] for k, wk in zip(REWARD_TERMS, w))
    return r, terms, errs


def compute_pose_fail(root_pos, root_rot, body_pos, tar_root_pos, tar_root_rot, tar_body_pos, dist,
                      global_obs: bool, track_root: bool):
    """MimicKit's pose termination. body_pos/tar_body_pos [..., B, 3]: the bodies other than
    the root. Local (not global_obs): positions relative to the root in the root's full frame;
    global without root tracking: relative to the root, world-aligned; global with root
    tracking: world positions (root included via ``root_pos``), and the root itself fails
    farther than ``dist`` from its reference."""
    if not global_obs:
        rel = rmath.quat_rotate_inv(root_rot[..., None, :], body_pos - root_pos[..., None, :])
        tar_rel = rmath.quat_rotate_inv(tar_root_rot[..., None, :], tar_body_pos - tar_root_pos[..., None, :])
    elif not track_root:
        rel = body_pos - root_pos[..., None, :]
        tar_rel = tar_body_pos - tar_root_pos[..., None, :]
    else:
        rel = jnp.concatenate([root_pos[..., None, :], body_pos], axis=-2)
        tar_rel = jnp.concatenate([tar_root_pos[..., None, :], tar_body_pos], axis=-2)
    d2 = jnp.max(jnp.sum((tar_rel - rel) ** 2, axis=-1), axis=-1)
    return d2 > dist * dist


def compute_tracking_error(sim: MotionFrame, ref: MotionFrame, body_ids, key_body_ids) -> dict:
    """MimicKit's tracking errors (root pos m, root rot rad, mean body pos m relative to the
    root, mean body rot rad, mean |joint vel| error, mean |root vel| and |root ang vel|
    component errors) plus the mean joint angle error (rad) and mean key-body position
    error relative to the root (m)."""
    bp = sim.body_pos[..., body_ids, :] - sim.root_pos[..., None, :]
    tbp = ref.body_pos[..., body_ids, :] - ref.root_pos[..., None, :]
    kp = sim.body_pos[..., key_body_ids, :] - sim.root_pos[..., None, :]
    tkp = ref.body_pos[..., key_body_ids, :] - ref.root_pos[..., None, :]
    return {
        "root_pos_err": jnp.linalg.norm(ref.root_pos - sim.root_pos, axis=-1),
        "root_rot_err": rmath.quat_diff_angle(sim.root_rot, ref.root_rot),
        "body_pos_err": jnp.mean(jnp.linalg.norm(tbp - bp, axis=-1), axis=-1),
        "body_rot_err": jnp.mean(rmath.quat_diff_angle(sim.body_rot[..., body_ids, :],
                                                       ref.body_rot[..., body_ids, :]), axis=-1),
        "dof_vel_err": jnp.mean(jnp.abs(ref.joint_vel - sim.joint_vel), axis=-1),
        "root_vel_err": jnp.mean(jnp.abs(ref.root_vel - sim.root_vel), axis=-1),
        "root_ang_vel_err": jnp.mean(jnp.abs(ref.root_ang_vel - sim.root_ang_vel), axis=-1),
        "joint_pos_err": jnp.mean(jnp.abs(rmath.wrap_angle(ref.joint_pos - sim.joint_pos)), axis=-1),
        "key_pos_err": (jnp.mean(jnp.linalg.norm(tkp - kp, axis=-1), axis=-1) if len(key_body_ids)
                        else jnp.zeros(sim.root_pos.shape[:-1])),
    }


def _take(frame: MotionFrame, i):
    return jax.tree_util.tree_map(lambda x: x[i], frame)


# ---------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------
class DeepMimicEnv(CharEnv):
    """Track the clips of a MotionLib (MimicKit ``DeepMimicEnv``).

    Observation: char obs, [phase obs], [target obs of ``tar_obs_steps``]. Reward: the
    5-term tracking reward. Done: timeout (truncated), end of a non-looping clip (success),
    ground contact of a non-contact body or pose error > ``pose_termination_dist``
    (failure, not on the first step). Metrics: :data:`TRACKING_METRICS`, ``r_<term>`` for
    each reward term, and the char env's termination indicators.
    """

    def __init__(self, cfg: DeepMimicConfig, robot=None, model=None):
        super().__init__(cfg, robot, model)
        r = self.robot
        w = np.ones(self.num_joints, np.float32) if cfg.joint_err_w is None else np.asarray(cfg.joint_err_w,
                                                                                            np.float32)
        if w.shape != (self.num_joints,) or np.any(w < 0):
            raise ValueError(f"joint_err_w needs {self.num_joints} non-negative values (robot joint order), "
                             f"got {w.shape}")
        object.__setattr__(self, "_joint_err_w", w)
        object.__setattr__(self, "body_ids", np.arange(1, r.model.nbody, dtype=np.int32))
        object.__setattr__(self, "non_root_body_ids",
                           np.array([b for b in range(1, r.model.nbody) if b != r.root_body_id], np.int32))
        object.__setattr__(self, "tar_obs_steps", tuple(int(s) for s in cfg.tar_obs_steps))
        object.__setattr__(self, "obs_size", self.char_obs_size() + self.phase_obs_size() + self.tar_obs_size())

    @property
    def track_root(self) -> bool:
        return self.cfg.enable_tar_obs and self.cfg.global_obs

    def phase_obs_size(self) -> int:
        return (1 + 2 * self.cfg.num_phase_encoding) if self.cfg.enable_phase_obs else 0

    def actor_obs_layout(self) -> list[dict]:
        extra = [("phase", self.phase_obs_size()), ("target", self.tar_obs_size())]
        return self.char_obs_layout() + layout([n for n, k in extra if k], dict(extra), {})

    def tar_obs_size(self) -> int:
        if not self.cfg.enable_tar_obs:
            return 0
        per = (3 if self.cfg.root_height_obs else 2) + 6 + 6 * self.num_joints + 3 * len(self.key_body_ids)
        return per * len(self.tar_obs_steps)

    def default_params(self, motion: MotionLib) -> DeepMimicParams:
        if motion is None:
            raise ValueError("DeepMimicEnv needs a MotionLib")
        base = super().default_params(motion)
        c = self.cfg
        f = jnp.float32
        return DeepMimicParams(
            model=base.model, motion=base.motion, ground_contact_height=base.ground_contact_height,
            joint_err_w=jnp.asarray(self._joint_err_w), pose_termination_dist=f(c.pose_termination_dist),
            reward_pose_w=f(c.reward_pose_w), reward_vel_w=f(c.reward_vel_w),
            reward_root_pose_w=f(c.reward_root_pose_w), reward_root_vel_w=f(c.reward_root_vel_w),
            reward_key_pos_w=f(c.reward_key_pos_w), reward_pose_scale=f(c.reward_pose_scale),
            reward_vel_scale=f(c.reward_vel_scale), reward_root_pose_scale=f(c.reward_root_pose_scale),
            reward_root_vel_scale=f(c.reward_root_vel_scale), reward_key_pos_scale=f(c.reward_key_pos_scale))

    # ---- reference frames -------------------------------------------------------------
    def ref_frames(self, params: DeepMimicParams, info):
        """(reference frame now, target frames [S] at tar_obs_steps ahead) in one MotionLib call."""
        t = self.motion_time(info)
        offs = np.array([0] + list(self.tar_obs_steps if self.cfg.enable_tar_obs else []), np.float32)
        times = t + jnp.asarray(offs * self.control_dt)
        frames = mlib.sample(params.motion, jnp.broadcast_to(info["motion_id"], times.shape), times)
        return _take(frames, 0), _take(frames, slice(1, None))

    # ---- observation ------------------------------------------------------------------
    def deepmimic_obs(self, params: DeepMimicParams, frame: MotionFrame, tar: MotionFrame, info):
        c = self.cfg
        parts = [self.char_obs(frame)]
        if c.enable_phase_obs:
            phase = mlib.motion_phase(params.motion, info["motion_id"], self.motion_time(info))
            parts.append(compute_phase_obs(phase, c.num_phase_encoding))
        if c.enable_tar_obs:
            if c.global_obs:
                ref_pos, ref_rot = frame.root_pos, frame.root_rot
            else:
                ref_pos, ref_rot = tar.root_pos[0], tar.root_rot[0]
            parts.append(compute_tar_obs(ref_pos, ref_rot, tar.root_pos, tar.root_rot, self.joint_rot(tar.joint_pos),
                                         tar.body_pos[:, self.key_body_ids, :], c.global_obs, c.root_height_obs))
        return jnp.concatenate(parts, axis=-1)

    def observation(self, params, data, info):
        _, tar = self.ref_frames(params, info)
        return self.deepmimic_obs(params, self.char_frame(data), tar, info)

    # ---- reward / termination ---------------------------------------------------------
    def reward(self, params: DeepMimicParams, frame: MotionFrame, ref: MotionFrame):
        p = params
        kid = self.key_body_ids
        return compute_reward(
            frame.root_pos, frame.root_rot, frame.root_vel, frame.root_ang_vel, self.joint_rot(frame.joint_pos),
            frame.joint_vel, frame.body_pos[..., kid, :],
            ref.root_pos, ref.root_rot, ref.root_vel, ref.root_ang_vel, self.joint_rot(ref.joint_pos),
            ref.joint_vel, ref.body_pos[..., kid, :],
            p.joint_err_w, p.joint_err_w, track_root_h=self.cfg.root_height_obs, track_root=self.track_root,
            w=(p.reward_pose_w, p.reward_vel_w, p.reward_root_pose_w, p.reward_root_vel_w, p.reward_key_pos_w),
            s=(p.reward_pose_scale, p.reward_vel_scale, p.reward_root_pose_scale, p.reward_root_vel_scale,
               p.reward_key_pos_scale))

    def pose_fail(self, params: DeepMimicParams, frame: MotionFrame, ref: MotionFrame):
        b = self.non_root_body_ids
        return compute_pose_fail(frame.root_pos, frame.root_rot, frame.body_pos[..., b, :], ref.root_pos,
                                 ref.root_rot, ref.body_pos[..., b, :], params.pose_termination_dist,
                                 self.cfg.global_obs, self.track_root)

    def motion_ended(self, params: DeepMimicParams, info):
        if not self.cfg.motion_end_termination:
            return jnp.zeros((), bool)
        lib, mid = params.motion, info["motion_id"]
        return (~lib.wrap[mid]) & (self.motion_time(info) >= lib.length[mid])

    def evaluate(self, params: DeepMimicParams, data, info):
        frame = self.char_frame(data)
        ref, tar = self.ref_frames(params, info)
        obs = self.deepmimic_obs(params, frame, tar, info)
        reward, terms, _ = self.reward(params, frame, ref)
        failed = self.has_fallen(params, data, info)
        if self.cfg.enable_early_termination and self.cfg.pose_termination:
            failed = failed | (self.pose_fail(params, frame, ref) & (info["step"] > 1))
        metrics = compute_tracking_error(frame, ref, self.body_ids, self.key_body_ids)
        metrics.update({f"r_{k}": v for k, v in terms.items()})
        return obs, reward, failed, self.motion_ended(params, info), metrics

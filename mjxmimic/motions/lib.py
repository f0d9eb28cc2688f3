"""MotionLib: every clip of a dataset as device arrays, sampled in pure JAX.

    lib = load_motion_lib("dataset.yaml", "g1")          # or build_motion_lib(clips, robot)
    ids = sample_motions(lib, key, n)                      # weighted by the dataset weights
    t = sample_times(lib, key2, ids, truncate=0.5)         # uniform start times
    f = sample(lib, ids, t)                                # MotionFrame, any batch shape

Layout: the frames of all clips are concatenated along one axis (MimicKit's layout, no
padding: memory is the total number of frames), with per-motion start index, frame
count, fps, length, loop mode and weight. Every function here is pure and jit/vmap-able;
``lib`` is a pytree (pass it as an argument, or close over it).

Conventions (MimicKit's motion_lib):
- A clip lasts (T-1)/fps seconds. ``wrap`` clips loop: time is taken modulo the length
  and the root (and every body) is shifted by the whole number of cycles times the
  clip's horizontal root displacement (last frame - first frame, z zeroed), so a looped
  walk keeps walking forward. ``clamp`` clips hold their first/last frame outside [0, length].
- Positions are lerped, the root rotation slerped (body rotations nlerped: within 5e-4 rad
  of slerp on MimicKit's G1 clips, and cheaper), joint angles lerped along the
  shorter way round (so a hinge crossing +-pi does not spin).
- Velocities are the forward differences at the left frame of the interval, i.e. exactly
  the derivative of the interpolated trajectory; the last frame repeats the previous one
  (clamp) or the first one (wrap). Angular velocity is in the world frame.
- Body positions/orientations (``body_pos``/``body_rot``) are indexed by MuJoCo body id
  (row 0 is the world body), so ``f.body_pos[..., robot.key_body_ids, :]`` works. They are
  computed once at load (:func:`mjxmimic.motions.fk.body_poses`, MuJoCo C) at every frame and interpolated;
  :func:`sample_mjx` computes them in-graph with MJX kinematics instead (see
  benchmarks/motionlib.py for the speed comparison).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mjxmimic import math as rmath
from mjxmimic.motions.clip import SEAM_LIMIT_RAD, Clip, MotionError, resample
from mjxmimic.motions.fk import body_poses

__all__ = ["MotionLib", "MotionFrame", "build_motion_lib", "load_motion_lib", "sample", "sample_mjx",
           "sample_motions", "sample_times", "motion_phase"]


@struct.dataclass
class MotionFrame:
    root_pos: jax.Array      # [..., 3] world
    root_rot: jax.Array      # [..., 4] wxyz
    root_vel: jax.Array      # [..., 3] world linear velocity
    root_ang_vel: jax.Array  # [..., 3] world angular velocity
    joint_pos: jax.Array     # [..., J] robot.joint_names order
    joint_vel: jax.Array     # [..., J]
    body_pos: jax.Array      # [..., nbody, 3] world, by MuJoCo body id (0 = world)
    body_rot: jax.Array      # [..., nbody, 4] wxyz

    def qpos(self, lib: "MotionLib") -> jax.Array:
        """[..., nq] MuJoCo qpos of this frame."""
        shape = self.root_pos.shape[:-1] + lib.qpos0.shape
        q = jnp.broadcast_to(lib.qpos0, shape)
        q = q.at[..., 0:3].set(self.root_pos).at[..., 3:7].set(self.root_rot)
        return q.at[..., lib.qpos_idx].set(self.joint_pos)

    def qvel(self, lib: "MotionLib") -> jax.Array:
        """[..., nv] MuJoCo qvel (free joint: world linear velocity, body-frame angular velocity)."""
        shape = self.root_pos.shape[:-1] + (lib.nv,)
        v = jnp.zeros(shape, self.root_vel.dtype)
        v = v.at[..., 0:3].set(self.root_vel)
        v = v.at[..., 3:6].set(rmath.quat_rotate_inv(self.root_rot, self.root_ang_vel))
        return v.at[..., lib.qvel_idx].set(self.joint_vel)


@struct.dataclass
class MotionLib:
    # per frame, all clips concatenated: [F, ...]
    root_pos: jax.Array
    root_rot: jax.Array
    root_vel: jax.Array
    root_ang_vel: jax.Array
    joint_pos: jax.Array
    joint_vel: jax.Array
    body_pos: jax.Array      # [F, nbody, 3]
    body_rot: jax.Array      # [F, nbody, 4]
    # per motion: [M]
    start: jax.Array         # int32 index of the first frame
    num_frames: jax.Array    # int32
    fps: jax.Array
    length: jax.Array        # seconds, (T-1)/fps
    wrap: jax.Array          # bool
    weights: jax.Array       # normalised sampling weights
    wrap_delta: jax.Array    # [M, 3] root displacement per cycle (z = 0; 0 for clamp)
    # robot layout
    qpos0: jax.Array         # [nq] template for the non-actuated coordinates
    qpos_idx: jax.Array      # [J] int32
    qvel_idx: jax.Array      # [J] int32
    nv: int = struct.field(pytree_node=False, default=0)
    joint_names: tuple = struct.field(pytree_node=False, default=())
    body_names: tuple = struct.field(pytree_node=False, default=())
    motion_names: tuple = struct.field(pytree_node=False, default=())

    @property
    def num_motions(self) -> int:
        return self.start.shape[0]

    @property
    def total_frames(self) -> int:
        return self.root_pos.shape[0]


# ---------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------
def build_motion_lib(clips: Sequence[Clip], robot, weights: Sequence[float] | None = None,
                     fk_min_fps: float | None = None) -> MotionLib:
    """Stack ``clips`` (mapped to ``robot.joint_names``) into a :class:`MotionLib`.

    fk_min_fps: clips slower than this are upsampled by an integer factor at load with the
        same lerp/slerp that :func:`sample` uses, so root/joint values and velocities are
        unchanged while the precomputed body poses become exact FK on the finer grid
        (interpolation error falls with the square of the factor; memory grows with it).
    """
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    clips = list(clips)
    if not clips:
        raise MotionError("build_motion_lib: no clips")
    w = np.ones(len(clips)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(clips),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise MotionError(f"build_motion_lib: weights must be {len(clips)} non-negative numbers "
                          f"with a positive sum, got {w.tolist()}")
    per = {k: [] for k in ("root_pos", "root_rot", "root_vel", "root_ang_vel", "joint_pos", "joint_vel",
                           "body_pos", "body_rot")}
    nf, fps, wrap, delta = [], [], [], []
    for c in clips:
        c = c.for_robot(robot.joint_names)
        gap, joint = c.seam_joint_gap()
        if gap > SEAM_LIMIT_RAD:
            warnings.warn(f"clip '{c.name}' loops, but its last frame is {gap:.2f} rad from its first at {joint}: "
                          f"the reference jumps once per cycle, which can keep a policy from learning the clip "
                          f"(python -m mjxmimic.tools.clean closes the seam)", stacklevel=2)
        if fk_min_fps and c.fps < fk_min_fps and c.num_frames > 1:
            c = resample(c, c.fps * int(np.ceil(fk_min_fps / c.fps - 1e-9)))
        rot = c.root_rot / np.linalg.norm(c.root_rot, axis=-1, keepdims=True)
        c = c.replace(root_rot=rot)
        v, av, jv = c.velocities()
        xpos, xquat = body_poses(robot.model, c.qpos(robot))
        for k, a in (("root_pos", c.root_pos), ("root_rot", rot), ("root_vel", v), ("root_ang_vel", av),
                     ("joint_pos", c.joint_pos), ("joint_vel", jv), ("body_pos", xpos), ("body_rot", xquat)):
            per[k].append(np.asarray(a, np.float64))
        nf.append(c.num_frames)
        fps.append(c.fps)
        looped = c.loop == "wrap" and c.num_frames > 1
        wrap.append(looped)
        dl = c.root_pos[-1] - c.root_pos[0] if looped else np.zeros(3)
        delta.append([dl[0], dl[1], 0.0])
    nf = np.asarray(nf, np.int32)
    fps = np.asarray(fps, np.float64)
    f32 = lambda a: jnp.asarray(np.asarray(a, np.float32))  # noqa: E731
    return MotionLib(
        **{k: f32(np.concatenate(v, 0)) for k, v in per.items()},
        start=jnp.asarray(np.concatenate([[0], np.cumsum(nf)[:-1]]).astype(np.int32)),
        num_frames=jnp.asarray(nf), fps=f32(fps), length=f32((nf - 1) / fps), wrap=jnp.asarray(np.asarray(wrap)),
        weights=f32(w / w.sum()), wrap_delta=f32(delta),
        qpos0=f32(robot.model.qpos0), qpos_idx=jnp.asarray(robot.qpos_idx, jnp.int32),
        qvel_idx=jnp.asarray(robot.qvel_idx, jnp.int32), nv=int(robot.model.nv),
        joint_names=tuple(robot.joint_names), body_names=tuple(robot.body_names),
        motion_names=tuple(c.name for c in clips))


def load_motion_lib(source, robot, weights: Sequence[float] | None = None, fk_min_fps: float | None = None,
                    **load_kw) -> MotionLib:
    """``source``: a dataset YAML, one motion file, or a list of files/Clips. ``load_kw`` go to
    :func:`mjxmimic.motions.io.load_clip`; ``fk_min_fps`` as in :func:`build_motion_lib`."""
    from mjxmimic.motions.io import load_clip, load_dataset
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".yaml", ".yml"):
        ds = load_dataset(source, robot, **load_kw)
        return build_motion_lib(ds.clips, robot, ds.weights if weights is None else weights, fk_min_fps)
    if isinstance(source, (str, Path, Clip)):
        source = [source]
    clips = [s if isinstance(s, Clip) else load_clip(s, robot, **load_kw) for s in source]
    return build_motion_lib(clips, robot, weights, fk_min_fps)


# ---------------------------------------------------------------------------------------
# sampling (pure JAX)
# ---------------------------------------------------------------------------------------
def motion_phase(lib: MotionLib, motion_ids, times) -> jax.Array:
    """Phase in [0, 1]: wrapped for looping clips, clipped for the others."""
    length = jnp.maximum(lib.length[motion_ids], 1e-6)
    phase = times / length
    return jnp.clip(jnp.where(lib.wrap[motion_ids], phase - jnp.floor(phase), phase), 0.0, 1.0)


def sample_motions(lib: MotionLib, key, n: int) -> jax.Array:
    """n motion ids drawn with replacement by the dataset weights."""
    return jax.random.choice(key, lib.num_motions, (n,), replace=True, p=lib.weights)


def sample_times(lib: MotionLib, key, motion_ids, truncate: float = 0.0) -> jax.Array:
    """Uniform times in [0, length - truncate] (0 where the clip is shorter than ``truncate``)."""
    u = jax.random.uniform(key, jnp.shape(motion_ids))
    return u * jnp.maximum(lib.length[motion_ids] - truncate, 0.0)


def _blend(lib: MotionLib, motion_ids, times):
    motion_ids = jnp.asarray(motion_ids, jnp.int32)
    times = jnp.asarray(times, jnp.float32)
    n, fps, length, wrap = (lib.num_frames[motion_ids], lib.fps[motion_ids], lib.length[motion_ids],
                            lib.wrap[motion_ids])
    safe_len = jnp.maximum(length, 1e-6)
    cycles = jnp.where(wrap, jnp.floor(times / safe_len), 0.0)
    t = jnp.where(wrap, times - cycles * safe_len, jnp.clip(times, 0.0, length))
    f = t * fps
    i0 = jnp.clip(jnp.floor(f).astype(jnp.int32), 0, n - 1)
    i1 = jnp.minimum(i0 + 1, n - 1)
    blend = jnp.clip(f - i0, 0.0, 1.0)
    start = lib.start[motion_ids]
    offset = cycles[..., None] * lib.wrap_delta[motion_ids]
    return start + i0, start + i1, blend, offset


def _lerp(a, b, w):
    return a + (b - a) * w


def _nlerp(a, b, w):
    """Normalised lerp along the shorter arc. Between consecutive frames it matches slerp to
    <= 5e-4 rad on MimicKit's G1 clips (bodies turn up to 0.5 rad per frame there; the
    deviation grows with the cube of that angle) and is cheaper for [N, nbody, 4] arrays."""
    b = jnp.where(jnp.sum(a * b, axis=-1, keepdims=True) < 0, -b, b)
    return rmath.normalize(a + (b - a) * w)


def _interp_pose(lib: MotionLib, i0, i1, blend, offset):
    w = blend[..., None]
    root_pos = _lerp(lib.root_pos[i0], lib.root_pos[i1], w) + offset
    root_rot = rmath.quat_slerp(lib.root_rot[i0], lib.root_rot[i1], blend)
    j0 = lib.joint_pos[i0]
    joint_pos = j0 + rmath.wrap_angle(lib.joint_pos[i1] - j0) * w
    return root_pos, root_rot, joint_pos


@jax.jit
def sample(lib: MotionLib, motion_ids, times) -> MotionFrame:
    """Reference state of clips ``motion_ids`` at ``times`` (same shape, any batch shape).
    Jitted (also fine to call inside other jitted/vmapped code)."""
    i0, i1, blend, offset = _blend(lib, motion_ids, times)
    root_pos, root_rot, joint_pos = _interp_pose(lib, i0, i1, blend, offset)
    wb = blend[..., None, None]
    body_pos = _lerp(lib.body_pos[i0], lib.body_pos[i1], wb) + offset[..., None, :]
    body_rot = _nlerp(lib.body_rot[i0], lib.body_rot[i1], wb)
    return MotionFrame(root_pos=root_pos, root_rot=root_rot, root_vel=lib.root_vel[i0],
                       root_ang_vel=lib.root_ang_vel[i0], joint_pos=joint_pos, joint_vel=lib.joint_vel[i0],
                       body_pos=body_pos, body_rot=body_rot)


@jax.jit
def sample_mjx(lib: MotionLib, mjx_model, motion_ids, times) -> MotionFrame:
    """Like :func:`sample`, but body poses come from MJX forward kinematics of the
    interpolated qpos (exact FK, no precomputed body arrays needed)."""
    from mujoco import mjx

    i0, i1, blend, offset = _blend(lib, motion_ids, times)
    root_pos, root_rot, joint_pos = _interp_pose(lib, i0, i1, blend, offset)
    partial = MotionFrame(root_pos=root_pos, root_rot=root_rot, root_vel=lib.root_vel[i0],
                          root_ang_vel=lib.root_ang_vel[i0], joint_pos=joint_pos, joint_vel=lib.joint_vel[i0],
                          body_pos=None, body_rot=None)
    qpos = partial.qpos(lib)
    batch = qpos.shape[:-1]
    data0 = mjx.make_data(mjx_model)

    def fk(q):
        d = mjx.kinematics(mjx_model, data0.replace(qpos=q))
        return d.xpos, d.xquat

    xpos, xquat = jax.vmap(fk)(qpos.reshape(-1, qpos.shape[-1]))
    return partial.replace(body_pos=xpos.reshape(batch + xpos.shape[1:]),
                           body_rot=xquat.reshape(batch + xquat.shape[1:]))

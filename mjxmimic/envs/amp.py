"""MimicKit's AMP env (``amp_env.py``) on MJX, and the base of the task envs.

    env = AMPEnv(AMPEnvConfig(robot="k1"))
    params = env.default_params(load_motion_lib("motions/k1/locomotion.yaml", "k1"))
    state = env.reset(params, key)
    state = env.step(params, state, pd_target)     # state.info["disc_obs"]: [disc_obs_size]
    demo = env.demo_disc_obs(params, key, n)       # [n, disc_obs_size], in-graph

Discriminator observation (MimicKit ``compute_disc_obs``): ``num_disc_obs_steps`` (N)
consecutive character states, oldest first. Per state: root position relative to the
newest root (z replaced by the absolute root height), root rotation, joint rotations
(tan-norm), key-body positions relative to that state's root, root linear and angular
velocity, joint velocities; everything rotated by the inverse heading of the newest
state unless ``global_obs``. It is built by ONE function, :func:`disc_obs`, from a
history of :class:`~mjxmimic.motions.lib.MotionFrame` s: the agent's history holds
``CharEnv.char_frame`` of the simulated states (``info["amp_hist"]``), demo histories are
MotionLib frames at t0 - k*dt (random clip by weight, uniform t0), so a character placed
exactly on the reference gets exactly the demo's disc obs.

Env contract for the AMP learner (mjxmimic.learning.amp): ``env.disc_obs_size``,
``state.info["disc_obs"]`` after every step (the pre-auto-reset value, as MimicKit
records it), ``env.demo_disc_obs(params, key, n)``.

Episodes: reference-state init from the MotionLib (its history is filled from the clip
at t0 - k*dt, MimicKit ``_reset_disc_hist``), early termination on falls (a non-contact
body touching the ground), timeout. The env reward is the task reward (0 for plain AMP);
the learner adds the style reward. There is no tracking reward.

Observation (``observation``): ``full`` = MimicKit's char obs + the task obs; ``robot`` =
[projected gravity, gyro, joint pos − default, joint vel, last action (the PD target mapped
back onto the policy's [-1, 1]), task obs] with uniform noise (``obs_noise_scale`` times
:data:`~mjxmimic.envs.observations.ROBOT_NOISE`; none on the task terms), then the full obs
appended noise-free for the critic (``actor_obs_size`` = the robot part). With
``critic_dr_obs`` and domain randomisation on, the critic also reads the env's randomised
parameters (:func:`~mjxmimic.envs.randomize.dr_obs`, ``dr_obs_size`` numbers) at the very end.
The discriminator's observation is the same for both.

The episode template is CharEnv's ``reset``/``step``; AMPEnv fills its hooks (``init_info``
and ``post_physics`` keep the disc history, ``evaluate_step`` runs the task). Task envs
(tasks.py; the ball tasks kick.py and dribble.py, through ball.py) subclass :class:`AMPEnv`
and override the task hooks ``task_obs_size``, :meth:`~mjxmimic.envs.char.CharEnv.task_init`,
:meth:`AMPEnv.task_obs`, :meth:`AMPEnv.task_step` and ``task_metric_names``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from mjxmimic import math as rmath
from mjxmimic.envs.char import CharConfig, CharEnv, CharParams, joint_rotations
from mjxmimic.envs.deepmimic import compute_tar_obs
from mjxmimic.envs.observations import ROBOT_NOISE, add_noise, gyro, layout, layout_size, projected_gravity
from mjxmimic.motions import lib as mlib
from mjxmimic.motions.lib import MotionFrame, MotionLib
from mjxmimic.paths import REPO_ROOT

__all__ = ["AMPEnvConfig", "AMPEnv", "make_amp_env", "disc_obs", "disc_obs_frame_size", "static_joint_mask",
           "history_fill", "history_push", "demo_history", "load_style_motions"]


@dataclasses.dataclass(frozen=True)
class AMPEnvConfig(CharConfig):
    """MimicKit ``amp_*_env.yaml`` settings (task envs extend it)."""

    robot: str = "k1"
    episode_length: float = 10.0
    global_obs: bool = False
    root_height_obs: bool = True
    zero_center_action: bool = True
    num_disc_obs_steps: int = 10
    disc_dof_vel_obs: bool = True
    # Joints whose angle spans less than this (rad) over every frame of the style data are left
    # out of the disc obs (their rotation and velocity zeroed for demo and agent alike). A joint
    # the clips never move is a point in the demo data that the agent's servo jitter (~2e-3 rad)
    # never hits, and the normalised disc obs turns that into a perfect separator (the K1 clips
    # hold the head, elbows and shoulder roll still). The pose still shows through the key bodies.
    # 0 keeps every joint (MimicKit); on MimicKit's G1 clips no joint is that still.
    disc_static_joint_tol: float = 1e-3
    # Style datasets merged into one MotionLib (each a clip or a dataset YAML, relative to the
    # repo root), with one weight per file (a dataset's clip weights are scaled to sum to it).
    # Used when the config has no ``motion_file``; see :func:`load_style_motions`.
    motion_files: tuple[str, ...] = ()
    motion_file_weights: Optional[tuple[float, ...]] = None
    obs_noise_scale: float = 1.0        # times ROBOT_NOISE, observation "robot" only (full has no noise)
    # Observation "robot": append the env's domain-randomisation values (randomize.dr_obs) to the
    # critic's part; privileged, the actor never sees them. No effect without randomisation.
    critic_dr_obs: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_disc_obs_steps < 1:
            raise ValueError("num_disc_obs_steps must be >= 1")
        if self.motion_file_weights is not None and len(self.motion_file_weights) != len(self.motion_files):
            raise ValueError("motion_file_weights needs one weight per entry of motion_files")
        if self.obs_noise_scale < 0:
            raise ValueError("obs_noise_scale must be >= 0")
        if self.critic_dr_obs and self.observation != "robot":
            raise ValueError("critic_dr_obs needs observation: robot (with full, actor and critic share one obs)")
        if self.disc_static_joint_tol < 0:
            raise ValueError("disc_static_joint_tol must be >= 0")


# ---------------------------------------------------------------------------------------
# pure functions
# ---------------------------------------------------------------------------------------
def disc_obs_frame_size(num_joints: int, num_key_bodies: int, root_height_obs: bool = True,
                        dof_vel_obs: bool = True) -> int:
    return ((3 if root_height_obs else 2) + 6 + 6 * num_joints + 3 * num_key_bodies + 6
            + (num_joints if dof_vel_obs else 0))


def _hist_frame(frame: MotionFrame, key_body_ids) -> MotionFrame:
    """The part of a frame the history keeps: body arrays reduced to the key bodies."""
    return frame.replace(body_pos=frame.body_pos[..., key_body_ids, :], body_rot=None)


def disc_obs(hist: MotionFrame, joint_axes, global_obs: bool = False, root_height_obs: bool = True,
             dof_vel_obs: bool = True, world_root_pos: bool = False, joint_mask=None) -> jax.Array:
    """Flat disc obs [..., N * frame_size] of a history (fields [..., N, ...], oldest first,
    ``body_pos`` = key-body world positions [..., N, K, 3]).

    Per frame: MimicKit's ``compute_tar_obs`` part (root pos rel. the newest root with
    absolute height, root rot, joint rots, key positions rel. their root) then the velocity
    part (root vel, root ang vel, joint vel), all in the newest frame's heading frame
    unless ``global_obs``. ``world_root_pos`` (with ``global_obs``; ADD): the root position
    is the world one, so a drift from the reference shows in the difference. ``joint_mask``
    [J] (0/1): joints with 0 enter as angle 0 and velocity 0 (see :func:`static_joint_mask`).
    """
    if joint_mask is not None:
        hist = hist.replace(joint_pos=hist.joint_pos * joint_mask, joint_vel=hist.joint_vel * joint_mask)
    n = hist.root_pos.shape[-2]
    lead = hist.root_pos.shape[:-2]
    ref_pos, ref_rot = hist.root_pos[..., -1, :], hist.root_rot[..., -1, :]
    if world_root_pos:
        if not global_obs:
            raise ValueError("disc_obs: world_root_pos needs global_obs")
        ref_pos = jnp.zeros_like(ref_pos)
    pos_obs = compute_tar_obs(ref_pos, ref_rot, hist.root_pos, hist.root_rot,
                              joint_rotations(hist.joint_pos, joint_axes), hist.body_pos, global_obs,
                              root_height_obs).reshape(lead + (n, -1))
    vel, ang = hist.root_vel, hist.root_ang_vel
    if not global_obs:
        h = rmath.heading_quat_inv(ref_rot)[..., None, :]
        vel, ang = rmath.quat_rotate(h, vel), rmath.quat_rotate(h, ang)
    parts = [pos_obs, vel, ang] + ([hist.joint_vel] if dof_vel_obs else [])
    return jnp.concatenate(parts, axis=-1).reshape(lead + (-1,))


def static_joint_mask(joint_pos, tol: float) -> jax.Array:
    """[J] float 0/1: 0 for joints whose angle spans less than ``tol`` over the frames
    ``joint_pos`` [F, J] (a MotionLib's, every clip), 1 for the others (all 1 for tol 0)."""
    joint_pos = jnp.asarray(joint_pos)
    span = jnp.max(joint_pos, axis=0) - jnp.min(joint_pos, axis=0)
    return (span >= tol).astype(jnp.float32)


def history_fill(frame: MotionFrame, n: int) -> MotionFrame:
    """A history of n copies of one (history) frame."""
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x[None], (n,) + x.shape), frame)


def history_push(hist: MotionFrame, frame: MotionFrame) -> MotionFrame:
    """Drop the oldest frame and append ``frame`` as the newest."""
    return jax.tree_util.tree_map(lambda h, x: jnp.concatenate([h[1:], x[None]], axis=0), hist, frame)


def demo_history(lib: MotionLib, motion_ids, times0, n: int, dt: float, key_body_ids) -> MotionFrame:
    """Reference history [..., n, ...] at times t0 - (n-1-k)·dt, k = 0..n-1 (oldest first).

    Only the key bodies' positions are interpolated (the same lerp ``mlib.sample`` does for
    every body), so a large demo batch does not touch the other bodies' arrays."""
    offsets = -dt * jnp.arange(n - 1, -1, -1, dtype=jnp.float32)
    times = jnp.asarray(times0, jnp.float32)[..., None] + offsets
    ids = jnp.broadcast_to(jnp.asarray(motion_ids, jnp.int32)[..., None], times.shape)
    lib_k = lib.replace(body_pos=lib.body_pos[:, np.asarray(key_body_ids)], body_rot=lib.body_rot[:, :0])
    return mlib.sample(lib_k, ids, times).replace(body_rot=None)


def load_style_motions(files, robot, weights=None) -> MotionLib:
    """One MotionLib from several clips / dataset YAMLs (paths relative to the repo root);
    dataset ``i`` gets total sampling weight ``weights[i]`` (default 1 each)."""
    from mjxmimic.motions.io import load_clip, load_dataset
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    files = list(files)
    if not files:
        raise ValueError("load_style_motions: no motion files")
    weights = [1.0] * len(files) if weights is None else list(weights)
    clips, w = [], []
    for f, wf in zip(files, weights):
        p = Path(f)
        p = p if p.is_absolute() else REPO_ROOT / p
        if not p.exists():
            raise ValueError(f"motion file {p} does not exist")
        if p.suffix.lower() in (".yaml", ".yml"):
            ds = load_dataset(p, robot)
            s = float(sum(ds.weights))
            clips += list(ds.clips)
            w += [wf * x / s for x in ds.weights]
        else:
            clips.append(load_clip(p, robot))
            w.append(float(wf))
    return mlib.build_motion_lib(clips, robot, w)


# ---------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------
class AMPEnv(CharEnv):
    """AMP character env (no task). Static attributes beyond CharEnv's: ``disc_obs_size``,
    ``num_disc_obs_steps``, ``task_obs_size``."""

    terminal_info_keys = ("disc_obs",)
    task_metric_names: tuple = ()
    robot_obs = True

    def __init__(self, cfg: AMPEnvConfig, robot=None, model=None):
        super().__init__(cfg, robot, model)
        j, k = self.num_joints, len(self.key_body_ids)
        object.__setattr__(self, "num_disc_obs_steps", int(cfg.num_disc_obs_steps))
        object.__setattr__(self, "disc_obs_size", cfg.num_disc_obs_steps * disc_obs_frame_size(
            j, k, cfg.root_height_obs, cfg.disc_dof_vel_obs))
        full_size = self.char_obs_size() + self.task_obs_size
        if cfg.observation == "robot":
            object.__setattr__(self, "actor_obs_size", layout_size(self.actor_obs_layout()))
            object.__setattr__(self, "obs_size", self.actor_obs_size + full_size + self.dr_obs_size)
        else:
            object.__setattr__(self, "obs_size", full_size)
        self.stack_obs_history()

    # ---- observation sets -------------------------------------------------------------
    def actor_obs_layout(self) -> list[dict]:
        task = layout(["task"], {"task": self.task_obs_size}, {}) if self.task_obs_size else []
        if self.cfg.observation == "full":
            return self.char_obs_layout() + task
        J = self.num_joints
        sizes = {"projected_gravity": 3, "gyro": 3, "joint_pos": J, "joint_vel": J, "last_action": J}
        noise = {k: self.cfg.obs_noise_scale * v for k, v in ROBOT_NOISE.items()}
        return layout(list(sizes), sizes, noise) + task

    def robot_terms(self, frame: MotionFrame, data: mjx.Data, info: dict) -> list:
        """The robot-side actor terms (noise-free), in layout order (without the task)."""
        return [projected_gravity(frame.root_rot), gyro(data.qvel),
                frame.joint_pos - jnp.asarray(self.default_joint_pos), frame.joint_vel, info["last_action"]]

    def normalized_action(self, action):
        """The policy's action in [-1, 1] of a PD target (the learner's affine map inverted;
        clipped to the action bounds as the env applies it)."""
        lo, hi = jnp.asarray(self.action_low), jnp.asarray(self.action_high)
        return (self.action_to_target(action) - 0.5 * (hi + lo)) / (0.5 * (hi - lo))

    def initial_state(self, params, key):
        qpos, qvel, info = super().initial_state(params, key)
        if self.cfg.observation == "robot":
            info = {**info, "last_action": jnp.zeros((self.num_joints,), jnp.float32),
                    "noise_key": jax.random.fold_in(key, 1)}
        return qpos, qvel, info

    def record_action(self, info, action):
        if self.cfg.observation != "robot":
            return info
        return {**info, "last_action": self.normalized_action(action),
                "noise_key": jax.random.fold_in(info["noise_key"], info["step"])}

    # ---- task hooks (none for plain AMP; task_init is CharEnv's) ---------------------------
    task_key = True
    task_obs_size: int = 0

    def task_obs(self, params, data: mjx.Data, frame: MotionFrame, info: dict) -> jax.Array:
        return jnp.zeros((0,), jnp.float32)

    def task_step(self, params, key, prev_data: mjx.Data, data: mjx.Data, frame: MotionFrame, info: dict):
        """After the physics of a step: (task reward, failed, succeeded, metrics, info).
        Runs before the observation, so a target changed here is observed at once."""
        return jnp.zeros((), jnp.float32), jnp.zeros((), bool), jnp.zeros((), bool), {}, info

    # ---- disc obs ---------------------------------------------------------------------
    def hist_frame(self, frame: MotionFrame) -> MotionFrame:
        return _hist_frame(frame, self.key_body_ids)

    def disc_joint_mask(self, params: CharParams):
        """The style data's moving joints ([J] 0/1), or None (all) without a MotionLib or with
        ``disc_static_joint_tol`` 0. Computed in-graph from ``params.motion`` (a reduction over
        its frames, not batched over envs)."""
        if params.motion is None or self.cfg.disc_static_joint_tol <= 0:
            return None
        return static_joint_mask(params.motion.joint_pos, self.cfg.disc_static_joint_tol)

    def disc_obs(self, params: CharParams, hist: MotionFrame) -> jax.Array:
        c = self.cfg
        return disc_obs(hist, self.joint_axes, c.global_obs, c.root_height_obs, c.disc_dof_vel_obs,
                        joint_mask=self.disc_joint_mask(params))

    def demo_history(self, params: CharParams, motion_ids, times0) -> MotionFrame:
        return demo_history(params.motion, motion_ids, times0, self.num_disc_obs_steps, self.control_dt,
                            self.key_body_ids)

    def demo_disc_obs(self, params: CharParams, key, n: int) -> jax.Array:
        """[n, disc_obs_size] demo samples: random clips (dataset weights), uniform t0."""
        if params.motion is None:
            raise ValueError("demo_disc_obs needs a MotionLib in params")
        k_id, k_t = jax.random.split(key)
        ids = mlib.sample_motions(params.motion, k_id, n).astype(jnp.int32)
        t0 = mlib.sample_times(params.motion, k_t, ids)
        return self.disc_obs(params, self.demo_history(params, ids, t0))

    # ---- episode hooks (CharEnv's reset/step template) ------------------------------------
    def observation(self, params, data, info):
        frame = self.char_frame(data)
        full = [self.char_obs(frame), self.task_obs(params, data, frame, info)]
        if self.cfg.observation == "full":
            return jnp.concatenate(full, axis=-1)
        names = [t["name"] for t in self.actor_obs_layout()]
        terms = self.robot_terms(frame, data, info) + ([full[1]] if self.task_obs_size else [])
        noisy = add_noise(terms, [ROBOT_NOISE.get(n, 0.0) for n in names], jax.random.fold_in(info["noise_key"], 1),
                          self.cfg.obs_noise_scale)
        return jnp.concatenate(noisy + full + self.critic_dr_terms(info), axis=-1)

    def evaluate(self, params, data, info):
        """A state's obs with zero reward and task metrics (what ``reset`` reads: the obs and
        the metric keys); a step's task terms come from :meth:`evaluate_step`."""
        z = jnp.zeros((), jnp.float32)
        return (self.observation(params, data, info), z, jnp.zeros((), bool), jnp.zeros((), bool),
                {k: z for k in self.task_metric_names})

    def init_info(self, params, data, info):
        """The disc history of a new episode: the reference clip at t0 - k*dt (MimicKit
        ``_reset_disc_hist``), or the initial state repeated without a MotionLib."""
        if params.motion is not None:
            hist = self.demo_history(params, info["motion_id"], info["motion_time0"])
        else:
            hist = history_fill(self.hist_frame(self.char_frame(data)), self.num_disc_obs_steps)
        return {**info, "amp_hist": hist, "disc_obs": self.disc_obs(params, hist)}

    def post_physics(self, params, prev_data, data, info, unstable):
        hist = history_push(info["amp_hist"], self.hist_frame(self.char_frame(data)))
        # NaN guard: an unstable step must not feed non-finite samples to the discriminator.
        return {**info, "amp_hist": hist, "disc_obs": jnp.where(unstable, info["disc_obs"], self.disc_obs(params, hist))}

    def evaluate_step(self, params, key, prev_data, data, info):
        frame = self.char_frame(data)
        reward, task_failed, succeeded, metrics, info = self.task_step(params, key, prev_data, data, frame, info)
        obs = self.observation(params, data, info)
        failed = self.has_fallen(params, data, info) | task_failed
        return obs, reward, failed, succeeded, {k: metrics[k] for k in self.task_metric_names}, info


def make_amp_env(cfg: AMPEnvConfig, motion: Optional[MotionLib] = None, env_cls=AMPEnv, **kw):
    """(env, params) for a config: ``motion`` (from the config's motion_file) or, without it,
    the style datasets of ``cfg.motion_files``. The one builder of every AMP env (plain, steering,
    location, kick, dribble): ``env_cls`` picks the kind."""
    env = env_cls(cfg, **kw)
    if motion is None and cfg.motion_files:
        motion = load_style_motions(cfg.motion_files, env.robot, cfg.motion_file_weights)
    if motion is None:
        raise ValueError(f"{env_cls.__name__} needs style motions: set motion_file or motion_files")
    return env, env.default_params(motion)

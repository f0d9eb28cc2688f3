"""Task terms of MimicKit's task envs (task_steering_env, task_location_env), in JAX.

Pure single-env functions (observation, reward, target sampling); the envs that use
them (``SteeringEnv``, ``LocationEnv``) are AMP envs (mjxmimic.envs.amp) whose env
reward is the task reward, the learner adding the style reward.

Heading frame: ``rmath.heading_quat_inv(root_rot)`` removes the root's yaw, so every
task observation is invariant to a rotation of the whole scene about the world z axis.

One deliberate difference from MimicKit: MimicKit redraws an expired target before it
computes the step's reward; here the reward is computed on the target that was in force
while the action ran, and the new target is then observed at once.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from mjxmimic import math as rmath
from mjxmimic.envs.amp import AMPEnv, AMPEnvConfig

__all__ = ["SteeringConfig", "SteeringEnv", "LocationConfig", "LocationEnv", "to_heading_frame", "steering_obs",
           "steering_reward", "sample_steering_target", "location_obs", "location_reward", "sample_location_target",
           "facing_dir", "speed_toward_reward"]


def to_heading_frame(root_rot, v):
    """Rotate world vector(s) v [..., 3] into the root's heading frame (yaw removed)."""
    return rmath.quat_rotate(rmath.heading_quat_inv(root_rot), v)


def _xy3(v2):
    return jnp.concatenate([v2, jnp.zeros_like(v2[..., :1])], axis=-1)


def facing_dir(root_rot):
    """World xy direction the root faces (its heading), unit length."""
    h = rmath.heading(root_rot)
    return jnp.stack([jnp.cos(h), jnp.sin(h)], axis=-1)


def _normalize2(v):
    n = jnp.linalg.norm(v, axis=-1, keepdims=True)
    return v / jnp.maximum(n, 1e-12)  # torch.nn.functional.normalize uses eps 1e-12


# --------------------------------------------------------------------------- steering
def steering_obs(root_rot, tar_dir, tar_speed, face_dir):
    """[local target dir (2), target speed (1), local facing dir (2)] (MimicKit order)."""
    local_tar = to_heading_frame(root_rot, _xy3(tar_dir))[..., :2]
    local_face = to_heading_frame(root_rot, _xy3(face_dir))[..., :2]
    return jnp.concatenate([local_tar, jnp.asarray(tar_speed)[..., None], local_face], axis=-1)


def steering_reward(root_pos, prev_root_pos, root_rot, tar_dir, tar_speed, face_dir, dt,
                    vel_err_scale=0.5, tar_reward_w=0.7, face_reward_w=0.3):
    """tar_w · exp(-s‖v* d - v_xy‖²) (0 when moving against d) + face_w · max(<face, heading>, 0);
    v is the root's average velocity over the control step."""
    root_vel = (root_pos - prev_root_pos) / dt
    tar_vel = tar_speed[..., None] * tar_dir
    err = jnp.sum(jnp.square(tar_vel - root_vel[..., :2]), axis=-1)
    tar_r = jnp.exp(-vel_err_scale * err)
    proj = jnp.sum(tar_dir * root_vel[..., :2], axis=-1)
    tar_r = jnp.where(proj < 0, 0.0, tar_r)
    face_r = jnp.maximum(jnp.sum(face_dir * facing_dir(root_rot), axis=-1), 0.0)
    return tar_reward_w * tar_r + face_reward_w * face_r


def sample_steering_target(key, speed_min, speed_max, rand_face_dir=False, rand_tar_dir=True):
    """(tar_dir [2], tar_speed [], face_dir [2]) as MimicKit ``_reset_tar``."""
    k1, k2, k3 = jax.random.split(key, 3)
    theta = jnp.where(rand_tar_dir, jax.random.uniform(k1, (), minval=-jnp.pi, maxval=jnp.pi), 0.0)
    face_theta = jnp.where(rand_face_dir, jax.random.uniform(k2, (), minval=-jnp.pi, maxval=jnp.pi), theta)
    speed = jax.random.uniform(k3, (), minval=speed_min, maxval=speed_max)
    return (jnp.stack([jnp.cos(theta), jnp.sin(theta)]), speed,
            jnp.stack([jnp.cos(face_theta), jnp.sin(face_theta)]))


# --------------------------------------------------------------------------- location
def location_obs(root_pos, root_rot, tar_pos):
    """Target position relative to the root, xy in the heading frame (2)."""
    return to_heading_frame(root_rot, tar_pos - root_pos)[..., :2]


def speed_toward_reward(speed, tar_speed, vel_err_scale):
    """exp(-s·max(v* - v, 0)²) for a speed v along a direction (full at v* or faster), 0 when
    v <= 0: MimicKit's location velocity term."""
    vel_err = jnp.maximum(tar_speed - speed, 0.0)
    return jnp.where(speed <= 0, 0.0, jnp.exp(-vel_err_scale * vel_err * vel_err))


def location_reward(root_pos, prev_root_pos, root_rot, tar_pos, tar_speed, dt, dist_threshold=0.5,
                    pos_err_scale=0.5, vel_err_scale=4.0, pos_reward_w=0.5, vel_reward_w=0.4, face_reward_w=0.1,
                    near_face_dir=None):
    """MimicKit ``compute_location_reward``: position, velocity-toward-target and facing terms;
    the last two are 1 once the squared distance is below ``dist_threshold`` (MimicKit
    compares the *squared* xy distance with it, and so do we). ``near_face_dir`` (a unit xy
    direction; not MimicKit's): once near, the facing term rewards facing it instead of being 1."""
    diff = (tar_pos - root_pos)[..., :2]
    pos_err = jnp.sum(jnp.square(diff), axis=-1)
    pos_r = jnp.exp(-pos_err_scale * pos_err)
    tar_dir = _normalize2(diff)
    root_vel = (root_pos - prev_root_pos) / dt
    vel_r = speed_toward_reward(jnp.sum(tar_dir * root_vel[..., :2], axis=-1), tar_speed, vel_err_scale)
    fwd = facing_dir(root_rot)
    face_r = jnp.maximum(jnp.sum(tar_dir * fwd, axis=-1), 0.0)
    near = pos_err < dist_threshold
    near_face_r = 1.0 if near_face_dir is None else jnp.maximum(jnp.sum(near_face_dir * fwd, axis=-1), 0.0)
    face_r = jnp.where(near, near_face_r, face_r)
    vel_r = jnp.where(near, 1.0, vel_r)
    return pos_reward_w * pos_r + vel_reward_w * vel_r + face_reward_w * face_r


def sample_location_target(key, root_pos, dist_min, dist_max):
    """Target at a uniform distance in [dist_min, dist_max] and uniform bearing around the root (z = 0)."""
    k1, k2 = jax.random.split(key)
    d = jax.random.uniform(k1, (), minval=dist_min, maxval=dist_max)
    th = jax.random.uniform(k2, (), minval=0.0, maxval=2.0 * jnp.pi)
    return jnp.stack([root_pos[0] + d * jnp.cos(th), root_pos[1] + d * jnp.sin(th), 0.0])


# --------------------------------------------------------------------------- envs

def _change_step(key, step, dt, tmin, tmax):
    dur = jax.random.uniform(key, (), minval=tmin, maxval=tmax)
    return step + jnp.maximum(1, jnp.round(dur / dt)).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class SteeringConfig(AMPEnvConfig):
    """MimicKit ``amp_steering_humanoid_env.yaml`` (speeds scaled for the smaller robots)."""

    rand_tar_dir: bool = True
    rand_face_dir: bool = False
    tar_speed_min: float = 0.1      # m/s (MimicKit humanoid: 0.5; K1's walk clips: 0.25-0.375)
    tar_speed_max: float = 0.4      # m/s (MimicKit humanoid: 5.0)
    tar_change_time_min: float = 4.0
    tar_change_time_max: float = 7.0
    reward_steering_tar_w: float = 0.7
    reward_steering_face_w: float = 0.3
    reward_steering_vel_scale: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        if not (0 <= self.tar_speed_min <= self.tar_speed_max):
            raise ValueError("need 0 <= tar_speed_min <= tar_speed_max")
        if not (0 < self.tar_change_time_min <= self.tar_change_time_max):
            raise ValueError("need 0 < tar_change_time_min <= tar_change_time_max")


class SteeringEnv(AMPEnv):
    """Move in a target direction at a target speed while facing a direction (MimicKit
    ``TaskSteeringEnv``). Task obs (5): target dir (heading frame, 2), target speed,
    facing dir (heading frame, 2). Reward: :func:`steering_reward` on the root's average
    velocity over the control step. Targets are redrawn every 4-7 s."""

    task_obs_size = 5
    task_metric_names = ("tar_speed", "root_speed_along_tar", "facing_err")

    def _new_target(self, key, info):
        c = self.cfg
        k1, k2 = jax.random.split(key)
        d, s, f = sample_steering_target(k1, c.tar_speed_min, c.tar_speed_max, c.rand_face_dir, c.rand_tar_dir)
        return {**info, "tar_dir": d, "tar_speed": s, "face_dir": f,
                "tar_change_step": _change_step(k2, info["step"], self.control_dt, c.tar_change_time_min,
                                                c.tar_change_time_max)}

    def task_init(self, params, key, qpos, qvel, info):
        return qpos, qvel, self._new_target(key, info)

    def task_obs(self, params, data, frame, info):
        return steering_obs(frame.root_rot, info["tar_dir"], info["tar_speed"], info["face_dir"])

    def task_step(self, params, key, prev_data, data, frame, info):
        c = self.cfg
        prev_pos = prev_data.qpos[0:3]
        r = steering_reward(frame.root_pos, prev_pos, frame.root_rot, info["tar_dir"], info["tar_speed"],
                            info["face_dir"], self.control_dt, c.reward_steering_vel_scale, c.reward_steering_tar_w,
                            c.reward_steering_face_w)
        v = (frame.root_pos - prev_pos)[:2] / self.control_dt
        metrics = {"tar_speed": info["tar_speed"], "root_speed_along_tar": jnp.dot(v, info["tar_dir"]),
                   "facing_err": jnp.arccos(jnp.clip(jnp.dot(facing_dir(frame.root_rot), info["face_dir"]), -1, 1))}
        change = info["step"] >= info["tar_change_step"]
        info = jax.tree_util.tree_map(lambda a, b: jnp.where(change, a, b), self._new_target(key, info), info)
        z = jnp.zeros((), bool)
        return r, z, z, metrics, info


@dataclasses.dataclass(frozen=True)
class LocationConfig(AMPEnvConfig):
    """MimicKit ``amp_location_humanoid_env.yaml`` / ``task_location_env`` defaults
    (speed and distances scaled for the smaller robots)."""

    episode_length: float = 20.0
    tar_speed: float = 0.3           # m/s (MimicKit humanoid: 1.0)
    tar_change_time_min: float = 5.0
    tar_change_time_max: float = 10.0
    tar_dist_min: float = 0.0
    tar_dist_max: float = 3.0        # m (MimicKit humanoid: 10)
    dist_threshold: float = 0.5      # compared with the squared xy distance, as MimicKit
    pos_err_scale: float = 0.5
    vel_err_scale: float = 4.0
    pos_reward_w: float = 0.5
    vel_reward_w: float = 0.4
    face_reward_w: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        if not (0 <= self.tar_dist_min <= self.tar_dist_max):
            raise ValueError("need 0 <= tar_dist_min <= tar_dist_max")
        if not (0 < self.tar_change_time_min <= self.tar_change_time_max):
            raise ValueError("need 0 < tar_change_time_min <= tar_change_time_max")


class LocationEnv(AMPEnv):
    """Walk to a target position (MimicKit ``TaskLocationEnv``). Task obs (2): target xy
    relative to the root in the heading frame. Reward: :func:`location_reward`. The target
    is redrawn around the character every 5-10 s."""

    task_obs_size = 2
    task_metric_names = ("tar_dist",)

    def _new_target(self, key, root_pos, info):
        c = self.cfg
        k1, k2 = jax.random.split(key)
        return {**info, "tar_pos": sample_location_target(k1, root_pos, c.tar_dist_min, c.tar_dist_max),
                "tar_change_step": _change_step(k2, info["step"], self.control_dt, c.tar_change_time_min,
                                                c.tar_change_time_max)}

    def task_init(self, params, key, qpos, qvel, info):
        return qpos, qvel, self._new_target(key, qpos[0:3], info)

    def task_obs(self, params, data, frame, info):
        return location_obs(frame.root_pos, frame.root_rot, info["tar_pos"])

    def task_step(self, params, key, prev_data, data, frame, info):
        c = self.cfg
        r = location_reward(frame.root_pos, prev_data.qpos[0:3], frame.root_rot, info["tar_pos"], c.tar_speed,
                            self.control_dt, c.dist_threshold, c.pos_err_scale, c.vel_err_scale, c.pos_reward_w,
                            c.vel_reward_w, c.face_reward_w)
        metrics = {"tar_dist": jnp.linalg.norm((info["tar_pos"] - frame.root_pos)[:2])}
        change = info["step"] >= info["tar_change_step"]
        info = jax.tree_util.tree_map(lambda a, b: jnp.where(change, a, b),
                                      self._new_target(key, frame.root_pos, info), info)
        z = jnp.zeros((), bool)
        return r, z, z, metrics, info

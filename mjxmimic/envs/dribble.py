"""Dribble: an AMP task env in which the robot moves a soccer ball to a target area several
metres away while keeping it close to its feet.

    env, params = make_amp_env(DribbleConfig(robot="k1", motion_files=("motions/k1/locomotion.yaml",)),
                               env_cls=DribbleEnv)

Scene, ball and episode layout: the ball tasks' (mjxmimic.envs.ball), with the dribble's
defaults: the ball starts just in front of the feet (``ball_dist_*`` from the root, within
``±ball_angle_max`` of the heading) and the target area 3-5 m beyond it.

Task obs (10), heading frame: ball position relative to the root (3), ball velocity (3),
target relative to the root (xy, 2), target relative to the ball (xy, 2).

Task reward (:func:`dribble_reward`), weights ``w_*``; d_f is the xy distance from the ball
centre to the nearer foot (the foot bodies' origins, :func:`feet_ball_dist`):
  * keep: exp(-keep_scale·max(d_f - keep_radius, 0)²), 1 while the ball is within the radius;
  * ball velocity: clip(v_bt / ball_speed, 0, 1), v_bt the ball's velocity toward the target
    (the kick's term, :func:`~mjxmimic.envs.ball.ball_target_terms`);
  * move: the root's speed v along a direction, exp(-move_vel_scale·max(move_speed - v, 0)²)
    and 0 for v <= 0 (:func:`~mjxmimic.envs.tasks.speed_toward_reward`); the direction is
    toward the ball while d_f > keep_radius, else toward the target;
  * ball position: exp(-ball_pos_scale·d_bt²), d_bt the ball-to-target distance;
  * a success bonus on the step of a success.

Episode: success when the ball's centre is in the target area, the robot has not fallen and
the ball was never lost (bootstrapped like a timeout unless ``success_bootstrap`` is false).
The ball is lost when d_f > keep_radius + lost_margin for more than ``lost_grace`` seconds in a
row (:func:`ball_lost`); that ends the episode as a failure, as a fall does; else the timeout
(``episode_length``, 20 s).

Metrics (per step): ``success``, ``ball_lost`` (ended by losing the ball, not by a fall),
``fall`` (1 on the step an episode ends that way; exclusive), ``ball_target_dist``,
``ball_feet_dist``, ``ball_speed``, the reward terms ``r_*``, and ``time_to_success`` /
``final_ball_target_dist`` on ending steps. :func:`dribble_episode_stats` gives the success,
ball-loss, fall and timeout rates.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from mjxmimic.envs.ball import BallTaskConfig, BallTaskEnv, ball_in_target, ball_target_terms, ball_task_obs, \
    episode_stats
from mjxmimic.envs.tasks import speed_toward_reward, to_heading_frame

__all__ = ["DribbleConfig", "DribbleEnv", "dribble_obs", "dribble_reward", "feet_ball_dist", "keep_close_reward",
           "ball_lost", "dribble_episode_stats", "DRIBBLE_REWARD_TERMS"]

DRIBBLE_REWARD_TERMS = ("keep", "ball_vel", "move", "ball_pos")


@dataclasses.dataclass(frozen=True)
class DribbleConfig(BallTaskConfig):
    """The ball and its terms are :class:`BallTaskConfig`'s; the layout defaults are the dribble's."""

    episode_length: float = 20.0
    ball_dist_min: float = 0.25               # m from the root: just ahead of the toes
    ball_dist_max: float = 0.4
    ball_angle_max: float = 0.3               # rad either side of the heading
    target_dist_min: float = 3.0              # m beyond the ball
    target_dist_max: float = 5.0
    target_angle_max: float = 0.5             # rad either side of the robot->ball direction
    ball_speed: float = 0.4                   # m/s toward the target for the full ball-velocity term
    ball_pos_scale: float = 0.1               # 1/m²: 0.2 at 4 m, 0.9 at 1 m
    # ---- keeping the ball
    keep_radius: float = 0.5                  # m, ball centre to the nearer foot (xy)
    keep_scale: float = 10.0                  # 1/m²: keep term 0.41 at 0.3 m beyond the radius
    lost_margin: float = 0.3                  # m beyond keep_radius that counts as away from the feet
    lost_grace: float = 1.0                   # s away from the feet before the ball counts as lost
    # ---- reward
    w_keep: float = 0.3
    w_ball_vel: float = 0.3
    w_move: float = 0.2
    w_ball_pos: float = 0.2
    move_speed: float = 0.4                   # m/s of the root toward the ball / target
    move_vel_scale: float = 4.0

    def __post_init__(self):
        super().__post_init__()
        if self.keep_radius <= 0:
            raise ValueError("keep_radius must be positive")
        if self.lost_margin < 0 or self.lost_grace < 0:
            raise ValueError("lost_margin and lost_grace must be >= 0")


# ---------------------------------------------------------------------------------------
# pure functions
# ---------------------------------------------------------------------------------------
def dribble_obs(root_pos, root_rot, ball_pos, ball_vel, tar_pos):
    """The ball tasks' obs (8) + target relative to the ball (xy, 2), heading frame."""
    return jnp.concatenate([ball_task_obs(root_pos, root_rot, ball_pos, ball_vel, tar_pos),
                            to_heading_frame(root_rot, tar_pos - ball_pos)[..., :2]], axis=-1)


def feet_ball_dist(feet_pos, ball_pos):
    """xy distance from the ball centre [..., 3] to the nearer foot (feet_pos [..., F, 3])."""
    return jnp.min(jnp.linalg.norm((feet_pos - ball_pos[..., None, :])[..., :2], axis=-1), axis=-1)


def keep_close_reward(d_feet, radius, scale):
    """exp(-scale·max(d_feet - radius, 0)²)."""
    excess = jnp.maximum(d_feet - radius, 0.0)
    return jnp.exp(-scale * excess * excess)


def _unit2(v):
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-6)


def dribble_reward(root_pos, prev_root_pos, feet_pos, ball_pos, ball_vel, tar_pos, dt, c: DribbleConfig):
    """(reward without the success bonus, {term: value}, ball-to-feet distance) -- see the
    module docstring."""
    d_f = feet_ball_dist(feet_pos, ball_pos)
    keep = keep_close_reward(d_f, c.keep_radius, c.keep_scale)
    _, ball_vel_r, ball_pos_r = ball_target_terms(ball_pos, ball_vel, tar_pos, c.ball_speed, c.ball_pos_scale,
                                                  c.ball_side_weight)
    goal = jnp.where((d_f > c.keep_radius)[..., None], ball_pos[..., :2], tar_pos[..., :2])
    root_vel = (root_pos - prev_root_pos)[..., :2] / dt
    move = speed_toward_reward(jnp.sum(_unit2(goal - root_pos[..., :2]) * root_vel, axis=-1), c.move_speed,
                               c.move_vel_scale)
    terms = {"keep": keep, "ball_vel": ball_vel_r, "move": move, "ball_pos": ball_pos_r}
    r = sum(getattr(c, f"w_{k}") * v for k, v in terms.items())
    return r, terms, d_f


def ball_lost(far_steps, d_feet, c: DribbleConfig, dt):
    """(consecutive steps the ball has been away from the feet, lost): away is d_feet >
    keep_radius + lost_margin; lost after more than ``lost_grace`` seconds of it."""
    far = d_feet > c.keep_radius + c.lost_margin
    far_steps = jnp.where(far, far_steps + 1, 0)
    return far_steps, far_steps > int(round(c.lost_grace / dt))


def dribble_episode_stats(metrics: dict) -> dict:
    """Success, ball-loss, fall and timeout rates (per episode), mean time to success and final
    ball-target distance, from per-step metric means (:func:`mjxmimic.envs.ball.episode_stats`)."""
    return episode_stats(metrics, DribbleEnv.episode_rates)


# ---------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------
class DribbleEnv(BallTaskEnv):
    """The ball-task env with the dribble hooks (build it with
    :func:`mjxmimic.envs.amp.make_amp_env`, ``env_cls=DribbleEnv``)."""

    task_name = "dribble"
    task_obs_size = 10
    task_metric_names = ("success", "ball_lost", "fall", "ball_target_dist", "ball_feet_dist", "ball_speed",
                         "time_to_success", "final_ball_target_dist") + tuple(f"r_{k}" for k in DRIBBLE_REWARD_TERMS)
    episode_rates = {"success_rate": "term_success", "ball_loss_rate": "ball_lost", "fall_rate": "fall",
                     "timeout_rate": "term_timeout"}

    def __init__(self, cfg: DribbleConfig, robot=None):
        super().__init__(cfg, robot)
        object.__setattr__(self, "foot_body_ids", self.robot.foot_body_ids.copy())

    def task_init(self, params, key, qpos, qvel, info):
        qpos, qvel, info = super().task_init(params, key, qpos, qvel, info)
        return qpos, qvel, {**info, "ball_far_steps": jnp.zeros((), jnp.int32)}

    def task_obs(self, params, data, frame, info):
        ball_pos, ball_vel = self.ball_state(data)
        return dribble_obs(frame.root_pos, frame.root_rot, ball_pos, ball_vel, info["tar_pos"])

    def task_step(self, params, key, prev_data, data, frame, info):
        c = self.cfg
        ball_pos, ball_vel = self.ball_state(data)
        r, terms, d_f = dribble_reward(frame.root_pos, prev_data.qpos[0:3], data.xpos[self.foot_body_ids], ball_pos,
                                       ball_vel, info["tar_pos"], self.control_dt, c)
        far_steps, lost = ball_lost(info["ball_far_steps"], d_f, c, self.control_dt)
        fell = self.has_fallen(params, data, info)
        d_bt, _, upright_inside = ball_in_target(ball_pos, info["tar_pos"], c.target_radius, fell)
        success = upright_inside & ~lost
        r = r + c.success_bonus * success
        metrics = {"success": success.astype(jnp.float32), "ball_lost": (lost & ~fell).astype(jnp.float32),
                   "fall": fell.astype(jnp.float32), "ball_feet_dist": d_f,
                   **self.outcome_metrics(info, d_bt, ball_vel, success, success | fell | lost),
                   **{f"r_{k}": v for k, v in terms.items()}}
        return r, lost, success, metrics, {**info, "ball_far_steps": far_steps}

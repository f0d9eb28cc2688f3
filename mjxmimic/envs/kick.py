"""Ball kick: an AMP task env in which the robot walks to a soccer ball and kicks it into
a target area.

    env, params = make_amp_env(KickConfig(robot="k1", motion_files=("motions/k1/locomotion.yaml",
                                                                    "motions/k1/kick.yaml")), env_cls=KickEnv)

Scene: the robot plus a free ball (mjxmimic.envs.scene; RoboCup KidSize FIFA size-1 ball,
rolling/torsional friction against the floor, contacts with the feet and shins only).
The ball, the episode layout and the ball terms are shared with the dribble task
(mjxmimic.envs.ball).

Each episode (after the AMP env's reference-state init of the robot):
  * the ball rests on the floor at distance ``ball_dist_min..ball_dist_max`` from the root
    and bearing within ``±ball_angle_max`` of the robot's heading (in front of it);
  * the target area (a disc of radius ``target_radius`` on the floor) is centred
    ``target_dist_min..target_dist_max`` beyond the ball, along the robot-to-ball
    direction turned by up to ``±target_angle_max``.

Task obs (8), all in the robot's heading frame: ball position relative to the root (3),
ball linear velocity (3), target centre relative to the root (xy, 2).

Task reward (:func:`kick_reward`), weights ``w_*``:
  * approach: MimicKit's location reward with the ball as the target (position,
    speed toward the ball, facing it; the last two saturate within ``approach_dist``);
    with ``approach_offset`` > 0 the target is that far behind the ball on the
    ball->target line, and within ``approach_dist`` of it the facing term rewards facing
    the target direction (lining up to kick);
    with ``approach_until_touch`` it is 1 from the step the ball first rolls faster than
    ``touch_speed`` to the episode's end, so a kicked ball rolling away costs nothing;
  * ball velocity: clip((v_bt - w_side·|v_side|) / v*, 0, 1), v_bt the ball's velocity toward
    the target, v_side across that line (``ball_side_weight``, 0 by default); 0 for a ball at
    rest or moving away, 1 at ``ball_speed`` or faster;
  * ball position: exp(-s·d_bt²), d_bt the ball-to-target distance;
  * a success bonus on the step the ball's centre enters the target area.
Episode ends on success (bootstrapped like a timeout unless ``success_bootstrap`` is
false), on a fall (a non-contact body on the ground), or on timeout.

Metrics (per step; the learner averages them over steps and envs): ``success`` and
``fall`` (1 on the step an episode ends that way; the same as the AMP env's
``term_success``/``term_fail``, which also has ``term_timeout``), ``ball_target_dist``,
``ball_speed``, the reward terms ``r_approach``/``r_ball_vel``/``r_ball_pos``, and two
episode quantities reported on the step an episode ends (0 otherwise):
``time_to_success`` (s, on success steps) and ``final_ball_target_dist`` (m, on every
ending step). :func:`kick_episode_stats` turns the means into per-episode numbers
(success rate, fall rate, mean time to success, mean final distance).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from mjxmimic import math as rmath
from mjxmimic.envs.ball import (BallTaskConfig, BallTaskEnv, ball_in_target, ball_layout, ball_target_terms,
                                ball_task_obs, episode_stats, place_ball_and_target, sample_ball_and_target)
from mjxmimic.envs.tasks import location_reward

__all__ = ["KickConfig", "KickEnv", "kick_obs", "kick_reward", "kick_episode_stats", "kick_layout",
           "place_ball_and_target", "sample_ball_and_target", "kick_success", "KICK_REWARD_TERMS"]

KICK_REWARD_TERMS = ("approach", "ball_vel", "ball_pos")

# The kick's names of the shared ball-task functions (sim2sim uses them).
kick_obs = ball_task_obs
kick_layout = ball_layout
kick_success = ball_in_target


@dataclasses.dataclass(frozen=True)
class KickConfig(BallTaskConfig):
    """The ball, layout, ball terms and success settings are :class:`BallTaskConfig`'s."""

    episode_length: float = 10.0
    # ---- reward
    w_approach: float = 0.3
    w_ball_vel: float = 0.4
    w_ball_pos: float = 0.3
    approach_speed: float = 0.3               # m/s toward the ball (K1's walk clips: 0.25-0.375)
    approach_dist: float = 0.35               # m: speed/facing terms saturate closer than this
    approach_pos_scale: float = 0.5
    approach_vel_scale: float = 4.0
    # Off (MimicKit's location reward throughout): the approach term falls as a kicked ball rolls
    # away, so it pays to keep the ball close. In sim2sim the deployed kick pushed the ball in short
    # touches and parked it under itself in 51 of its 59 timeouts (benchmarks/RESULTS.md). Trained
    # once on k1_kick_deploy with it on: no better (35.9% in MJX; RESULTS, "Holding the approach term").
    approach_until_touch: bool = False
    touch_speed: float = 0.1                  # m/s of the ball (xy) that counts as touched
    # 0: the approach term leads to the ball itself (MimicKit's location reward), so it pays as much
    # to reach the ball from any side, and the deployed kick sent the ball along its approach line,
    # correcting ~20% of the target's turn (RESULTS, "What the deployed kick does when it times out").
    # > 0: it leads to the point this far behind the ball on the ball->target line, and once there
    # its facing term rewards facing the target direction: the robot lines up to kick at the target.
    approach_offset: float = 0.0              # m

    def __post_init__(self):
        super().__post_init__()
        if self.touch_speed <= 0:
            raise ValueError(f"touch_speed must be positive (m/s), got {self.touch_speed}")
        if self.approach_offset < 0:
            raise ValueError(f"approach_offset must be >= 0 (m behind the ball), got {self.approach_offset}")


# ---------------------------------------------------------------------------------------
# pure functions
# ---------------------------------------------------------------------------------------
def kick_reward(root_pos, prev_root_pos, root_rot, ball_pos, ball_vel, tar_pos, dt, c: KickConfig, touched=None):
    """(reward without the success bonus, {term: value}) -- see the module docstring. ``touched``:
    whether the ball has been touched this episode (``approach_until_touch``; None: not tracked)."""
    goal, face = ball_pos, None
    if c.approach_offset > 0:   # the kicking spot behind the ball, facing the target
        face = rmath.normalize((tar_pos - ball_pos)[..., :2])
        goal = ball_pos.at[..., :2].add(-c.approach_offset * face)
    approach = location_reward(root_pos, prev_root_pos, root_rot, goal, c.approach_speed, dt,
                               dist_threshold=c.approach_dist ** 2, pos_err_scale=c.approach_pos_scale,
                               vel_err_scale=c.approach_vel_scale, pos_reward_w=0.5, vel_reward_w=0.4,
                               face_reward_w=0.1, near_face_dir=face)
    if touched is not None:
        approach = jnp.where(touched, 1.0, approach)
    _, ball_vel_r, ball_pos_r = ball_target_terms(ball_pos, ball_vel, tar_pos, c.ball_speed, c.ball_pos_scale,
                                                  c.ball_side_weight)
    terms = {"approach": approach, "ball_vel": ball_vel_r, "ball_pos": ball_pos_r}
    r = c.w_approach * approach + c.w_ball_vel * ball_vel_r + c.w_ball_pos * ball_pos_r
    return r, terms


def kick_episode_stats(metrics: dict) -> dict:
    """Per-episode kick statistics from per-step metric means (``env/<name>`` keys of the
    learner's metrics, or the bare names): success, fall and timeout rates, mean time to
    success, mean final distance (:func:`mjxmimic.envs.ball.episode_stats`)."""
    return episode_stats(metrics, KickEnv.episode_rates)


# ---------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------
class KickEnv(BallTaskEnv):
    """The AMP env on the robot + ball scene with the kick task hooks (build it with
    :func:`mjxmimic.envs.amp.make_amp_env`, ``env_cls=KickEnv``)."""

    task_name = "kick"
    task_obs_size = 8
    task_metric_names = ("success", "fall", "ball_target_dist", "ball_speed", "time_to_success",
                         "final_ball_target_dist") + tuple(f"r_{k}" for k in KICK_REWARD_TERMS)

    def task_init(self, params, key, qpos, qvel, info):
        qpos, qvel, info = super().task_init(params, key, qpos, qvel, info)
        if self.cfg.approach_until_touch:   # only then: the default env state keeps its layout
            info = {**info, "ball_touched": jnp.zeros((), bool)}
        return qpos, qvel, info

    def task_obs(self, params, data, frame, info):
        ball_pos, ball_vel = self.ball_state(data)
        return kick_obs(frame.root_pos, frame.root_rot, ball_pos, ball_vel, info["tar_pos"])

    def task_step(self, params, key, prev_data, data, frame, info):
        c = self.cfg
        ball_pos, ball_vel = self.ball_state(data)
        touched = None
        if c.approach_until_touch:
            touched = info["ball_touched"] | (jnp.linalg.norm(ball_vel[:2]) > c.touch_speed)
            info = {**info, "ball_touched": touched}
        r, terms = kick_reward(frame.root_pos, prev_data.qpos[0:3], frame.root_rot, ball_pos, ball_vel,
                               info["tar_pos"], self.control_dt, c, touched)
        fell = self.has_fallen(params, data, info)
        d_bt, success, upright_success = kick_success(ball_pos, info["tar_pos"], c.target_radius, fell)
        r = r + c.success_bonus * success
        metrics = {"success": upright_success.astype(jnp.float32), "fall": fell.astype(jnp.float32),
                   **self.outcome_metrics(info, d_bt, ball_vel, upright_success, success | fell),
                   **{f"r_{k}": v for k, v in terms.items()}}
        return r, jnp.zeros((), bool), success, metrics, info

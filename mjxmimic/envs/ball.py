"""Ball tasks: what the ball-kick (kick.py) and dribble (dribble.py) envs share.

    class MyBallEnv(BallTaskEnv):      # fill task_obs_size, task_obs, task_step, task_metric_names
        task_name = "mine"

* :class:`BallTaskConfig`: the ball (mjxmimic.envs.scene's :class:`BallConfig` fields), the
  episode layout (ball and target draws), the target area and the ball terms' scales.
* :class:`BallTaskEnv`: the AMP env on the robot + ball scene; its ``task_init`` places the
  ball at rest on the floor and the target area (:func:`sample_ball_and_target`), ``info["tar_pos"]``.
* Pure functions: the heading-frame ball obs (:func:`ball_task_obs`), the ball-to-target terms
  (:func:`ball_target_terms`), the target-area test (:func:`ball_in_target`) and per-episode
  rates from per-step metric means (:func:`episode_stats`).

Layout of an episode, in the robot's heading frame: the ball at distance
``ball_dist_min..ball_dist_max`` from the root and bearing within ``±ball_angle_max`` of the
heading; the target area (a disc of radius ``target_radius`` on the floor) centred
``target_dist_min..target_dist_max`` beyond the ball, along the robot-to-ball direction turned
by up to ``±target_angle_max``.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp

from mjxmimic import math as rmath
from mjxmimic.envs.amp import AMPEnv, AMPEnvConfig
from mjxmimic.envs.scene import BallConfig, build_ball_scene
from mjxmimic.envs.tasks import to_heading_frame

__all__ = ["BallTaskConfig", "BallTaskEnv", "ball_task_obs", "ball_target_terms", "ball_layout",
           "place_ball_and_target", "sample_ball_and_target", "ball_in_target", "episode_stats"]


@dataclasses.dataclass(frozen=True)
class BallTaskConfig(AMPEnvConfig):
    """Ball, layout and target settings of every ball task (defaults: the kick's)."""

    # ---- ball (see mjxmimic.envs.scene for the sources of the defaults)
    ball_radius: float = 0.07                 # m, FIFA size 1
    ball_mass: float = 0.205                  # kg
    ball_slide_friction: float = 0.5
    ball_torsional_friction: float = 0.005    # m
    ball_rolling_friction: float = 0.009      # m: ~0.6 m/s² rolling deceleration (2 m/s -> 3.2 m)
    ball_robot_friction: float = 0.5
    ball_contacts: str = "shins"              # robot geoms the ball touches: feet | shins | legs | all
    # ---- episode layout (robot heading frame)
    ball_dist_min: float = 0.5                # m from the root, in the xy plane
    ball_dist_max: float = 1.2
    ball_angle_max: float = 0.6               # rad either side of the heading
    target_dist_min: float = 1.0              # m beyond the ball
    target_dist_max: float = 2.0
    target_angle_max: float = 0.5             # rad either side of the robot->ball direction
    target_radius: float = 0.5                # m: the ball centre is in the target area this close
    # ---- ball terms and success
    ball_speed: float = 1.5                   # m/s toward the target that earns the full ball-velocity term
    ball_pos_scale: float = 0.5               # 1/m²: ball-position term exp(-s·d²)
    # 0: the ball-velocity term counts only the speed toward the target, so a ball kicked 0.5 rad
    # off the line still earns 0.88 of it. > 0 subtracts this times the speed across the line: the
    # deployed kick aimed along its approach line and corrected ~20% of the target's turn
    # (benchmarks/RESULTS.md, "What the deployed kick does when it times out").
    ball_side_weight: float = 0.0
    success_bonus: float = 5.0
    success_bootstrap: bool = True

    def __post_init__(self):
        super().__post_init__()
        if not (0 < self.ball_dist_min <= self.ball_dist_max):
            raise ValueError("need 0 < ball_dist_min <= ball_dist_max")
        if not (0 <= self.target_dist_min <= self.target_dist_max):
            raise ValueError("need 0 <= target_dist_min <= target_dist_max")
        if self.target_radius <= 0:
            raise ValueError("target_radius must be positive")
        if self.ball_speed <= 0:
            raise ValueError("ball_speed must be positive")
        if self.ball_side_weight < 0:
            raise ValueError(f"ball_side_weight must be >= 0, got {self.ball_side_weight}")
        self.ball_config()  # validates the ball fields

    def ball_config(self) -> BallConfig:
        return BallConfig(radius=self.ball_radius, mass=self.ball_mass,
                          floor_friction=(self.ball_slide_friction, self.ball_slide_friction,
                                          self.ball_torsional_friction, self.ball_rolling_friction,
                                          self.ball_rolling_friction),
                          robot_friction=self.ball_robot_friction, robot_contacts=self.ball_contacts)


# ---------------------------------------------------------------------------------------
# pure functions
# ---------------------------------------------------------------------------------------
def ball_task_obs(root_pos, root_rot, ball_pos, ball_vel, tar_pos):
    """[ball pos rel. root (3), ball vel (3), target rel. root (xy, 2)], heading frame."""
    return jnp.concatenate([to_heading_frame(root_rot, ball_pos - root_pos), to_heading_frame(root_rot, ball_vel),
                            to_heading_frame(root_rot, tar_pos - root_pos)[..., :2]], axis=-1)


def ball_target_terms(ball_pos, ball_vel, tar_pos, ball_speed, pos_scale, side_weight=0.0):
    """(d_bt, ball-velocity term, ball-position term): d_bt the ball-to-target xy distance;
    clip((v_bt - side_weight·|v_side|) / ball_speed, 0, 1) with v_bt the ball's xy velocity toward
    the target and v_side across that line (0 at rest or moving away, 1 at ``ball_speed`` or
    faster straight at it); exp(-pos_scale·d_bt²)."""
    bt = (tar_pos - ball_pos)[..., :2]
    d_bt = jnp.linalg.norm(bt, axis=-1)
    dir_bt = bt / jnp.maximum(d_bt, 1e-6)[..., None]
    v = ball_vel[..., :2]
    v_bt = jnp.sum(dir_bt * v, axis=-1)
    v_side = jnp.abs(dir_bt[..., 0] * v[..., 1] - dir_bt[..., 1] * v[..., 0])
    return d_bt, jnp.clip((v_bt - side_weight * v_side) / ball_speed, 0.0, 1.0), jnp.exp(-pos_scale * d_bt * d_bt)


def ball_layout(c: BallTaskConfig) -> dict:
    """The four uniform draws of an episode's layout, ``{name: (low, high)}`` in draw order:
    the ball's bearing off the heading and its distance, the target's turn off the robot->ball
    direction and its distance beyond the ball (policy.json records them for sim2sim)."""
    return {"ball_bearing": (-c.ball_angle_max, c.ball_angle_max), "ball_dist": (c.ball_dist_min, c.ball_dist_max),
            "target_turn": (-c.target_angle_max, c.target_angle_max),
            "target_dist": (c.target_dist_min, c.target_dist_max)}


def place_ball_and_target(root_pos, root_rot, ball_bearing, ball_dist, target_turn, target_dist):
    """(ball xy [2], target xy [2]) from the layout's draws (:func:`ball_layout`)."""
    bearing = rmath.heading(root_rot) + ball_bearing
    ball = root_pos[:2] + ball_dist * jnp.stack([jnp.cos(bearing), jnp.sin(bearing)])
    tdir = bearing + target_turn
    return ball, ball + target_dist * jnp.stack([jnp.cos(tdir), jnp.sin(tdir)])


def sample_ball_and_target(key, root_pos, root_rot, c: BallTaskConfig):
    """(ball xy [2], target xy [2]) for a new episode (see the module docstring)."""
    keys = jax.random.split(key, 4)
    u = [jax.random.uniform(k, (), minval=lo, maxval=hi) for k, (lo, hi) in zip(keys, ball_layout(c).values())]
    return place_ball_and_target(root_pos, root_rot, *u)


def ball_in_target(ball_pos, tar_pos, radius, fell):
    """(ball-target xy distance, ball centre in the target area, that and not fallen)."""
    d_bt = jnp.linalg.norm((tar_pos - ball_pos)[..., :2], axis=-1)
    inside = d_bt < radius
    return d_bt, inside, inside & ~fell


def episode_stats(metrics: Mapping, rates: Mapping[str, str]) -> dict:
    """Per-episode numbers from per-step metric means (``env/<name>`` keys of the learner's
    metrics, ``end/<name>`` means over episodes, or the bare names): ``rates`` maps an output
    name to the metric that is 1 on the steps an episode ends that way; every rate is over all
    ends (term_success + term_fail + term_timeout). Also ``time_to_success`` (s, mean over
    successes) and ``final_ball_target_dist`` (m, mean over ends); NaN without episodes."""
    def g(k):
        for name in (k, f"env/{k}", f"end/{k}"):
            if name in metrics:
                return float(metrics[name])
        return 0.0

    def nz(a, b):
        return a / b if b > 0 else float("nan")
    ends = g("term_success") + g("term_fail") + g("term_timeout")
    out = {name: nz(g(m), ends) for name, m in rates.items()}
    out.update(time_to_success=nz(g("time_to_success"), g("term_success")),
               final_ball_target_dist=nz(g("final_ball_target_dist"), ends))
    return out


# ---------------------------------------------------------------------------------------
# the env base
# ---------------------------------------------------------------------------------------
class BallTaskEnv(AMPEnv):
    """The AMP env on the robot + ball scene (build a subclass with
    :func:`mjxmimic.envs.amp.make_amp_env`). Subclasses set ``task_name`` and fill the task hooks
    ``task_obs_size``, ``task_obs``, ``task_step``, ``task_metric_names``; ``task_init`` (ball
    and target placement) is shared."""

    task_name = "ball"
    # output name -> the per-step metric counting those episode ends (see episode_stats)
    episode_rates = {"success_rate": "term_success", "fall_rate": "term_fail", "timeout_rate": "term_timeout"}

    def __init__(self, cfg: BallTaskConfig, robot=None):
        if robot is None:
            from mjxmimic.robots import load_robot
            robot = load_robot(cfg.robot)
        scene = build_ball_scene(robot, cfg.ball_config())
        super().__init__(cfg, robot, model=scene.model)
        object.__setattr__(self, "scene", scene)
        object.__setattr__(self, "success_bootstrap", bool(cfg.success_bootstrap))
        object.__setattr__(self, "ball_qpos_adr", int(scene.ball_qpos_adr))
        object.__setattr__(self, "ball_qvel_adr", int(scene.ball_qvel_adr))

    def task_spec(self) -> dict:
        """The task as a controller outside the env needs it (policy.json's ``task``, which
        sim2sim runs): the ball (:class:`~mjxmimic.envs.scene.BallConfig` fields), the layout's
        draws (:func:`ball_layout`) and the target area's radius."""
        c = self.cfg
        return {"name": self.task_name, "ball": dataclasses.asdict(c.ball_config()),
                "layout": {k: [float(lo), float(hi)] for k, (lo, hi) in ball_layout(c).items()},
                "target_radius": float(c.target_radius)}

    def episode_stats(self, metrics: Mapping) -> dict:
        """Per-episode rates of this task (:func:`episode_stats` with ``episode_rates``)."""
        return episode_stats(metrics, self.episode_rates)

    def outcome_metrics(self, info, d_bt, ball_vel, success, task_end) -> dict:
        """The per-step metrics every ball task reports: ``ball_target_dist`` (d_bt),
        ``ball_speed`` (xy), ``time_to_success`` (s, on a success step) and
        ``final_ball_target_dist`` (d_bt on the step an episode ends: ``task_end`` — the
        task's own endings — or the timeout)."""
        ended = task_end | (info["step"] >= self.max_episode_steps)
        t = info["step"].astype(jnp.float32) * self.control_dt
        return {"ball_target_dist": d_bt, "ball_speed": jnp.linalg.norm(ball_vel[:2]),
                "time_to_success": jnp.where(success, t, 0.0), "final_ball_target_dist": jnp.where(ended, d_bt, 0.0)}

    def ball_state(self, data):
        """(ball position [3], ball linear velocity [3], world)."""
        a, v = self.ball_qpos_adr, self.ball_qvel_adr
        return data.qpos[a:a + 3], data.qvel[v:v + 3]

    def task_init(self, params, key, qpos, qvel, info):
        c = self.cfg
        ball, tar = sample_ball_and_target(key, qpos[0:3], rmath.normalize(qpos[3:7]), c)
        a, v = self.ball_qpos_adr, self.ball_qvel_adr
        qpos = qpos.at[a:a + 7].set(jnp.concatenate([ball, jnp.array([c.ball_radius, 1.0, 0.0, 0.0, 0.0])]))
        qvel = qvel.at[v:v + 6].set(0.0)
        return qpos, qvel, {**info, "tar_pos": jnp.concatenate([tar, jnp.zeros((1,))])}

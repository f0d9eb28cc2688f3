"""Ball kick: an AMP task env in which the robot walks to a soccer ball and kicks it into
a target area.

    env, params = make_amp_env(KickConfig(robot="k1", motion_files=("motions/k1/locomotion.yaml",
                                                                    "motions/k1/kick.yaml")), env_cls=KickEnv)

Scene: the robot plus a free ball (mjxmimic.envs.scene; RoboCup KidSize FIFA size-1 ball,
rolling/torsional friction against the floor, contacts with the feet and shins only).

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
  * ball velocity: clip(v_bt / v*, 0, 1), v_bt the ball's velocity toward the target
    (0 for a ball at rest or moving away, 1 at ``ball_speed`` or faster);
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
import jax
import jax.numpy as jnp

from mjxmimic import math as rmath
from mjxmimic.envs.amp import AMPEnv, AMPEnvConfig
from mjxmimic.envs.scene import BallConfig, build_ball_scene
from mjxmimic.envs.tasks import location_reward, to_heading_frame

__all__ = ["KickConfig", "KickEnv", "kick_obs", "kick_reward", "kick_episode_stats", "kick_layout",
           "place_ball_and_target", "sample_ball_and_target", "kick_success", "KICK_REWARD_TERMS"]

KICK_REWARD_TERMS = ("approach", "ball_vel", "ball_pos")


@dataclasses.dataclass(frozen=True)
class KickConfig(AMPEnvConfig):
    episode_length: float = 10.0
    # ---- ball (see mjxmimic.envs.scene for the sources of the defaults)
    ball_radius: float = 0.07                 # m, FIFA size 1
    ball_mass: float = 0.205                  # kg
    ball_slide_friction: float = 0.5
    ball_torsional_friction: float = 0.005    # m
    ball_rolling_friction: float = 0.009      # m: ~0.6 m/s² rolling deceleration (2 m/s -> 3.2 m)
    ball_robot_friction: float = 0.5
    ball_contacts: str = "shins"              # robot geoms the ball touches: feet | shins | legs | all
    # ---- episode layout (robot heading frame)
    ball_dist_min: float = 0.5                # m from the root, in the xy plane (clear of the feet)
    ball_dist_max: float = 1.2
    ball_angle_max: float = 0.6               # rad either side of the heading
    target_dist_min: float = 1.0              # m beyond the ball
    target_dist_max: float = 2.0
    target_angle_max: float = 0.5             # rad either side of the robot->ball direction
    target_radius: float = 0.5                # m: success when the ball centre is this close
    # ---- reward
    w_approach: float = 0.3
    w_ball_vel: float = 0.4
    w_ball_pos: float = 0.3
    success_bonus: float = 5.0
    success_bootstrap: bool = True
    approach_speed: float = 0.3               # m/s toward the ball (K1's walk clips: 0.25-0.375)
    approach_dist: float = 0.35               # m: speed/facing terms saturate closer than this
    approach_pos_scale: float = 0.5
    approach_vel_scale: float = 4.0
    ball_speed: float = 1.5                   # m/s toward the target that earns the full ball-velocity term
    ball_pos_scale: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        if not (0 < self.ball_dist_min <= self.ball_dist_max):
            raise ValueError("need 0 < ball_dist_min <= ball_dist_max")
        if not (0 <= self.target_dist_min <= self.target_dist_max):
            raise ValueError("need 0 <= target_dist_min <= target_dist_max")
        if self.target_radius <= 0:
            raise ValueError("target_radius must be positive")
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
def kick_obs(root_pos, root_rot, ball_pos, ball_vel, tar_pos):
    """[ball pos rel. root (3), ball vel (3), target rel. root (xy, 2)], heading frame."""
    return jnp.concatenate([to_heading_frame(root_rot, ball_pos - root_pos), to_heading_frame(root_rot, ball_vel),
                            to_heading_frame(root_rot, tar_pos - root_pos)[..., :2]], axis=-1)


def kick_reward(root_pos, prev_root_pos, root_rot, ball_pos, ball_vel, tar_pos, dt, c: KickConfig):
    """(reward without the success bonus, {term: value}) -- see the module docstring."""
    approach = location_reward(root_pos, prev_root_pos, root_rot, ball_pos, c.approach_speed, dt,
                               dist_threshold=c.approach_dist ** 2, pos_err_scale=c.approach_pos_scale,
                               vel_err_scale=c.approach_vel_scale, pos_reward_w=0.5, vel_reward_w=0.4,
                               face_reward_w=0.1)
    bt = (tar_pos - ball_pos)[..., :2]
    d_bt = jnp.linalg.norm(bt, axis=-1)
    dir_bt = bt / jnp.maximum(d_bt, 1e-6)[..., None]
    v_bt = jnp.sum(dir_bt * ball_vel[..., :2], axis=-1)
    ball_vel_r = jnp.clip(v_bt / c.ball_speed, 0.0, 1.0)
    ball_pos_r = jnp.exp(-c.ball_pos_scale * d_bt * d_bt)
    terms = {"approach": approach, "ball_vel": ball_vel_r, "ball_pos": ball_pos_r}
    r = c.w_approach * approach + c.w_ball_vel * ball_vel_r + c.w_ball_pos * ball_pos_r
    return r, terms


def kick_layout(c: KickConfig) -> dict:
    """The four uniform draws of an episode's layout, ``{name: (low, high)}`` in draw order:
    the ball's bearing off the heading and its distance, the target's turn off the robot->ball
    direction and its distance beyond the ball (policy.json records them for sim2sim)."""
    return {"ball_bearing": (-c.ball_angle_max, c.ball_angle_max), "ball_dist": (c.ball_dist_min, c.ball_dist_max),
            "target_turn": (-c.target_angle_max, c.target_angle_max),
            "target_dist": (c.target_dist_min, c.target_dist_max)}


def place_ball_and_target(root_pos, root_rot, ball_bearing, ball_dist, target_turn, target_dist):
    """(ball xy [2], target xy [2]) from the layout's draws (:func:`kick_layout`)."""
    bearing = rmath.heading(root_rot) + ball_bearing
    ball = root_pos[:2] + ball_dist * jnp.stack([jnp.cos(bearing), jnp.sin(bearing)])
    tdir = bearing + target_turn
    return ball, ball + target_dist * jnp.stack([jnp.cos(tdir), jnp.sin(tdir)])


def sample_ball_and_target(key, root_pos, root_rot, c: KickConfig):
    """(ball xy [2], target xy [2]) for a new episode (see the module docstring)."""
    keys = jax.random.split(key, 4)
    u = [jax.random.uniform(k, (), minval=lo, maxval=hi) for k, (lo, hi) in zip(keys, kick_layout(c).values())]
    return place_ball_and_target(root_pos, root_rot, *u)


def kick_success(ball_pos, tar_pos, radius, fell):
    """(ball-target xy distance, ball centre in the target area, success): a success needs the
    ball in the target area and the robot not fallen on that step."""
    d_bt = jnp.linalg.norm((tar_pos - ball_pos)[..., :2], axis=-1)
    inside = d_bt < radius
    return d_bt, inside, inside & ~fell


def kick_episode_stats(metrics: dict) -> dict:
    """Per-episode kick statistics from per-step metric means (``env/<name>`` keys of the
    learner's metrics, or the bare names)."""
    g = lambda k: float(metrics.get(k, metrics.get(f"env/{k}", 0.0)))  # noqa: E731
    succ, fail, tout = g("term_success"), g("term_fail"), g("term_timeout")
    ends = succ + fail + tout
    nz = lambda a, b: a / b if b > 0 else float("nan")  # noqa: E731
    return {"success_rate": nz(succ, ends), "fall_rate": nz(fail, ends), "timeout_rate": nz(tout, ends),
            "time_to_success": nz(g("time_to_success"), succ),
            "final_ball_target_dist": nz(g("final_ball_target_dist"), ends)}


# ---------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------
class KickEnv(AMPEnv):
    """The AMP env on the robot + ball scene with the kick task hooks (build it with
    :func:`mjxmimic.envs.amp.make_amp_env`, ``env_cls=KickEnv``)."""

    task_obs_size = 8
    task_metric_names = ("success", "fall", "ball_target_dist", "ball_speed", "time_to_success",
                         "final_ball_target_dist") + tuple(f"r_{k}" for k in KICK_REWARD_TERMS)

    def __init__(self, cfg: KickConfig, robot=None):
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
        draws (:func:`kick_layout`) and the target area's radius."""
        c = self.cfg
        return {"name": "kick", "ball": dataclasses.asdict(c.ball_config()),
                "layout": {k: [float(lo), float(hi)] for k, (lo, hi) in kick_layout(c).items()},
                "target_radius": float(c.target_radius)}

    # ---- ball state ---------------------------------------------------------------------
    def ball_state(self, data):
        """(ball position [3], ball linear velocity [3], world)."""
        a, v = self.ball_qpos_adr, self.ball_qvel_adr
        return data.qpos[a:a + 3], data.qvel[v:v + 3]

    # ---- task hooks ---------------------------------------------------------------------
    def task_init(self, params, key, qpos, qvel, info):
        c = self.cfg
        ball, tar = sample_ball_and_target(key, qpos[0:3], rmath.normalize(qpos[3:7]), c)
        a, v = self.ball_qpos_adr, self.ball_qvel_adr
        qpos = qpos.at[a:a + 7].set(jnp.concatenate([ball, jnp.array([c.ball_radius, 1.0, 0.0, 0.0, 0.0])]))
        qvel = qvel.at[v:v + 6].set(0.0)
        return qpos, qvel, {**info, "tar_pos": jnp.concatenate([tar, jnp.zeros((1,))])}

    def task_obs(self, params, data, frame, info):
        ball_pos, ball_vel = self.ball_state(data)
        return kick_obs(frame.root_pos, frame.root_rot, ball_pos, ball_vel, info["tar_pos"])

    def task_step(self, params, key, prev_data, data, frame, info):
        c = self.cfg
        ball_pos, ball_vel = self.ball_state(data)
        r, terms = kick_reward(frame.root_pos, prev_data.qpos[0:3], frame.root_rot, ball_pos, ball_vel,
                               info["tar_pos"], self.control_dt, c)
        fell = self.has_fallen(params, data, info)
        d_bt, success, upright_success = kick_success(ball_pos, info["tar_pos"], c.target_radius, fell)
        r = r + c.success_bonus * success
        ended = success | fell | (info["step"] >= self.max_episode_steps)
        t = info["step"].astype(jnp.float32) * self.control_dt
        metrics = {"success": upright_success.astype(jnp.float32), "fall": fell.astype(jnp.float32),
                   "ball_target_dist": d_bt, "ball_speed": jnp.linalg.norm(ball_vel[:2]),
                   "time_to_success": jnp.where(upright_success, t, 0.0),
                   "final_ball_target_dist": jnp.where(ended, d_bt, 0.0),
                   **{f"r_{k}": v for k, v in terms.items()}}
        return r, jnp.zeros((), bool), success, metrics, info

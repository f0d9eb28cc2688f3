"""MimicKit's view-motion env (``view_motion_env.py``): kinematic playback of a clip or dataset.

    env, params, _ = make_env("k1_view_motion")
    python -m mjxmimic.view --env k1_view_motion --out walk.mp4     # its rollout as a video

Each episode plays one clip (drawn by the dataset's weights) from t = 0. A step sets qpos/qvel
to the MotionLib's frame at the episode's new time and computes the kinematics (no dynamics,
motors off: the action is ignored). Reward 0; the episode ends (as a timeout, bootstrapped)
when the clip has played: once at its length, a looping (wrap) clip ``wrap_plays`` times (5,
MimicKit's). Observation: the character obs of the frame (as :class:`~mjxmimic.envs.char.CharEnv`).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from mjxmimic.envs import physics
from mjxmimic.envs.char import CharConfig, CharEnv
from mjxmimic.motions import lib as mlib

__all__ = ["ViewMotionConfig", "ViewMotionEnv", "make_view_motion_env", "play_length"]


@dataclasses.dataclass(frozen=True)
class ViewMotionConfig(CharConfig):
    rand_reset: bool = False            # start each clip at t = 0
    enable_early_termination: bool = False
    wrap_plays: int = 5                 # plays of a looping clip per episode (MimicKit)

    def __post_init__(self):
        super().__post_init__()
        if self.wrap_plays < 1:
            raise ValueError(f"wrap_plays must be >= 1, got {self.wrap_plays}")


def play_length(length, wrap, wrap_plays: int):
    """Seconds an episode plays a clip of ``length`` s: ``wrap_plays`` times when it loops."""
    return length * jnp.where(wrap, float(wrap_plays), 1.0)


class ViewMotionEnv(CharEnv):
    """Clip playback (see the module docstring); needs a MotionLib."""

    success_bootstrap = True    # the clip's end is a timeout

    def __init__(self, cfg: ViewMotionConfig, motion, robot=None):
        """``motion``: the MotionLib it plays (the longest playback bounds the episode)."""
        super().__init__(cfg, robot)
        longest = float(np.max(np.asarray(play_length(motion.length, motion.wrap, cfg.wrap_plays))))
        object.__setattr__(self, "max_episode_steps", int(np.ceil(longest / self.control_dt - 1e-4)) + 1)

    def frame_state(self, params, info, step):
        """Full (qpos, qvel) of the clip at control step ``step`` of the episode."""
        lib = params.motion
        f = mlib.sample(lib, info["motion_id"][None], (info["motion_time0"] + step * self.control_dt)[None])
        return self.full_state(f.qpos(lib)[0], f.qvel(lib)[0])

    def physics_step(self, params, state, action):
        qpos, qvel = self.frame_state(params, state.info, (state.info["step"] + 1).astype(jnp.float32))
        return physics.set_state(params.model, qpos, qvel, ctrl=state.physics.ctrl)

    def evaluate(self, params, data, info):
        lib, mid = params.motion, info["motion_id"]
        ended = self.motion_time(info) >= play_length(lib.length[mid], lib.wrap[mid], self.cfg.wrap_plays) - 1e-5
        return self.observation(params, data, info), jnp.zeros((), jnp.float32), jnp.zeros((), bool), ended, {}


def make_view_motion_env(cfg: ViewMotionConfig, motion):
    """(env, params) of the view-motion env playing ``motion``."""
    if motion is None:
        raise ValueError("the view_motion env needs a motion_file")
    env = ViewMotionEnv(cfg, motion)
    return env, env.default_params(motion)

"""MimicKit's ADD env (``add_env.py``) on MJX: DeepMimic's tracking env whose learning
signal is an adversarial differential discriminator (``learning.add``).

    env = ADDEnv(DeepMimicConfig(robot="g1"))
    params = env.default_params(load_motion_lib("motions/g1/walk.npz", "g1"))
    state = env.step(params, state, pd_target)   # state.info["disc_obs"]: o_ref - o_sim

Everything but the discriminator observation is :class:`~mjxmimic.envs.deepmimic.DeepMimicEnv`'s:
reference-state init, target observations, pose/fall termination, success at a clip's end,
tracking metrics. Its 5-term tracking reward stays the env ("task") reward, which MimicKit's
ADD weights 0 (``agent.task_reward_weight``); it is logged, and a positive weight mixes it in.

Discriminator observation (one frame, MimicKit's G1 ``num_disc_obs_steps: 1``): the AMP disc
obs of :func:`~mjxmimic.envs.amp.disc_obs` with every non-root body instead of the key
bodies and, with ``global_obs``, the world root position; ``info["disc_obs"]`` is
d = o_ref - o_sim, the reference at the motion time of the post-step state.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from mjxmimic.envs.amp import disc_obs, disc_obs_frame_size
from mjxmimic.envs.deepmimic import DeepMimicEnv
from mjxmimic.motions.lib import MotionFrame

__all__ = ["ADDEnv", "add_disc_obs", "add_disc_diff"]


def add_disc_obs(frame: MotionFrame, body_ids, joint_axes, global_obs: bool = True,
                 root_height_obs: bool = True) -> jax.Array:
    """One frame's ADD disc obs [frame_size] (a single, unbatched frame; ``body_ids``: the
    bodies whose positions relative to the root it holds)."""
    hist = jax.tree_util.tree_map(lambda x: x[None], frame.replace(body_pos=frame.body_pos[body_ids], body_rot=None))
    return disc_obs(hist, joint_axes, global_obs, root_height_obs, dof_vel_obs=True, world_root_pos=global_obs)


def add_disc_diff(ref: MotionFrame, sim: MotionFrame, body_ids, joint_axes, global_obs: bool = True,
                  root_height_obs: bool = True) -> jax.Array:
    """d = o_ref - o_sim, what ADD's discriminator sees (0: perfect tracking)."""
    return (add_disc_obs(ref, body_ids, joint_axes, global_obs, root_height_obs)
            - add_disc_obs(sim, body_ids, joint_axes, global_obs, root_height_obs))


class ADDEnv(DeepMimicEnv):
    """DeepMimic plus ``disc_obs_size`` and ``info["disc_obs"]`` (kept pre-auto-reset)."""

    terminal_info_keys = ("disc_obs",)

    def __init__(self, cfg, robot=None, model=None):
        super().__init__(cfg, robot, model)
        object.__setattr__(self, "disc_obs_size", disc_obs_frame_size(
            self.num_joints, len(self.non_root_body_ids), cfg.root_height_obs, True))

    def disc_diff(self, ref: MotionFrame, sim: MotionFrame) -> jax.Array:
        return add_disc_diff(ref, sim, self.non_root_body_ids, self.joint_axes, self.cfg.global_obs,
                             self.cfg.root_height_obs)

    def init_info(self, params, data, info):
        # Reference-state init: the character starts on the reference, d = 0 (never learned from).
        return {**info, "disc_obs": jnp.zeros((self.disc_obs_size,), jnp.float32)}

    def post_physics(self, params, prev_data, data, info, unstable):
        ref, _ = self.ref_frames(params, info)   # the same MotionLib call as evaluate's (one after CSE)
        d = self.disc_diff(ref, self.char_frame(data))
        # NaN guard: an unstable step must not feed non-finite samples to the discriminator.
        return {**info, "disc_obs": jnp.where(unstable, info["disc_obs"], d)}

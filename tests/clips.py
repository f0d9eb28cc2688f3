"""Synthetic clips shared by the env tests."""
import numpy as np

from mjxmimic.motions.clip import Clip


def synth_clip(robot, loop="wrap", seconds=2.0, fps=30.0, speed=0.3, amp=0.15, name="synth"):
    """A small in-range joint oscillation on a root that walks forward and turns slowly."""
    T = int(round(seconds * fps)) + 1
    t = np.arange(T) / fps
    q0 = robot.default_qpos
    pattern = np.sin(np.arange(robot.num_joints) + 1.0)
    jp = q0[robot.qpos_idx][None] + amp * np.sin(2 * np.pi * t)[:, None] * pattern[None]
    lo, hi = robot.joint_range.T
    jp = np.clip(jp, lo + 1e-3, hi - 1e-3)
    root_pos = np.stack([speed * t, 0.05 * t, np.full(T, q0[2])], axis=1)
    yaw = 0.2 * t
    root_rot = np.stack([np.cos(yaw / 2), 0 * t, 0 * t, np.sin(yaw / 2)], axis=1)
    return Clip(fps=fps, loop=loop, root_pos=root_pos, root_rot=root_rot, joint_pos=jp,
                joint_names=robot.joint_names, name=name)

"""Synthetic clips with known content, for tests, benchmarks and demos."""
from __future__ import annotations

import numpy as np

from mjxmimic.motions.clip import Clip

__all__ = ["synthetic_clip"]


def synthetic_clip(robot, frames: int = 60, fps: float = 30.0, loop: str = "clamp", speed: float = 0.0,
                   yaw_rate: float = 0.0, amp: float = 0.2, freq: float = 1.0, name: str = "synthetic") -> Clip:
    """The robot's default pose walking-in-place: root moving along x at ``speed`` (m/s) and
    turning at ``yaw_rate`` (rad/s) at the standing height, every joint oscillating
    around its default angle by ``amp`` x its half range at ``freq`` Hz (phase-shifted per
    joint), kept inside the joint limits."""
    t = np.arange(frames) / fps
    lo, hi = robot.joint_range.T
    half = (hi - lo) / 2
    base = np.clip(robot.default_joint_pos, lo, hi)
    jp = base + amp * half * np.sin(2 * np.pi * freq * t[:, None] + np.linspace(0, np.pi, robot.num_joints))
    jp = np.clip(jp, lo, hi)
    yaw = yaw_rate * t
    pos = np.stack([speed * t, np.zeros_like(t), np.full_like(t, robot.default_qpos[2])], 1)
    rot = np.stack([np.cos(yaw / 2), 0 * t, 0 * t, np.sin(yaw / 2)], 1)
    return Clip(fps=float(fps), loop=loop, root_pos=pos, root_rot=rot, joint_pos=jp,
                joint_names=tuple(robot.joint_names), name=name)

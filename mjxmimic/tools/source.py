"""A retargeting source: canonical joint positions of a motion (z up, metres).

Shared by :mod:`mjxmimic.tools.retarget` and the source readers (:mod:`mjxmimic.tools.smpl`),
so neither imports the other.
"""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Source", "SMPL_JOINTS"]

# SMPL / SMPL-H body joints (index in the kinematic tree) used for retargeting.
SMPL_JOINTS = {"pelvis": 0, "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_ankle": 7,
               "right_ankle": 8, "left_toe": 10, "right_toe": 11, "neck": 12, "head": 15, "left_shoulder": 16,
               "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19, "left_wrist": 20, "right_wrist": 21}


@dataclasses.dataclass
class Source:
    """Canonical joint positions of a source motion (z up, metres)."""
    name: str
    fps: float
    pos: dict                 # canonical name -> [T, 3]
    loop: str = "clamp"

    @property
    def num_frames(self) -> int:
        return len(next(iter(self.pos.values())))

    def resample(self, fps: float) -> "Source":
        if abs(fps - self.fps) < 1e-6 * fps or self.num_frames < 2:   # (BVH frame times are rounded)
            return dataclasses.replace(self, fps=fps)
        T = self.num_frames
        t_old = np.arange(T) / self.fps
        n = int(np.floor(t_old[-1] * fps + 1e-6)) + 1
        t = np.arange(n) / fps
        pos = {k: np.stack([np.interp(t, t_old, v[:, d]) for d in range(3)], 1) for k, v in self.pos.items()}
        return Source(self.name, fps, pos, self.loop)

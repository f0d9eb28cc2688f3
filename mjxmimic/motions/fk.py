"""Forward kinematics of clip frames on the host (MuJoCo C, float64).

    xpos, xquat = body_poses(model, qpos)                       # [T, nbody, 3], [T, nbody, 4]
    gpos, gmat = frame_kinematics(model, qpos, ("geom_xpos", "geom_xmat"))

Every offline and load-time computation of body/geom frames of given qpos rows goes through
:func:`frame_kinematics` (``mj_kinematics``: no dynamics, no contacts). The IK's jit-able
FK tree (:class:`mjxmimic.tools.ik.TreeFK`) is separate: it runs in JAX for Jacobians.
"""
from __future__ import annotations

from typing import Sequence

import mujoco
import numpy as np

__all__ = ["frame_kinematics", "body_poses"]


def frame_kinematics(model: mujoco.MjModel, qpos: np.ndarray,
                     fields: Sequence[str] = ("xpos", "xquat")) -> tuple[np.ndarray, ...]:
    """``mj_kinematics`` at each row of ``qpos`` [T, nq] ([nq] counts as one row); returns the
    MjData ``fields`` stacked over rows, e.g. xpos [T, nbody, 3]; rotation matrices (``xmat``,
    ``ximat``, ``geom_xmat``, ``site_xmat``: fields named ``*mat`` with 9 columns) come as [T, n, 3, 3]."""
    qpos = np.atleast_2d(np.asarray(qpos, np.float64))
    d = mujoco.MjData(model)
    out = [np.empty((len(qpos),) + getattr(d, k).shape) for k in fields]
    for i, q in enumerate(qpos):
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        for o, k in zip(out, fields):
            o[i] = getattr(d, k)
    return tuple(o.reshape(o.shape[:2] + (3, 3)) if k.endswith("mat") and o.shape[-1] == 9 else o
                 for o, k in zip(out, fields))


def body_poses(model: mujoco.MjModel, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World body positions [T, nbody, 3] and orientations [T, nbody, 4] (wxyz) per qpos row."""
    return frame_kinematics(model, qpos, ("xpos", "xquat"))

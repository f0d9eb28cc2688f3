"""AMASS motions through an SMPL / SMPL-H body model (joint positions only, numpy).

    bm = BodyModel.load("smplh/neutral/model.npz")      # a licensed model file (none is shipped)
    src = load_amass("CMU/01/01_01_poses.npz", bm)      # -> source.Source (z up, metres)

The body model gives the rest joints for the subject's shape,
``J = J_regressor @ (v_template + shapedirs @ betas)``; the pose (axis-angle per joint,
AMASS ``poses`` [T, 3 * joints], root first) is chained down ``kintree_table`` and
``trans`` added, as SMPL's linear blend skinning does for its joints. AMASS is z-up
already. Vertices, pose correctives and skinning are not needed for joint positions.

The SMPL/SMPL-H model files are licensed (smpl.is.tue.mpg.de, mano.is.tue.mpg.de) and are
not in the repo; pass their path. ``.npz`` models (as AMASS distributes SMPL-H) are read
directly; the original ``.pkl`` SMPL files pickle ``chumpy`` objects, which this reader
refuses (convert them to ``.npz`` with plain arrays first).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mjxmimic.motions.clip import MotionError
from mjxmimic.motions.io import read_pickle
from mjxmimic.tools.source import SMPL_JOINTS, Source

__all__ = ["BodyModel", "load_amass", "axis_angle_to_mat", "joint_positions"]


@dataclasses.dataclass
class BodyModel:
    v_template: np.ndarray     # [V, 3]
    shapedirs: np.ndarray      # [V, 3, B]
    J_regressor: np.ndarray    # [J, V]
    parents: np.ndarray        # [J], -1 for the root
    path: str = ""

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @staticmethod
    def load(path, gender: str | None = None) -> "BodyModel":
        """A model ``.npz`` (or ``.pkl`` of plain arrays); a folder holding ``<gender>/model.npz``
        (AMASS layout) picks the file by ``gender`` (default neutral)."""
        path = Path(path)
        if path.is_dir():
            g = (gender or "neutral").lower()
            cands = [path / g / "model.npz", path / f"{g}.npz", path / g / "model.pkl"]
            found = next((c for c in cands if c.exists()), None)
            if found is None:
                raise MotionError(f"{path}: no body model for gender '{g}' (looked for {[str(c) for c in cands]})")
            path = found
        if not path.exists():
            raise MotionError(f"{path}: body model file not found (SMPL/SMPL-H models are licensed and not "
                              f"shipped; download one from smpl.is.tue.mpg.de / mano.is.tue.mpg.de)")
        if path.suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    d = {k: z[k] for k in z.files}
            except Exception as e:
                raise MotionError(f"{path}: not a readable body model .npz: {e}") from None
        elif path.suffix == ".pkl":
            try:
                d = read_pickle(path)
            except MotionError as e:
                raise MotionError(f"{e} (original SMPL .pkl files hold chumpy objects: convert the model to "
                                  f".npz with plain arrays)") from None
            if not isinstance(d, dict):
                raise MotionError(f"{path}: expected a dict, got {type(d).__name__}")
        else:
            raise MotionError(f"{path}: a body model must be .npz or .pkl")
        missing = [k for k in ("v_template", "shapedirs", "J_regressor", "kintree_table") if k not in d]
        if missing:
            raise MotionError(f"{path}: not an SMPL-family model: missing {missing}; keys: {sorted(d)}")
        vt = np.asarray(d["v_template"], np.float64)
        sd = np.asarray(d["shapedirs"], np.float64)
        jr = np.asarray(d["J_regressor"], np.float64)
        kt = np.asarray(d["kintree_table"]).astype(np.int64)
        V = vt.shape[0]
        if vt.shape != (V, 3) or sd.ndim != 3 or sd.shape[:2] != (V, 3) or jr.ndim != 2 or jr.shape[1] != V:
            raise MotionError(f"{path}: inconsistent shapes v_template {vt.shape}, shapedirs {sd.shape}, "
                              f"J_regressor {jr.shape}")
        parents = kt[0].copy()
        parents[0] = -1
        parents = np.where((parents < 0) | (parents > 10 ** 6), -1, parents)
        if len(parents) != jr.shape[0] or np.any(parents[1:] >= np.arange(1, len(parents))) or np.any(parents[1:] < 0):
            raise MotionError(f"{path}: kintree_table must list each joint's parent before it")
        return BodyModel(vt, sd, jr, parents, str(path))

    def rest_joints(self, betas: np.ndarray | None = None) -> np.ndarray:
        v = self.v_template
        if betas is not None and len(betas):
            b = np.asarray(betas, np.float64)[:self.shapedirs.shape[2]]
            v = v + self.shapedirs[:, :, :len(b)] @ b
        return self.J_regressor @ v


def axis_angle_to_mat(aa: np.ndarray) -> np.ndarray:
    """Rodrigues: [..., 3] -> [..., 3, 3]."""
    aa = np.asarray(aa, np.float64)
    th = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = np.where(th > 1e-12, aa / np.where(th > 1e-12, th, 1.0), 0.0)
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    th = th[..., None]
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def joint_positions(model: BodyModel, poses: np.ndarray, trans: np.ndarray, betas=None) -> np.ndarray:
    """World joint positions [T, J, 3] for axis-angle ``poses`` [T, >= 3 J'] and ``trans`` [T, 3]
    (J' = the joints the poses cover; joints beyond keep their rest rotation)."""
    J0 = model.rest_joints(betas)
    nJ = model.num_joints
    poses = np.asarray(poses, np.float64)
    T = len(poses)
    nj = min(nJ, poses.shape[1] // 3)
    aa = np.zeros((T, nJ, 3))
    aa[:, :nj] = poses[:, :3 * nj].reshape(T, nj, 3)
    R = axis_angle_to_mat(aa)
    G = np.zeros((T, nJ, 3, 3))
    P = np.zeros((T, nJ, 3))
    for j in range(nJ):
        p = model.parents[j]
        if p < 0:
            G[:, j], P[:, j] = R[:, j], J0[j]
        else:
            G[:, j] = G[:, p] @ R[:, j]
            P[:, j] = P[:, p] + np.einsum("tij,j->ti", G[:, p], J0[j] - J0[p])
    return P + np.asarray(trans, np.float64)[:, None, :]


def load_amass(path, body_model):
    """An AMASS motion .npz as a :class:`mjxmimic.tools.source.Source`.

    ``body_model``: a :class:`BodyModel`, a model file, or an AMASS-style model folder
    (``<gender>/model.npz``; the motion's ``gender`` picks it)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:
        raise MotionError(f"{path}: not a readable AMASS .npz: {e}") from None
    missing = [k for k in ("poses", "trans") if k not in d]
    if missing:
        raise MotionError(f"{path}: not an AMASS motion: missing {missing}; keys: {sorted(d)}")
    if body_model is None:
        raise MotionError(f"{path}: an AMASS motion needs an SMPL/SMPL-H body model (a licensed file, not "
                          f"shipped): pass its path")
    if not isinstance(body_model, BodyModel):
        g = str(d["gender"]) if "gender" in d else None
        body_model = BodyModel.load(body_model, g)
    fps = float(d.get("mocap_framerate", d.get("mocap_frame_rate", 0.0)))
    if not np.isfinite(fps) or fps <= 0:
        raise MotionError(f"{path}: no valid mocap_framerate")
    poses, trans = np.asarray(d["poses"], np.float64), np.asarray(d["trans"], np.float64)
    if poses.ndim != 2 or trans.shape != (len(poses), 3) or poses.shape[1] < 66:
        raise MotionError(f"{path}: poses {poses.shape} / trans {trans.shape}: need [T, >= 66] and [T, 3]")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise MotionError(f"{path}: NaN/inf in poses or trans")
    if body_model.num_joints < 22:
        raise MotionError(f"{body_model.path}: {body_model.num_joints} joints; SMPL-family models have >= 22")
    P = joint_positions(body_model, poses, trans, d.get("betas"))
    return Source(path.stem, fps, {k: P[:, i] for k, i in SMPL_JOINTS.items()})

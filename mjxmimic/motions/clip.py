"""A motion clip: the one in-memory form every reader produces and every tool consumes.

Root orientation is a unit quaternion (w, x, y, z) as MuJoCo stores it; joint positions
are in radians, keyed by joint names (the columns of ``joint_pos``).
"""
from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np

from mjxmimic import math as rmath
from mjxmimic.io_util import atomic_write

LOOP_MODES = ("clamp", "wrap")
# A looping clip's last frame is its next cycle's first: a joint-angle jump there bigger than this
# (rad) is a defect (a retarget ending the cycle in another IK solution), not motion. Such a seam
# kept K1 from learning a spin kick at all (benchmarks/RESULTS.md); tools.clean closes it.
SEAM_LIMIT_RAD = 0.2


class MotionError(ValueError):
    """A motion file or clip is malformed or does not fit the robot."""


def check_finite_frames(a: np.ndarray, where: str):
    """MotionError naming the first frames (rows of the [T, D] array ``a``) that hold a NaN or inf."""
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise MotionError(f"{where}: NaN/inf at frame(s) {np.flatnonzero(bad)[:10].tolist()}")


@dataclasses.dataclass(frozen=True, eq=False)
class Clip:
    fps: float
    loop: str                     # "wrap" (cyclic) or "clamp" (hold the last frame)
    root_pos: np.ndarray          # [T, 3] world position of the root body
    root_rot: np.ndarray          # [T, 4] wxyz
    joint_pos: np.ndarray         # [T, J]
    joint_names: tuple[str, ...]  # J names, matching the columns of joint_pos
    name: str = ""

    def __post_init__(self):
        self.validate()

    # ---- shape and sanity -------------------------------------------------
    def validate(self):
        w = f"clip '{self.name}'" if self.name else "clip"
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise MotionError(f"{w}: fps must be a positive number, got {self.fps}")
        if self.loop not in LOOP_MODES:
            raise MotionError(f"{w}: loop must be one of {LOOP_MODES}, got {self.loop!r}")
        t = self.root_pos.shape[0] if self.root_pos.ndim == 2 else -1
        if self.root_pos.shape != (t, 3) or t < 1:
            raise MotionError(f"{w}: root_pos must be [T, 3], got {self.root_pos.shape}")
        if self.root_rot.shape != (t, 4):
            raise MotionError(f"{w}: root_rot must be [T, 4] (T={t}), got {self.root_rot.shape}")
        if self.joint_pos.shape != (t, len(self.joint_names)):
            raise MotionError(f"{w}: joint_pos must be [T, {len(self.joint_names)}] (one column per joint name), "
                              f"got {self.joint_pos.shape}")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise MotionError(f"{w}: duplicate joint names")
        for k in ("root_pos", "root_rot", "joint_pos"):
            check_finite_frames(getattr(self, k), f"{w}: {k}")
        n = np.linalg.norm(self.root_rot, axis=-1)
        if np.any(n < 1e-6):
            raise MotionError(f"{w}: root_rot has zero-norm quaternions")

    @property
    def num_frames(self) -> int:
        return self.root_pos.shape[0]

    @property
    def dt(self) -> float:
        return 1.0 / self.fps

    @property
    def duration(self) -> float:
        """Length in seconds; a wrapped clip's last frame connects back to its first."""
        return (self.num_frames - 1) / self.fps

    def replace(self, **kw) -> "Clip":
        return dataclasses.replace(self, **kw)

    def seam_joint_gap(self) -> tuple[float, str]:
        """Looping clips: the largest joint-angle jump (rad, whole turns ignored) from the last
        frame to the first, and the joint; (0.0, "") for clamped clips. (The body-position gap in
        metres is :func:`mjxmimic.tools.plausibility.seam_gap`, which needs the robot's kinematics.)"""
        if self.loop != "wrap" or self.num_frames < 2:
            return 0.0, ""
        gap = np.abs(np.asarray(rmath.wrap_angle(self.joint_pos[-1] - self.joint_pos[0]), np.float64))
        j = int(np.argmax(gap))
        return float(gap[j]), self.joint_names[j]

    # ---- robot mapping ----------------------------------------------------
    def for_robot(self, joint_names, allow_missing: bool = False, allow_extra: bool = True) -> "Clip":
        """Reorder columns to a robot's joint order, with clear errors for name mismatches."""
        joint_names = tuple(joint_names)
        missing = [n for n in joint_names if n not in self.joint_names]
        extra = [n for n in self.joint_names if n not in joint_names]
        if missing and not allow_missing:
            raise MotionError(f"clip '{self.name}' lacks joint(s) {missing} of the robot; clip joints: {list(self.joint_names)}")
        if extra and not allow_extra:
            raise MotionError(f"clip '{self.name}' has joint(s) {extra} the robot lacks; robot joints: {list(joint_names)}")
        cols = {n: i for i, n in enumerate(self.joint_names)}
        jp = np.stack([self.joint_pos[:, cols[n]] if n in cols else np.zeros(self.num_frames)
                       for n in joint_names], axis=1)
        return self.replace(joint_pos=jp, joint_names=joint_names)

    def qpos(self, robot) -> np.ndarray:
        """[T, nq] MuJoCo qpos for a free-floating robot (joint columns in robot order)."""
        c = self.for_robot(robot.joint_names)
        q = np.tile(robot.model.qpos0, (self.num_frames, 1))
        q[:, :3] = c.root_pos
        q[:, 3:7] = c.root_rot / np.linalg.norm(c.root_rot, axis=-1, keepdims=True)
        q[:, robot.qpos_idx] = c.joint_pos
        return q

    # ---- velocities -------------------------------------------------------
    def velocities(self):
        """Finite-difference velocities (root linear [T,3] world, root angular [T,3] world,
        joints [T,J]); forward differences, wrapping across the seam for looped clips."""
        p, q, j = self.root_pos, canonical_quats(self.root_rot), self.joint_pos
        if self.num_frames < 2:
            z = np.zeros
            return z((1, 3)), z((1, 3)), z((1, j.shape[1]))
        nxt = lambda a: np.concatenate([a[1:], a[-1:]], 0)  # noqa: E731
        v = (nxt(p) - p) * self.fps
        w = np.array(rmath.quat_angular_velocity(q, nxt(q), self.dt), dtype=np.float64)
        # Joint angles difference wrapped to (-pi, pi] so a +-pi crossing is not a spin.
        jd = np.array(rmath.wrap_angle(nxt(j) - j), dtype=np.float64) * self.fps
        if self.loop == "wrap":
            # The seam: the last frame equals the first (MimicKit's convention), so the
            # last velocity is the first one.
            v[-1], w[-1], jd[-1] = v[0], w[0], jd[0]
        else:
            v[-1], w[-1], jd[-1] = v[-2], w[-2], jd[-2]
        return v, w, jd

    # ---- our own format ---------------------------------------------------
    def npz_bytes(self) -> bytes:
        """Our .npz layout with stable bytes (an uncompressed zip whose members carry a fixed
        timestamp; ``np.savez`` stamps the current time), so regenerated clips compare equal."""
        arrays = {"fps": np.float64(self.fps), "loop": np.array(self.loop),
                  "root_pos": np.asarray(self.root_pos, np.float64), "root_rot": np.asarray(self.root_rot, np.float64),
                  "joint_pos": np.asarray(self.joint_pos, np.float64), "joint_names": np.array(self.joint_names),
                  "name": np.array(self.name)}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
            for k, v in arrays.items():
                info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                info.create_system = 3
                info.external_attr = 0o644 << 16
                b = io.BytesIO()
                v = np.asarray(v)  # not ascontiguousarray: it turns 0-d arrays into 1-d
                np.lib.format.write_array(b, v if v.flags.c_contiguous else v.copy(order="C"), allow_pickle=False)
                z.writestr(info, b.getvalue())
        return buf.getvalue()

    def save_npz(self, path) -> Path:
        """Write :meth:`npz_bytes` to ``path`` atomically."""
        return atomic_write(path, self.npz_bytes())

    @staticmethod
    def load_npz(path) -> "Clip":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return Clip(fps=float(z["fps"]), loop=str(z["loop"]), root_pos=z["root_pos"].astype(np.float64),
                            root_rot=z["root_rot"].astype(np.float64), joint_pos=z["joint_pos"].astype(np.float64),
                            joint_names=tuple(str(s) for s in z["joint_names"]),
                            name=str(z["name"]) if "name" in z else path.stem)
        except MotionError:
            raise
        except Exception as e:
            raise MotionError(f"{path}: not a readable mjxmimic .npz clip: {e}") from None


def canonical_quats(q: np.ndarray) -> np.ndarray:
    """Unit quaternions with sign flips removed between consecutive frames."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    out = q.copy()
    for i in range(1, len(q)):
        if np.dot(out[i - 1], out[i]) < 0:
            out[i] = -out[i]
    return out


def resample(clip: Clip, fps: float) -> Clip:
    """Resample to ``fps`` (lerp positions, slerp the root rotation, joints lerped the shorter
    way round). A looping clip keeps its length exactly: its frame count is rounded and its
    rate adjusted by < half a frame over the clip."""
    if not np.isfinite(fps) or fps <= 0:
        raise MotionError(f"clip '{clip.name}': resample fps must be positive, got {fps}")
    if clip.num_frames < 2 or abs(fps - clip.fps) < 1e-9:
        return clip.replace(fps=float(fps)) if clip.num_frames < 2 else clip
    L = clip.duration
    if clip.loop == "wrap":
        n = max(int(round(L * fps)), 1) + 1
        out_fps = (n - 1) / L
    else:
        n = int(np.floor(L * fps + 1e-6)) + 1
        out_fps = float(fps)
    t = np.minimum(np.arange(n) / out_fps, L)
    f = t * clip.fps
    i0 = np.clip(np.floor(f).astype(int), 0, clip.num_frames - 1)
    i1 = np.minimum(i0 + 1, clip.num_frames - 1)
    w = np.clip(f - i0, 0.0, 1.0)
    q = canonical_quats(clip.root_rot)
    rot = np.asarray(rmath.quat_slerp(q[i0], q[i1], w), np.float64)
    j0 = clip.joint_pos[i0]
    jp = j0 + np.asarray(rmath.wrap_angle(np.asarray(clip.joint_pos[i1] - j0, np.float64)), np.float64) * w[:, None]
    pos = clip.root_pos[i0] + (clip.root_pos[i1] - clip.root_pos[i0]) * w[:, None]
    return clip.replace(fps=float(out_fps), root_pos=pos, root_rot=rot, joint_pos=jp)

"""BVH motion capture files: parse the hierarchy and motion, compute joint positions.

    sk = read_bvh("walk.bvh")                 # Skeleton + motion
    pos = sk.positions(up="y", scale=0.01)    # [T, J, 3] world joint positions, z up, metres

BVH stores, per joint, an OFFSET from its parent (in the parent's frame, rest pose) and a
list of CHANNELS (positions for the root, Euler rotations in the listed order). A joint's
local rotation is the product of its rotation channels in the order they are listed
(intrinsic rotations: ``Zrotation Xrotation Yrotation`` means R = Rz @ Rx @ Ry); its global
transform is parent_global @ [R_local | offset (+ position channels)]. "End Site" blocks
become leaf joints named ``<parent>_end`` with no channels.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from mjxmimic.motions.clip import MotionError

__all__ = ["BVHJoint", "BVH", "read_bvh", "parse_bvh", "euler_to_mat", "UP_TO_Z"]

# world-frame change that makes the named axis point up (z), keeping a right-handed frame
UP_TO_Z = {
    "z": np.eye(3),
    "y": np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),   # (x, y, z) -> (z, x, y)
}


@dataclasses.dataclass
class BVHJoint:
    name: str
    parent: int                     # -1 for the root
    offset: np.ndarray              # [3]
    channels: tuple[str, ...]       # e.g. ("Xposition", ..., "Zrotation", "Xrotation", "Yrotation")
    channel_start: int              # column of the first channel in a motion row


@dataclasses.dataclass
class BVH:
    joints: list[BVHJoint]
    frame_time: float
    motion: np.ndarray              # [T, C] raw channel values (degrees, file units)
    path: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def parents(self) -> np.ndarray:
        return np.array([j.parent for j in self.joints])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    def global_transforms(self):
        """Global rotations [T, J, 3, 3] and positions [T, J, 3] in the file's frame and units."""
        T, J = self.num_frames, len(self.joints)
        R = np.zeros((T, J, 3, 3))
        P = np.zeros((T, J, 3))
        for i, j in enumerate(self.joints):
            local_p = np.broadcast_to(j.offset, (T, 3)).copy()
            local_r = np.broadcast_to(np.eye(3), (T, 3, 3)).copy()
            rot_axes, rot_cols = [], []
            for c, ch in enumerate(j.channels):
                col = self.motion[:, j.channel_start + c]
                axis = ch[0].lower()
                if ch.lower().endswith("position"):
                    local_p[:, "xyz".index(axis)] += col
                else:
                    rot_axes.append(axis)
                    rot_cols.append(col)
            if rot_axes:
                local_r = euler_to_mat(np.stack(rot_cols, -1), "".join(rot_axes), degrees=True)
            if j.parent < 0:
                R[:, i], P[:, i] = local_r, local_p
            else:
                R[:, i] = R[:, j.parent] @ local_r
                P[:, i] = P[:, j.parent] + np.einsum("tij,tj->ti", R[:, j.parent], local_p)
        return R, P

    def positions(self, up: str = "y", scale: float = 1.0) -> np.ndarray:
        """World joint positions [T, J, 3], z up (``up`` names the file's up axis), times ``scale``."""
        if up not in UP_TO_Z:
            raise MotionError(f"{self.path}: up must be one of {sorted(UP_TO_Z)}, got {up!r}")
        _, P = self.global_transforms()
        return np.einsum("ij,tkj->tki", UP_TO_Z[up], P) * scale

    def rest_positions(self, up: str = "y", scale: float = 1.0) -> np.ndarray:
        """[J, 3] joint positions of the rest pose (offsets only, root at the origin)."""
        P = np.zeros((len(self.joints), 3))
        for i, j in enumerate(self.joints):
            P[i] = j.offset if j.parent < 0 else P[j.parent] + j.offset
        P[0] = 0.0
        return P @ UP_TO_Z[up].T * scale


def euler_to_mat(angles: np.ndarray, order: str, degrees: bool = True) -> np.ndarray:
    """[..., n] angles about the axes in ``order`` (e.g. "zxy") -> R = R_a1 @ R_a2 @ ... [..., 3, 3]."""
    a = np.radians(angles) if degrees else np.asarray(angles, np.float64)
    out = np.broadcast_to(np.eye(3), a.shape[:-1] + (3, 3)).copy()
    for k, ax in enumerate(order):
        c, s = np.cos(a[..., k]), np.sin(a[..., k])
        R = np.zeros(a.shape[:-1] + (3, 3))
        i = "xyz".index(ax)
        j, l = (i + 1) % 3, (i + 2) % 3
        R[..., i, i] = 1.0
        R[..., j, j], R[..., j, l], R[..., l, j], R[..., l, l] = c, -s, s, c
        out = out @ R
    return out


_TOKEN = re.compile(r"\S+")


def parse_bvh(text: str, path: str = "<string>") -> BVH:
    toks = _TOKEN.findall(text)
    pos = 0

    def err(msg):
        return MotionError(f"{path}: {msg}")

    def take(expect=None, what=None):
        """Next token; ``expect``: the literal it must be (case-insensitive)."""
        nonlocal pos
        if pos >= len(toks):
            raise err(f"unexpected end of file (expected {expect or what or 'more'})")
        t = toks[pos]
        pos += 1
        if expect is not None and t.upper() != expect.upper():
            raise err(f"expected '{expect}', got '{t}' (token {pos})")
        return t

    def number():
        t = take(what="a number")
        try:
            return float(t)
        except ValueError:
            raise err(f"expected a number, got '{t}' (token {pos})") from None

    take("HIERARCHY")
    joints: list[BVHJoint] = []
    ncol = 0
    take("ROOT")

    def parse_joint(name, parent):
        nonlocal ncol
        take("{")
        take("OFFSET")
        off = np.array([number(), number(), number()])
        chans: tuple[str, ...] = ()
        idx = len(joints)
        if toks[pos].upper() == "CHANNELS":
            take()
            n = int(number())
            chans = tuple(take(what="a channel name") for _ in range(n))
            valid = {f"{a}{k}" for a in "XYZ" for k in ("position", "rotation")}
            bad = [c for c in chans if c not in valid]
            if bad:
                raise err(f"joint '{name}': unknown channel(s) {bad}")
        joints.append(BVHJoint(name, parent, off, chans, ncol))
        ncol += len(chans)
        while True:
            t = take(what="JOINT, End Site or }")
            u = t.upper()
            if u == "}":
                return
            if u == "JOINT":
                parse_joint(take(what="a joint name"), idx)
            elif u == "END":
                take("Site")
                take("{")
                take("OFFSET")
                eoff = np.array([number(), number(), number()])
                take("}")
                joints.append(BVHJoint(f"{name}_end", idx, eoff, (), ncol))
            else:
                raise err(f"joint '{name}': unexpected '{t}'")

    parse_joint(take(what="a joint name"), -1)
    if len({j.name for j in joints}) != len(joints):
        raise err("duplicate joint names")
    take("MOTION")
    take("Frames:")
    nf = int(number())
    take("Frame")
    take("Time:")
    ft = number()
    if ft <= 0:
        raise err(f"Frame Time must be positive, got {ft}")
    rest = toks[pos:]
    if len(rest) != nf * ncol:
        raise err(f"MOTION has {len(rest)} values; {nf} frames x {ncol} channels = {nf * ncol} expected "
                  f"(truncated or corrupt)")
    try:
        motion = np.array(rest, np.float64).reshape(nf, ncol)
    except ValueError:
        raise err("non-numeric value in MOTION") from None
    if not np.isfinite(motion).all():
        raise err("NaN/inf in MOTION")
    return BVH(joints, ft, motion, path)


def read_bvh(path) -> BVH:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise MotionError(f"{path}: cannot read: {e}") from None
    return parse_bvh(text, str(path))

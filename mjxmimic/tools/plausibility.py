"""Physical plausibility of a reference clip on a robot (numpy + MuJoCo C kinematics).

    rep = check_clip(clip, robot)          # -> Plausibility; rep.ok, rep.failures, rep.as_dict()
    python -m mjxmimic.tools.plausibility motions/k1/*.npz --robot k1

Measures (all on the robot's own collision geometry, ``robot.collision_geom_ids``):

- **penetration**: deepest point of any collision geom below the floor (z = 0), mm.
- **stance**: a foot is on the floor at a frame when the lowest point of its collision
  geoms is within ``contact_height`` of z = 0 (default 2 mm, the penetration tolerance).
- **skating**: between two consecutive frames on which a foot is on the floor, its slip is
  the horizontal displacement of the least-moving box corner that is on the floor at both
  frames (a foot rolling over its toe edge does not slip; a flat foot sliding does). The
  slips are summed over each stance run; ``skate_mm`` is the worst run.
- **joint limits**: worst excess beyond ``robot.joint_range`` (rad).
- **joint velocity limits**: worst |finite-difference velocity| / URDF ``<limit velocity>``
  (read from the URDF named in the robot spec's ``source.urdf``).
- **ZMP**: the multi-body zero-moment point on a flat floor (every body's linear momentum
  rate and spin angular momentum rate, finite differences at the clip's rate), and its
  signed distance to the support polygon, the convex hull of the on-floor corners of the
  feet (positive inside). Frames with no foot on the floor are flight (not checked). The
  CoM ground projection's margin is reported too (the quasi-static criterion).
- **flight gravity**: in the longest flight phase (every foot ``flight_clearance`` above the
  floor for at least ``min_flight_frames``) the CoM height must follow a free-fall parabola; a quadratic fit
  gives its vertical acceleration, reported as a fraction of g. Mocap gives ~0.85-1.0; a
  clip whose lengths were scaled without retiming it floats (robot-to-robot retargeting
  at leg ratio s gives ~s; retime with ``tools.retarget --time-scale froude``).

For ``wrap`` clips the finite differences run across the seam: the clip is extended by its
own frames shifted by the cycle's horizontal root displacement (MotionLib's convention).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from mjxmimic.motions.clip import SEAM_LIMIT_RAD, Clip
from mjxmimic.motions.fk import frame_kinematics
from mjxmimic.robots.geometry import geom_min_z

__all__ = ["Limits", "Plausibility", "check_clip", "velocity_limits", "kinematics", "multibody_zmp",
           "foot_state", "support_margin", "seam_gap", "flight_gravity", "main"]

GRAVITY = 9.81


@dataclasses.dataclass(frozen=True)
class Limits:
    penetration_mm: float = 2.0
    skate_mm: float = 5.0
    joint_limit_rad: float = 1e-4
    velocity_ratio: float = 1.0
    zmp_margin_mm: float = 0.0      # ZMP at least this far inside the support polygon
    contact_height: float = 0.002   # m: a foot within this of the floor is on it (= the penetration tolerance)
    flight_gravity_tol: float = 0.25  # |fitted CoM vertical acceleration / g - 1| in flight
    flight_clearance: float = 0.02  # m: for the gravity fit, every foot at least this high (mocap feet hover)
    min_flight_frames: int = 5
    seam_rad: float = SEAM_LIMIT_RAD  # wrap clips: largest joint-angle jump from the last frame to the first


@dataclasses.dataclass
class Plausibility:
    name: str
    frames: int
    fps: float
    penetration_mm: float
    skate_mm: float                 # worst stance run, accumulated slip
    skate_frame_mm: float           # worst single-frame slip
    joint_limit_rad: float
    velocity_ratio: float
    velocity_joint: str
    zmp_margin_mm: float            # min over supported frames (nan if none)
    zmp_outside_frames: int
    low_force_frames: int           # feet on the floor but the motion needs < 10 % of the weight
                                    # from it (falling faster than g: no ZMP); not ZMP-checked
    com_margin_mm: float
    flight_frames: int
    stance_frames: tuple[int, ...]  # per foot
    seam_mm: float                  # wrap clips: pose gap at the seam (0 for clamp)
    seam_rad: float                 # wrap clips: largest joint-angle gap at the seam (0 for clamp)
    seam_joint: str
    flight_gravity: float           # CoM vertical acceleration / g in the longest flight (nan if none)
    failures: list

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        return d


# ---------------------------------------------------------------------------------------
# limits from the URDF
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _urdf_velocity(urdf: str) -> dict:
    root = ET.parse(urdf).getroot()
    out = {}
    for j in root.iter("joint"):
        lim = j.find("limit")
        if lim is not None and lim.get("velocity") is not None:
            out[j.get("name")] = float(lim.get("velocity"))
    return out


def velocity_limits(robot) -> np.ndarray | None:
    """[J] joint velocity limits (rad/s) from the robot's source URDF, robot joint order;
    None when the URDF is not available (``../shared`` missing)."""
    path = Path(robot.spec.urdf)
    if not path.exists():
        return None
    lim = _urdf_velocity(str(path))
    missing = [n for n in robot.joint_names if n not in lim]
    if missing:
        raise ValueError(f"{path}: no <limit velocity> for joint(s) {missing}")
    return np.array([lim[n] for n in robot.joint_names])


# ---------------------------------------------------------------------------------------
# kinematics and derived quantities
# ---------------------------------------------------------------------------------------
def kinematics(robot, qpos: np.ndarray) -> dict:
    """MuJoCo C kinematics per frame: xipos [T,nb,3], ximat [T,nb,3,3], geom_xpos, geom_xmat."""
    keys = ("xipos", "ximat", "geom_xpos", "geom_xmat")
    return dict(zip(keys, frame_kinematics(robot.model, qpos, keys)))


def _box_corners(size, xpos, xmat):
    """[T, 8, 3] world corners of a box geom."""
    c = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64) * size
    return xpos[:, None, :] + np.einsum("tij,cj->tci", xmat, c)


def foot_state(robot, kin: dict, contact_height: float):
    """Per foot: corners [T, C, 3] of its box collision geoms and on-floor flag [T]."""
    m = robot.model
    feet = []
    for b in robot.foot_body_ids:
        gs = [int(g) for g in robot.foot_geom_ids if m.geom_bodyid[g] == b]
        corners = []
        for g in gs:
            if m.geom_type[g] != mujoco.mjtGeom.mjGEOM_BOX:
                raise ValueError(f"robot {robot.name}: foot geom {m.geom(g).name} is not a box")
            corners.append(_box_corners(m.geom_size[g], kin["geom_xpos"][:, g], kin["geom_xmat"][:, g]))
        corners = np.concatenate(corners, 1)
        on = corners[..., 2].min(1) <= contact_height
        feet.append((corners, on))
    return feet


def _hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise, monotone chain) of [N, 2] points."""
    pts = np.unique(np.round(pts, 12), axis=0)
    if len(pts) <= 2:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def _seg_dist(p, a, b):
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-18), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def support_margin(point: np.ndarray, corners: np.ndarray) -> float:
    """Signed distance (m) of a 2-D point to the convex hull of ``corners`` [N, 2]: positive
    inside, negative outside."""
    h = _hull(corners)
    if len(h) == 1:
        return -float(np.linalg.norm(point - h[0]))
    if len(h) == 2:
        return -_seg_dist(point, h[0], h[1])
    n = len(h)
    d = min(_seg_dist(point, h[i], h[(i + 1) % n]) for i in range(n))
    inside = all((h[(i + 1) % n][0] - h[i][0]) * (point[1] - h[i][1]) -
                 (h[(i + 1) % n][1] - h[i][1]) * (point[0] - h[i][0]) >= 0 for i in range(n))
    return d if inside else -d


def _extended_qpos(clip: Clip, robot, pad: int = 2):
    """qpos [T + 2 pad, nq] with wrap-consistent neighbours (or edge copies for clamp) and the
    index of the first real frame."""
    q = clip.qpos(robot)
    T = len(q)
    if T < 3 or clip.loop != "wrap":
        return np.concatenate([q[:1].repeat(pad, 0), q, q[-1:].repeat(pad, 0)]), pad, "edge"
    delta = q[-1, :3] - q[0, :3]
    delta[2] = 0.0
    # frames 0..T-2 are one period; frame T-1 repeats frame 0 shifted by delta
    before = q[T - 1 - pad:T - 1].copy()
    before[:, :3] -= delta
    after = q[1:1 + pad].copy()
    after[:, :3] += delta
    return np.concatenate([before, q, after]), pad, "wrap"


def _rot_rate(R: np.ndarray, dt: float) -> np.ndarray:
    """World angular velocity [T, nb, 3] of rotation matrices [T, nb, 3, 3] (central differences)."""
    def log(Rr):
        tr = np.clip((np.trace(Rr, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
        ang = np.arccos(tr)
        v = np.stack([Rr[..., 2, 1] - Rr[..., 1, 2], Rr[..., 0, 2] - Rr[..., 2, 0], Rr[..., 1, 0] - Rr[..., 0, 1]], -1)
        s = np.sin(ang)
        k = np.where(s > 1e-9, ang / (2 * np.where(s > 1e-9, s, 1.0)), 0.5)
        return v * k[..., None]
    rel = np.einsum("tbij,tbkj->tbik", R[2:], R[:-2])   # R(t+1) R(t-1)^T
    w = log(rel) / (2 * dt)
    return np.concatenate([w[:1], w, w[-1:]], 0)


def multibody_zmp(robot, qpos_ext: np.ndarray, fps: float, kin: dict | None = None, with_fz: bool = False):
    """ZMP [T, 2] and CoM [T, 3] of a qpos sequence (finite differences; the first and last
    frames use one-sided neighbours, so pass frames extended on both ends). ``with_fz`` also
    returns the vertical ground force the motion needs, as a fraction of the weight [T]."""
    m = robot.model
    kin = kinematics(robot, qpos_ext) if kin is None else kin
    dt = 1.0 / fps
    mass = m.body_mass[1:]
    x = kin["xipos"][:, 1:]
    R = kin["ximat"][:, 1:]
    acc = np.gradient(np.gradient(x, dt, axis=0), dt, axis=0)
    w = _rot_rate(R, dt)
    inertia = np.einsum("tbij,bj,tbkj->tbik", R, m.body_inertia[1:], R)
    L = np.einsum("tbij,tbj->tbi", inertia, w)
    Hdot = np.gradient(L, dt, axis=0).sum(1)
    f = mass[None, :, None] * (acc + np.array([0.0, 0.0, GRAVITY]))
    mom = np.cross(x, f).sum(1) + Hdot
    Fz = f[..., 2].sum(1)
    zmp = np.stack([-mom[:, 1] / Fz, mom[:, 0] / Fz], -1)
    com = (mass[None, :, None] * x).sum(1) / mass.sum()
    if with_fz:
        return zmp, com, Fz / (mass.sum() * GRAVITY)
    return zmp, com


def seam_gap(clip: Clip, robot) -> float:
    """Wrap clips: largest position gap (m) of any body between the last frame and the first
    frame shifted by the cycle displacement (MotionLib's wrap), 0 for clamp clips."""
    if clip.loop != "wrap" or clip.num_frames < 2:
        return 0.0
    q = clip.qpos(robot)
    delta = q[-1, :3] - q[0, :3]
    delta[2] = 0.0
    q0 = q[0].copy()
    q0[:3] += delta
    k = kinematics(robot, np.stack([q0, q[-1]]))
    return float(np.linalg.norm(k["xipos"][0] - k["xipos"][1], axis=-1).max())


def flight_gravity(com_z: np.ndarray, flight: np.ndarray, fps: float, min_frames: int = 5) -> float:
    """The CoM's fitted vertical acceleration over the longest run of ``flight`` frames, as a
    fraction of g (1 = free fall); nan when no run has ``min_frames`` frames."""
    idx = np.flatnonzero(flight)
    if idx.size == 0:
        return float("nan")
    run = max(np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1), key=len)
    if len(run) < max(min_frames, 3):
        return float("nan")
    t = run / fps
    return float(-2.0 * np.polyfit(t, com_z[run], 2)[0] / GRAVITY)


# ---------------------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------------------
def check_clip(clip: Clip, robot, limits: Limits = Limits()) -> Plausibility:
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    c = clip.for_robot(robot.joint_names)
    qe, pad, _ = _extended_qpos(c, robot)
    kin = kinematics(robot, qe)
    T = c.num_frames
    sl = slice(pad, pad + T)
    kin_c = {k: v[sl] for k, v in kin.items()}
    m = robot.model

    # penetration
    g = np.asarray(robot.collision_geom_ids)
    with jax.enable_x64(True):
        z = np.asarray(geom_min_z(m.geom_type[g], m.geom_size[g], jnp.asarray(kin_c["geom_xpos"][:, g]),
                                  jnp.asarray(kin_c["geom_xmat"][:, g])))
    pen = float(max(0.0, -z.min())) * 1e3

    # feet, skating
    feet = foot_state(robot, kin_c, limits.contact_height)
    skate, skate_frame = 0.0, 0.0
    for corners, on in feet:
        low = corners[..., 2] <= limits.contact_height
        acc = 0.0
        for t in range(T - 1):
            if on[t] and on[t + 1]:
                both = low[t] & low[t + 1]
                if both.any():
                    s = np.linalg.norm(corners[t + 1, both, :2] - corners[t, both, :2], axis=-1).min()
                else:
                    s = np.linalg.norm(corners[t + 1, :, :2] - corners[t, :, :2], axis=-1).min()
                acc += s
                skate_frame = max(skate_frame, s)
                skate = max(skate, acc)
            else:
                acc = 0.0
    skate, skate_frame = skate * 1e3, skate_frame * 1e3

    # joint limits and velocities
    lo, hi = robot.joint_range.T
    jl = float(max(0.0, np.max(np.maximum(c.joint_pos - hi, lo - c.joint_pos))))
    vlim = velocity_limits(robot)
    vratio, vjoint = float("nan"), ""
    if vlim is not None and T > 1:
        _, _, jv = c.velocities()
        r = np.abs(jv) / vlim
        vratio = float(r.max())
        vjoint = robot.joint_names[int(np.argmax(r.max(0)))]

    # ZMP and CoM against the support polygon
    zmp, com, fz = multibody_zmp(robot, qe, c.fps, kin, with_fz=True)
    zmp, com, fz = zmp[sl], com[sl], fz[sl]
    zm, cm, outside, low = [], [], 0, 0
    airborne = np.zeros(T, bool)
    for t in range(T):
        pts = [corners[t, corners[t, :, 2] <= limits.contact_height, :2] for corners, on in feet if on[t]]
        if not pts:
            airborne[t] = True
            continue
        pts = np.concatenate(pts, 0)
        cm.append(support_margin(com[t, :2], pts))
        if fz[t] < 0.1:
            low += 1
            continue
        a = support_margin(zmp[t], pts)
        zm.append(a)
        outside += a < limits.zmp_margin_mm * 1e-3
    zmin = float(min(zm)) * 1e3 if zm else float("nan")
    cmin = float(min(cm)) * 1e3 if cm else float("nan")
    flight = int(airborne.sum())
    lowest_foot = np.min([corners[..., 2].min(-1) for corners, _ in feet], axis=0)
    fg = flight_gravity(com[:, 2], lowest_foot > limits.flight_clearance, c.fps, limits.min_flight_frames)

    seam = c.seam_joint_gap()
    rep = Plausibility(
        name=c.name, frames=T, fps=float(c.fps), penetration_mm=pen, skate_mm=skate, skate_frame_mm=skate_frame,
        joint_limit_rad=jl, velocity_ratio=vratio, velocity_joint=vjoint, zmp_margin_mm=zmin,
        zmp_outside_frames=int(outside), low_force_frames=low, com_margin_mm=cmin, flight_frames=flight,
        stance_frames=tuple(int(on.sum()) for _, on in feet), seam_mm=seam_gap(c, robot) * 1e3,
        seam_rad=seam[0], seam_joint=seam[1], flight_gravity=fg, failures=[])
    f = rep.failures
    if pen > limits.penetration_mm:
        f.append(f"penetration {pen:.2f} mm > {limits.penetration_mm} mm")
    if skate > limits.skate_mm:
        f.append(f"stance-foot skating {skate:.2f} mm > {limits.skate_mm} mm")
    if jl > limits.joint_limit_rad:
        f.append(f"joint limits exceeded by {jl:.4f} rad")
    if np.isfinite(vratio) and vratio > limits.velocity_ratio:
        f.append(f"joint velocity {vratio:.2f}x the URDF limit ({vjoint})")
    if outside:
        f.append(f"ZMP outside the support polygon on {outside} frame(s) (worst margin {zmin:.1f} mm)")
    if np.isfinite(fg) and abs(fg - 1.0) > limits.flight_gravity_tol:
        f.append(f"flight phase falls at {fg:.2f} g (not free fall: retimed or scaled without retiming?)")
    if rep.seam_rad > limits.seam_rad:
        f.append(f"the loop's seam jumps {rep.seam_rad:.2f} rad ({rep.seam_joint}; "
                 f"python -m mjxmimic.tools.clean closes it)")
    return rep


def format_table(reps) -> str:
    head = (f"{'clip':<18}{'frames':>7}{'pen mm':>8}{'skate mm':>9}{'lim rad':>9}{'vel/lim':>8}"
            f"{'ZMP mm':>8}{'CoM mm':>8}{'flight':>7}{'fall g':>7}{'seam mm':>8}  ok")
    rows = [head]
    for r in reps:
        rows.append(f"{r.name:<18}{r.frames:>7}{r.penetration_mm:>8.2f}{r.skate_mm:>9.2f}{r.joint_limit_rad:>9.4f}"
                    f"{r.velocity_ratio:>8.2f}{r.zmp_margin_mm:>8.1f}{r.com_margin_mm:>8.1f}{r.flight_frames:>7}"
                    f"{r.flight_gravity:>7.2f}{r.seam_mm:>8.2f}  {'yes' if r.ok else 'NO: ' + '; '.join(r.failures)}")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.tools.plausibility", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="motion files (.npz, MimicKit .pkl, ...)")
    ap.add_argument("--robot", required=True)
    ap.add_argument("--contact-height", type=float, default=Limits.contact_height)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from mjxmimic.motions.io import load_clip
    from mjxmimic.robots import load_robot
    robot = load_robot(a.robot)
    lim = Limits(contact_height=a.contact_height)
    reps = [check_clip(load_clip(f, robot), robot, lim) for f in a.files]
    print(json.dumps([r.as_dict() for r in reps], indent=1) if a.json else format_table(reps))
    return 0 if all(r.ok for r in reps) else 1


if __name__ == "__main__":
    sys.exit(main())

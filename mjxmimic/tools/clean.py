"""Clean a motion clip for a robot: resample, smooth, clamp joint limits, remove foot
skate during contact and ground penetration, and report what changed.

    python -m mjxmimic.tools.clean IN OUT --robot k1 --report [--fps 30] [--smooth-hz 6]

Pipeline (each step optional, in this order):
1. resample to ``--fps`` (lerp positions/joints, slerp the root rotation);
2. low-pass: zero-phase Gaussian with its -3 dB point at ``--smooth-hz`` (circular for
   looping clips, edge-padded otherwise); then a looping clip's seam is closed
   (:func:`close_loop`, ``--loop-blend`` seconds each side);
3. joint-limit clamping to the robot's joint ranges;
4. foot contacts: a foot is in contact where the lowest point of its collision geoms is
   below ``--contact-height`` and its horizontal speed is below ``--contact-speed``
   (runs shorter than ``--min-contact-frames`` are dropped);
5. foot skate: during each contact run the foot's horizontal position is pinned to the
   run's mean, blended in/out over ``--blend`` seconds around the run; the joint angles
   follow by damped least-squares IK per frame (MuJoCo C Jacobians of the feet; residuals:
   foot position to the target, foot orientation to the original, and a small pull to
   the original joint angles; joint limits enforced; Levenberg-Marquardt, warm-started from
   the previous frame's correction). The joint correction is then low-passed (Gaussian,
   ``--ik-smooth`` seconds): pinning exactly would copy the source's mm-level foot jitter
   into the joints (on MimicKit's 120 fps G1 walk: 4x the joint jerk). The root is not
   moved, so the body's trajectory is unchanged;
6. ground penetration: per frame, the lowest point over all the robot's collision geoms
   (``geom_min_z``) is measured and the root is lifted by exactly the penetration
   (a smooth envelope of it, never less), so no geom is below the floor.

Nothing is written when an error occurs (the output is written atomically).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import mujoco
import numpy as np

from mjxmimic import math as rmath
from mjxmimic.io_util import atomic_write
from mjxmimic.motions.clip import Clip, MotionError, canonical_quats, resample
from mjxmimic.motions.fk import frame_kinematics
from mjxmimic.robots.geometry import geom_min_z

__all__ = ["CleanConfig", "clean_clip", "clip_metrics", "foot_contacts", "smooth", "close_loop",
           "clamp_joint_limits", "fix_foot_skate", "fix_penetration", "main"]


@dataclasses.dataclass(frozen=True)
class CleanConfig:
    fps: float | None = None            # resample to this rate
    smooth_hz: float | None = None      # low-pass cutoff (-3 dB), None = off
    loop_blend: float | None = 0.25     # s: close a looping clip's seam over this (None = off)
    clamp_limits: bool = True
    fix_skate: bool = True
    fix_penetration: bool = True
    contact_height: float = 0.03        # m, foot's lowest point above the floor
    contact_speed: float = 0.3          # m/s, foot's horizontal speed
    min_contact_frames: int = 3
    blend: float = 0.1                  # s, ramp of the skate correction around a contact run
    ik_iters: int = 100
    ik_rot_weight: float = 0.2          # m per rad: weight of the foot orientation residual
    ik_reg: float = 0.01                # pull to the original joint angles (m per rad)
    ik_smooth: float = 0.015            # s, Gaussian sigma applied to the IK joint correction
    lift_smooth: float = 0.05           # s, envelope width of the penetration lift


# ---------------------------------------------------------------------------------------
# kinematics helpers (MuJoCo C, float64)
# ---------------------------------------------------------------------------------------
def _fk(robot, qpos):
    return frame_kinematics(robot.model, qpos, ("xpos", "xquat", "geom_xpos", "geom_xmat"))


def _min_z(robot, gpos, gmat, geom_ids):
    g = np.asarray(geom_ids)
    z = geom_min_z(robot.model.geom_type[g], robot.model.geom_size[g].astype(np.float32),
                   gpos[:, g].astype(np.float32), gmat[:, g].astype(np.float32))
    return np.asarray(z, np.float64)  # [T, len(g)]


def _feet(robot):
    """[(foot body id, its collision geom ids)] for each foot."""
    out = []
    for b in robot.foot_body_ids:
        g = [int(x) for x in robot.foot_geom_ids if robot.model.geom_bodyid[x] == b]
        if not g:
            raise MotionError(f"robot {robot.name}: foot body {robot.model.body(int(b)).name} has no collision geom")
        out.append((int(b), g))
    return out


def _runs(mask: np.ndarray):
    """[(start, end_inclusive)] of the True runs of a 1-D mask."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[::2], d[1::2] - 1))


# ---------------------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------------------
def foot_contacts(clip: Clip, robot, height: float = 0.03, speed: float = 0.3, min_frames: int = 3) -> np.ndarray:
    """[T, n_feet] bool: foot's lowest geom point below ``height`` and horizontal speed below ``speed``."""
    xpos, _, gpos, gmat = _fk(robot, clip.qpos(robot))
    out = np.zeros((clip.num_frames, len(robot.foot_body_ids)), bool)
    for k, (b, g) in enumerate(_feet(robot)):
        h = _min_z(robot, gpos, gmat, g).min(axis=1)
        p = xpos[:, b, :2]
        v = np.linalg.norm(np.gradient(p, axis=0), axis=1) * clip.fps if clip.num_frames > 1 else np.zeros(1)
        c = (h < height) & (v < speed)
        for a, e in _runs(c):
            if e - a + 1 < min_frames:
                c[a:e + 1] = False
        out[:, k] = c
    return out


def clip_metrics(clip: Clip, robot, contacts: np.ndarray | None = None, reference: Clip | None = None) -> dict:
    """Quality numbers: penetration (mm, max and mean over frames, all collision geoms),
    skating (cm: horizontal path length of each foot's origin during contact runs; total and
    worst run; it includes the source's frame-to-frame jitter), net slide (cm: extent, i.e.
    largest distance between two positions of the foot within a run; total and worst run), joint-limit violations (count of frame-joint entries, worst excess in rad),
    mean |jerk| of joints (rad/s^3) and root (m/s^3), and the mean |joint change| (rad)
    against ``reference`` (same frame count)."""
    c = clip.for_robot(robot.joint_names)
    xpos, _, gpos, gmat = _fk(robot, c.qpos(robot))
    low = _min_z(robot, gpos, gmat, robot.collision_geom_ids).min(axis=1)
    pen = np.maximum(0.0, -low)
    if contacts is None:
        contacts = foot_contacts(c, robot)
    skate, worst, slide, slide_worst = 0.0, 0.0, 0.0, 0.0
    for k, (b, _) in enumerate(_feet(robot)):
        for a, e in _runs(contacts[:, k]):
            p = xpos[a:e + 1, b, :2]
            d = float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())  # path length
            n = float(np.max(np.linalg.norm(p[:, None] - p[None], axis=-1)))  # extent (diameter)
            skate, worst = skate + d, max(worst, d)
            slide, slide_worst = slide + n, max(slide_worst, n)
    lo, hi = robot.joint_range.T
    exc = np.maximum(c.joint_pos - hi, lo - c.joint_pos)
    viol = exc > 1e-6

    def jerk(a):
        if len(a) < 4:
            return 0.0
        return float(np.mean(np.abs(np.diff(a, n=3, axis=0)))) * c.fps ** 3

    jp = np.unwrap(c.joint_pos, axis=0)
    out = {
        "frames": c.num_frames, "fps": c.fps,
        "penetration_max_mm": float(pen.max()) * 1e3, "penetration_mean_mm": float(pen.mean()) * 1e3,
        "contact_frames": int(contacts.sum()),
        "skate_total_cm": skate * 100, "skate_worst_run_cm": worst * 100,
        "slide_total_cm": slide * 100, "slide_worst_run_cm": slide_worst * 100,
        "limit_violations": int(viol.sum()), "limit_violation_max_rad": float(max(exc.max(), 0.0)),
        "joint_jerk_mean": jerk(jp), "root_jerk_mean": jerk(c.root_pos),
    }
    if reference is not None:
        r = reference.for_robot(robot.joint_names)
        if r.num_frames == c.num_frames:
            out["joint_change_mean_rad"] = float(np.mean(np.abs(_wrap(c.joint_pos - r.joint_pos))))
    return out


def _wrap(a):
    return np.asarray(rmath.wrap_angle(np.asarray(a, np.float64)), np.float64)


# ---------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------
def _gauss(a: np.ndarray, sigma: float, circular: bool) -> np.ndarray:
    """Zero-phase Gaussian smoothing along axis 0 (sigma in frames)."""
    if sigma <= 1e-3 or len(a) < 3:
        return a.copy()
    r = int(np.ceil(4 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    n = len(a)
    idx = np.arange(-r, n + r)
    idx = np.mod(idx, n) if circular else np.clip(idx, 0, n - 1)
    p = a[idx]
    return np.stack([np.convolve(p[:, j], k, mode="valid") for j in range(a.shape[1])], axis=1)


def smooth(clip: Clip, cutoff_hz: float) -> Clip:
    """Zero-phase Gaussian low-pass with its -3 dB point at ``cutoff_hz``. Looping clips are
    filtered circularly over their period (frames 0..T-2; root position detrended by the
    per-cycle shift) and their last frame is set to the first plus that shift, MimicKit's
    seam convention."""
    if not np.isfinite(cutoff_hz) or cutoff_hz <= 0:
        raise MotionError(f"clip '{clip.name}': smoothing cutoff must be positive, got {cutoff_hz}")
    sigma = np.sqrt(np.log(2.0)) / (2 * np.pi * cutoff_hz) * clip.fps
    T = clip.num_frames
    q = canonical_quats(clip.root_rot)
    jp = np.unwrap(clip.joint_pos, axis=0)
    if clip.loop == "wrap" and T > 3:
        P = T - 1
        delta = clip.root_pos[-1] - clip.root_pos[0]
        ramp = np.arange(T)[:, None] / P * delta
        pos = _gauss((clip.root_pos - ramp)[:P], sigma, True)
        pos = np.concatenate([pos, pos[:1]]) + ramp
        jd = 2 * np.pi * np.round((jp[-1] - jp[0]) / (2 * np.pi))  # whole turns of a spinning joint
        jramp = np.arange(T)[:, None] / P * jd
        jps = _gauss((jp - jramp)[:P], sigma, True)
        jp = np.concatenate([jps, jps[:1]]) + jramp
        qs = q[:P] * np.where(np.sum(q[:P] * q[0], -1, keepdims=True) < 0, -1.0, 1.0)
        qs = _gauss(qs, sigma, True)
        q = np.concatenate([qs, qs[:1]])
    else:
        pos = _gauss(clip.root_pos, sigma, False)
        jp = _gauss(jp, sigma, False)
        q = _gauss(q, sigma, False)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return clip.replace(root_pos=pos, root_rot=q, joint_pos=jp)


def close_loop(clip: Clip, blend_s: float = 0.25) -> Clip:
    """Close a looping clip's seam: the last frame must equal the first one plus the cycle's
    horizontal shift (MimicKit's convention), or the reference jumps once per cycle. A
    per-frame retarget can end a cycle in another IK solution than it began (the K1 spin kick
    from the G1's: 0.41 rad at a knee where the G1 source has 0.1 rad). Half of the gap in
    the joint angles, root height and root orientation is taken off each side of the seam,
    ramped in by a smoothstep over ``blend_s`` (zero slope at both ends of the ramp, so the
    velocities at the seam stay the clip's). MotionLib loops by translation only (MimicKit's
    convention), so a clip that turns per cycle has a heading seam too, and closing it undoes
    the turn near the seam. Clamped clips are returned unchanged."""
    T = clip.num_frames
    if clip.loop != "wrap" or T < 3:
        return clip
    if not np.isfinite(blend_s) or blend_s <= 0:
        raise MotionError(f"clip '{clip.name}': loop blend must be positive seconds, got {blend_s}")
    P = T - 1
    n = int(min(max(round(blend_s * clip.fps), 1), P // 2))
    t = np.arange(T, dtype=np.float64)
    x_in, x_out = np.clip(t / n, 0.0, 1.0), np.clip((t - (P - n)) / n, 0.0, 1.0)
    s = 0.5 * x_out * x_out * (3 - 2 * x_out) - 0.5 * (1 - x_in * x_in * (3 - 2 * x_in))   # -1/2 at 0, +1/2 at P
    jp = clip.joint_pos.astype(np.float64)
    jgap = _wrap(jp[-1] - jp[0])                  # whole turns of a spinning joint are not a gap
    pos = clip.root_pos.astype(np.float64).copy()
    pos[:, 2] -= s * (pos[-1, 2] - pos[0, 2])
    q = canonical_quats(clip.root_rot.astype(np.float64))
    rgap = np.asarray(rmath.quat_to_exp_map(rmath.quat_mul(rmath.quat_conj(q[0]), q[-1])), np.float64)
    corr = np.asarray(rmath.exp_map_to_quat(-s[:, None] * rgap[None]), np.float64)
    q = np.asarray(rmath.quat_mul(q, corr), np.float64)
    return clip.replace(joint_pos=jp - s[:, None] * jgap[None], root_pos=pos, root_rot=canonical_quats(q))


def clamp_joint_limits(clip: Clip, robot) -> Clip:
    lo, hi = robot.joint_range.T
    c = clip.for_robot(robot.joint_names)
    return c.replace(joint_pos=np.clip(c.joint_pos, lo, hi))


def _skate_targets(xpos_feet: np.ndarray, contacts: np.ndarray, blend_frames: int,
                   wrap_shift: np.ndarray | None = None) -> np.ndarray:
    """xy targets [T, n_feet, 2]: pinned to each contact run's mean position; around a run the
    correction (anchor - position at the run's edge) ramps to 0 (smoothstep) over ``blend_frames``
    (overlapping ramps are averaged). ``wrap_shift`` (looping clips: the cycle's xy shift): a run
    that reaches the last frame and one that starts at the first are one stance across the seam,
    pinned to one point (less the shift in the next cycle), so the seam stays closed."""
    T, nf, _ = xpos_feet.shape
    tgt = xpos_feet[..., :2].copy()
    for k in range(nf):
        p = xpos_feet[:, k, :2]
        runs = _runs(contacts[:, k])
        hard = contacts[:, k].astype(bool)
        corr, wsum = np.zeros((T, 2)), np.zeros(T)
        pinned = []
        if wrap_shift is not None and len(runs) >= 2 and runs[0][0] == 0 and runs[-1][1] == T - 1:
            (a0, e0), (a1, _) = runs[0], runs[-1]
            # frame T-1 is frame 0 of the next cycle: count it once
            anchor = np.concatenate([p[a1:T], p[1:e0 + 1] + wrap_shift]).mean(axis=0)
            corr[a1:T] = anchor - p[a1:T]
            corr[:e0 + 1] = anchor - wrap_shift - p[:e0 + 1]
            pinned = [(a0, e0, anchor - wrap_shift), (a1, T - 1, anchor)]
            runs = runs[1:-1]
        for a, e in runs:
            anchor = p[a:e + 1].mean(axis=0)
            corr[a:e + 1] = anchor - p[a:e + 1]
            pinned.append((a, e, anchor))
        for a, e, anchor in pinned:
            for s in range(1, blend_frames + 1):
                x = 1.0 - s / (blend_frames + 1)
                w = x * x * (3.0 - 2.0 * x)  # smoothstep: no velocity jump where the ramp starts
                for t, edge in ((a - s, a), (e + s, e)):
                    if 0 <= t < T and not hard[t]:
                        corr[t] += w * (anchor - p[edge])
                        wsum[t] += w
        soft = ~hard & (wsum > 1.0)
        corr[soft] /= wsum[soft, None]
        tgt[:, k] += corr
    return tgt


def fix_foot_skate(clip: Clip, robot, contacts: np.ndarray, cfg: CleanConfig = CleanConfig()) -> Clip:
    """Pin feet during contact by per-frame damped least-squares IK on the joint angles."""
    c = clip.for_robot(robot.joint_names)
    if not contacts.any():
        return c
    m = robot.model
    d = mujoco.MjData(m)
    qpos = c.qpos(robot)
    feet = [b for b, _ in _feet(robot)]
    xpos, xquat, _, _ = _fk(robot, qpos)
    blend = int(round(cfg.blend * c.fps))
    wrap = c.loop == "wrap" and c.num_frames > 3
    shift = (c.root_pos[-1, :2] - c.root_pos[0, :2]) if wrap else None
    txy = _skate_targets(xpos[:, feet], contacts, blend, shift)
    lo, hi = robot.joint_range.T
    qi, vi = robot.qpos_idx, robot.qvel_idx
    J = len(qi)
    jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    wr, reg = cfg.ik_rot_weight, cfg.ik_reg
    out = qpos.copy()
    err, dq, cq = np.zeros(3), np.zeros(4), np.zeros(4)

    def residual(q, t, q0, with_jac):
        d.qpos[qi] = q
        mujoco.mj_kinematics(m, d)
        if with_jac:
            mujoco.mj_comPos(m, d)
        rows, res = [], []
        for k, b in enumerate(feet):
            res.append(np.array([txy[t, k, 0], txy[t, k, 1], xpos[t, b, 2]]) - d.xpos[b])
            mujoco.mju_negQuat(cq, d.xquat[b])
            mujoco.mju_mulQuat(dq, xquat[t, b], cq)
            mujoco.mju_quat2Vel(err, dq, 1.0)  # world-frame rotation from current to original
            res.append(wr * err)
            if with_jac:
                mujoco.mj_jacBody(m, d, jacp, jacr, b)
                rows += [jacp[:, vi].copy(), wr * jacr[:, vi]]
        res.append(reg * (q0 - q))
        r = np.concatenate(res)
        return (r, np.concatenate(rows + [reg * np.eye(J)])) if with_jac else r

    prev = np.zeros(J)  # previous frame's correction: warm start, keeps one IK branch
    for t in range(c.num_frames):
        if np.allclose(txy[t], xpos[t, feet, :2], atol=1e-9):
            prev[:] = 0.0
            continue
        q0 = qpos[t, qi].copy()
        d.qpos[:] = qpos[t]
        q = q0
        lam = 1e-4
        if prev.any():
            qw = np.clip(q0 + prev, lo, hi)
            rw, r0 = residual(qw, t, q0, False), residual(q0, t, q0, False)
            if rw @ rw < r0 @ r0:
                q = qw
        r, A = residual(q, t, q0, True)
        cost = float(r @ r)
        for _ in range(cfg.ik_iters):
            # Levenberg-Marquardt step, at most 0.2 rad per joint, kept only if it lowers the cost
            H, g = A.T @ A, A.T @ r
            step = np.linalg.solve(H + lam * (np.diag(np.diag(H)) + 1e-6 * np.eye(J)), g)
            step *= min(1.0, 0.2 / max(np.max(np.abs(step)), 1e-12))
            qn = np.clip(q + step, lo, hi)
            rn = residual(qn, t, q0, False)
            cn = float(rn @ rn)
            if cn < cost:
                done = cost - cn < 1e-12 * cost or np.max(np.abs(qn - q)) < 1e-9
                q, lam, cost = qn, max(lam / 3.0, 1e-7), cn
                r, A = residual(q, t, q0, True)
                if done:
                    break
            else:
                lam *= 5.0
                if lam > 1e6:
                    break
        out[t, qi] = q
        prev = q - q0
    corr = out[:, qi] - qpos[:, qi]
    if cfg.ik_smooth > 0:
        # The pin cancels the source's frame-to-frame foot jitter exactly, which puts that
        # jitter into the joints; low-passing the correction (not the motion) removes it.
        sigma = cfg.ik_smooth * c.fps
        corr = np.concatenate([_gauss(corr[:-1], sigma, True), corr[:1]]) if wrap else _gauss(corr, sigma, False)
    if wrap:   # the last frame is the next cycle's first: the same correction keeps the seam closed
        corr[-1] = corr[0]
    return c.replace(joint_pos=np.clip(qpos[:, qi] + corr, lo, hi))


def _max_filter(a: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return a.copy()
    p = np.pad(a, r, mode="edge")
    return np.max(np.lib.stride_tricks.sliding_window_view(p, 2 * r + 1), axis=1)


def fix_penetration(clip: Clip, robot, smooth_s: float = 0.05) -> Clip:
    """Lift the root per frame so no collision geom is below the floor; the lift follows a
    smooth envelope of the penetration (a max filter then a Gaussian, never below the
    penetration itself)."""
    c = clip.for_robot(robot.joint_names)
    _, _, gpos, gmat = _fk(robot, c.qpos(robot))
    low = _min_z(robot, gpos, gmat, robot.collision_geom_ids).min(axis=1)
    pen = np.maximum(0.0, -low)
    if not pen.any():
        return c
    r = int(round(smooth_s * c.fps))
    env = _gauss(_max_filter(pen, r)[:, None], max(r, 1) / 2.0, False)[:, 0] if r > 0 else pen
    lift = np.maximum(env, pen) + 1e-6 * (pen > 0)
    pos = c.root_pos.copy()
    pos[:, 2] += lift
    return c.replace(root_pos=pos)


# ---------------------------------------------------------------------------------------
# pipeline + CLI
# ---------------------------------------------------------------------------------------
def clean_clip(clip: Clip, robot, cfg: CleanConfig = CleanConfig()) -> tuple[Clip, dict]:
    """Run the pipeline; returns the cleaned clip and {"before": metrics, "after": metrics,
    "contacts_per_foot": [...]}. "before" is measured on the input after resampling (same
    frames as the output) with the same contact mask as "after"."""
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    c = clip.for_robot(robot.joint_names)
    if cfg.fps is not None:
        c = resample(c, cfg.fps)
    ref = c
    if cfg.smooth_hz:
        c = smooth(c, cfg.smooth_hz)
    if cfg.loop_blend:
        c = close_loop(c, cfg.loop_blend)
    if cfg.clamp_limits:
        c = clamp_joint_limits(c, robot)
    contacts = foot_contacts(c, robot, cfg.contact_height, cfg.contact_speed, cfg.min_contact_frames)
    before = clip_metrics(ref, robot, contacts)
    if cfg.fix_skate:
        c = fix_foot_skate(c, robot, contacts, cfg)
    if cfg.fix_penetration:
        c = fix_penetration(c, robot, cfg.lift_smooth)
    after = clip_metrics(c, robot, contacts, reference=ref)
    return c, {"before": before, "after": after, "contacts_per_foot": contacts.sum(axis=0).tolist()}


_ROWS = [("penetration_max_mm", "max penetration (mm)"), ("penetration_mean_mm", "mean penetration (mm)"),
         ("skate_total_cm", "skating during contact, total (cm)"),
         ("skate_worst_run_cm", "skating during contact, worst run (cm)"),
         ("slide_total_cm", "net slide (extent) in contact, total (cm)"),
         ("slide_worst_run_cm", "net slide (extent), worst run (cm)"),
         ("limit_violations", "joint-limit violations (frame x joint)"),
         ("limit_violation_max_rad", "worst limit excess (rad)"),
         ("joint_jerk_mean", "mean joint jerk (rad/s^3)"), ("root_jerk_mean", "mean root jerk (m/s^3)"),
         ("joint_change_mean_rad", "mean joint change (rad)")]


def format_report(rep: dict) -> str:
    b, a = rep["before"], rep["after"]
    lines = [f"{'':40} {'before':>12} {'after':>12}"]
    for k, label in _ROWS:
        fb = "" if k not in b else (f"{b[k]:12d}" if isinstance(b[k], int) else f"{b[k]:12.4g}")
        fa = "" if k not in a else (f"{a[k]:12d}" if isinstance(a[k], int) else f"{a[k]:12.4g}")
        lines.append(f"{label:40} {fb:>12} {fa:>12}")
    lines.append(f"frames {a['frames']} at {a['fps']:.6g} fps; contact frames per foot {rep['contacts_per_foot']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.tools.clean", description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("output", help=".npz (ours), .pkl (MimicKit, or --out-fmt gmr) or .csv (Booster)")
    ap.add_argument("--robot", required=True)
    ap.add_argument("--report", action="store_true", help="print before/after metrics")
    ap.add_argument("--report-json", help="also write the report as JSON here")
    ap.add_argument("--in-fmt", choices=["mimickit", "gmr", "csv", "npz"])
    ap.add_argument("--out-fmt", choices=["mimickit", "gmr", "csv", "npz"])
    ap.add_argument("--in-fps", type=float, help="frame rate of the input (required for CSV)")
    ap.add_argument("--fps", type=float, help="resample to this rate")
    ap.add_argument("--smooth-hz", type=float, help="low-pass cutoff (Hz); off by default")
    ap.add_argument("--no-clamp", action="store_true")
    ap.add_argument("--no-skate", action="store_true")
    ap.add_argument("--no-penetration", action="store_true")
    d = CleanConfig()
    ap.add_argument("--loop-blend", type=float, default=d.loop_blend,
                    help="s, close a looping clip's seam over this on each side (0: off)")
    ap.add_argument("--contact-height", type=float, default=d.contact_height)
    ap.add_argument("--contact-speed", type=float, default=d.contact_speed)
    ap.add_argument("--min-contact-frames", type=int, default=d.min_contact_frames)
    ap.add_argument("--blend", type=float, default=d.blend, help="s, ramp of the skate correction")
    ap.add_argument("--ik-smooth", type=float, default=d.ik_smooth,
                    help="s, Gaussian sigma on the IK joint correction (0: pin exactly, keeping source jitter)")
    a = ap.parse_args(argv)
    from mjxmimic.motions.io import load_clip, save_clip
    from mjxmimic.robots import RobotSpecError, load_robot
    try:
        robot = load_robot(a.robot)
        clip = load_clip(a.input, robot, fps=a.in_fps, fmt=a.in_fmt)
        cfg = CleanConfig(fps=a.fps, smooth_hz=a.smooth_hz, loop_blend=a.loop_blend or None,
                          clamp_limits=not a.no_clamp, fix_skate=not a.no_skate,
                          fix_penetration=not a.no_penetration, contact_height=a.contact_height,
                          contact_speed=a.contact_speed, min_contact_frames=a.min_contact_frames, blend=a.blend,
                          ik_smooth=a.ik_smooth)
        out, rep = clean_clip(clip, robot, cfg)
        if not np.isfinite(out.joint_pos).all() or not np.isfinite(out.root_pos).all():
            raise MotionError("cleaning produced non-finite values")
        save_clip(out, a.output, robot, fmt=a.out_fmt)
        if a.report_json:
            atomic_write(a.report_json, json.dumps(rep, indent=2))
    except (MotionError, RobotSpecError, FileNotFoundError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.report:
        print(format_report(rep))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Retarget human (BVH, AMASS/SMPL) or robot motion to a robot with ground-aware IK.

    python -m mjxmimic.tools.retarget SRC [SRC ...] --robot k1 --out OUT
        SRC: .bvh | AMASS .npz (needs --body-model) | a robot clip (.npz/.pkl/.csv, --src-robot)
        OUT: a folder (one .npz per source) or, for one source, a .npz path

For every clip it prints the residual keypoint error (cm), penetration and stance-foot
skating (mm) and the other :mod:`mjxmimic.tools.plausibility` checks.

Pipeline:

1. the source becomes canonical joint positions (z up, metres): ``pelvis``, ``left_hip``,
   ``left_knee``, ``left_ankle``, ``left_toe``, ``left_shoulder``, ``left_elbow``,
   ``left_wrist`` (and ``right_*``), ``neck``, ``head`` (:data:`BVH_ALIASES` and
   :data:`~mjxmimic.tools.source.SMPL_JOINTS` name them; robot sources use :data:`ROBOT_POINTS`), resampled to ``fps``;
2. scale: the source floor is its feet's resting height; the hip centre's path (xy and
   height) is scaled by the leg-length ratio robot/source; legs, torso and arms keep their
   source directions but the robot's segment lengths (per-chain ratios);
3. contacts: a source foot is on the floor when its ankle is within ``contact_height`` of
   its resting height and moves slower than ``contact_speed`` (runs widened by
   ``contact_dilate`` frames); while it is, the robot's sole target is locked on the floor
   (:func:`mjxmimic.tools.ik.lock_stance`: fixed position, level, fixed heading), heavily
   weighted; otherwise the sole is aimed at least ``swing_clearance`` above the floor;
4. whole-trajectory IK (:func:`mjxmimic.tools.ik.solve_ik`): soles (position +
   orientation), hips, knees, hands, elbows, head, pelvis orientation, a small posture
   prior, temporal smoothness, the floor for every collision geom, joint limits;
5. time (``time_scale``): ``none`` keeps the source's timing; ``froude`` plays the clip
   √s_leg times as long (dynamic similarity: lengths × s and times × √s keep gravity's
   acceleration), so that jumps stay free falls on a smaller robot — with the source's
   timing a flight phase scaled by s falls at s·g, which no robot can track.

A looping source can come out with a seam: the IK may end a cycle in another solution than it
began (MimicKit's G1 spin kick on K1: 0.6 rad at a shoulder, 0.4 rad at a knee). The plausibility
check flags a seam above 0.2 rad; ``python -m mjxmimic.tools.clean`` closes it (``--loop-blend``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from mjxmimic.motions.clip import Clip, MotionError, resample
from mjxmimic.tools import ik
from mjxmimic.tools.source import Source

__all__ = ["RetargetConfig", "ROBOT_POINTS", "BVH_ALIASES", "source_from_bvh",
           "source_from_robot_clip", "retarget", "main"]

SIDES = ("left", "right")
LIMB = ("hip", "knee", "ankle", "toe", "shoulder", "elbow", "wrist")
CANONICAL = ("pelvis", "neck", "head") + tuple(f"{s}_{p}" for s in SIDES for p in LIMB)

# Robot points for each canonical joint: (body or site, local offset in that frame).
ROBOT_POINTS = {
    "k1": {
        "pelvis": ("Trunk", (0, 0, -0.077)), "neck": ("Head_1", (0, 0, 0)), "head": ("head", (0, 0, 0)),
        "left_hip": ("Left_Hip_Roll", (0, 0, 0)), "left_knee": ("Left_Shank", (0, 0, 0)),
        "left_ankle": ("left_foot_link", (0, 0, 0)), "left_toe": ("left_foot", (0.08, 0, 0)),
        "left_shoulder": ("Left_Arm_2", (0, 0, 0)), "left_elbow": ("left_hand_link", (0, 0, 0)),
        "left_wrist": ("left_hand", (0, 0, 0)),
        "right_hip": ("Right_Hip_Roll", (0, 0, 0)), "right_knee": ("Right_Shank", (0, 0, 0)),
        "right_ankle": ("right_foot_link", (0, 0, 0)), "right_toe": ("right_foot", (0.08, 0, 0)),
        "right_shoulder": ("Right_Arm_2", (0, 0, 0)), "right_elbow": ("right_hand_link", (0, 0, 0)),
        "right_wrist": ("right_hand", (0, 0, 0)),
    },
    "g1": {
        "pelvis": ("pelvis", (0, 0, 0)), "neck": ("torso_link", (0, 0, 0.35)), "head": ("head", (0, 0, 0)),
        "left_hip": ("left_hip_roll_link", (0, 0, 0)), "left_knee": ("left_knee_link", (0, 0, 0)),
        "left_ankle": ("left_ankle_roll_link", (0, 0, 0)), "left_toe": ("left_foot", (0.09, 0, 0)),
        "left_shoulder": ("left_shoulder_roll_link", (0, 0, 0)), "left_elbow": ("left_elbow_link", (0, 0, 0)),
        "left_wrist": ("left_wrist_roll_link", (0, 0, 0)),
        "right_hip": ("right_hip_roll_link", (0, 0, 0)), "right_knee": ("right_knee_link", (0, 0, 0)),
        "right_ankle": ("right_ankle_roll_link", (0, 0, 0)), "right_toe": ("right_foot", (0.09, 0, 0)),
        "right_shoulder": ("right_shoulder_roll_link", (0, 0, 0)), "right_elbow": ("right_elbow_link", (0, 0, 0)),
        "right_wrist": ("right_wrist_roll_link", (0, 0, 0)),
    },
}

# BVH joint names (CMU, Mixamo without its "mixamorig:" prefix, Bandai-Namco/LAFAN1, generic).
BVH_ALIASES = {
    "pelvis": ("Hips", "hip", "Pelvis", "Root"),
    "neck": ("Neck", "Neck1", "neck"),
    "head": ("Head", "head"),
    **{f"{s}_{p}": tuple(n.format(S=s.capitalize(), s=s, L=s[0].upper(), l=s[0]) for n in names)
       for s in SIDES for p, names in {
           "hip": ("{S}UpLeg", "{S}Hip", "{S}Thigh", "{l}Thigh", "{S}_Hip", "{S}UpperLeg"),
           "knee": ("{S}Leg", "{S}Knee", "{S}Shin", "{l}Shin", "{S}_Knee", "{S}LowerLeg"),
           "ankle": ("{S}Foot", "{S}Ankle", "{l}Foot", "{S}_Ankle"),
           "toe": ("{S}ToeBase", "{S}Toe", "{S}Toes", "{S}_Toe", "{S}Foot_end", "{S}ToeBase_end"),
           "shoulder": ("{S}Arm", "{S}Shoulder", "{S}UpperArm", "{l}Shldr", "{S}_Shoulder"),
           "elbow": ("{S}ForeArm", "{S}Elbow", "{S}LowerArm", "{l}Forearm", "{S}_Elbow"),
           "wrist": ("{S}Hand", "{S}Wrist", "{l}Hand", "{S}_Wrist"),
       }.items()},
}

@dataclasses.dataclass(frozen=True)
class RetargetConfig:
    fps: float = 30.0
    contact_height: float = 0.03   # m (source, after scaling to metres), ankle above its resting height
    contact_speed: float = 0.3     # m/s (source)
    min_contact_frames: int = 3
    contact_dilate: int = 1        # frames added to each end of a contact run (landing/lift-off frames)
    swing_clearance: float = 0.01  # m: a sole not in contact is aimed at least this high (it slides otherwise)
    w_sole: float = 5.0            # stance (locked on the floor); swing uses w_swing
    w_swing: float = 1.0
    w_sole_rot: float = 5.0        # stance; swing uses w_swing_rot
    w_swing_rot: float = 0.1
    w_hip: float = 0.5
    w_knee: float = 0.3
    w_hand: float = 0.3
    w_elbow: float = 0.2
    w_head: float = 0.2
    w_pelvis_rot: float = 0.5
    w_posture: float = 0.02
    w_smooth: float = 2e-4
    iters: int = 30
    time_scale: str = "none"       # none | froude (see the module docstring, step 5)

    def __post_init__(self):
        if self.time_scale not in ("none", "froude"):
            raise ValueError(f"time_scale must be none or froude, got {self.time_scale!r}")


# ---------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------
def _find(names, aliases, prefix_strip=("mixamorig:", "mixamorig_")):
    low = {}
    for i, n in enumerate(names):
        s = n
        for p in prefix_strip:
            if s.startswith(p):
                s = s[len(p):]
        low[s.lower()] = i
    for a in aliases:
        if a.lower() in low:
            return low[a.lower()]
    return None


def source_from_bvh(path, scale: float | None = None, up: str = "y", name_map: dict | None = None) -> Source:
    """A BVH file as a Source. ``scale`` converts file units to metres (None: guess from the
    leg length: cm if a leg is longer than 10 units); ``name_map``: canonical -> BVH joint name."""
    from mjxmimic.tools.bvh import read_bvh
    b = read_bvh(path)
    names = list(b.names)
    idx = {}
    for k in CANONICAL:
        if name_map and k in name_map:
            if name_map[k] not in names:
                raise MotionError(f"{path}: name_map maps {k} to '{name_map[k]}', not a joint; joints: {names}")
            idx[k] = names.index(name_map[k])
            continue
        i = _find(names, BVH_ALIASES[k])
        if i is not None:
            idx[k] = i
    need = [k for k in CANONICAL if not k.endswith("toe") and k not in ("neck",) and k not in idx]
    if need:
        raise MotionError(f"{path}: cannot find BVH joint(s) for {need}; joints: {names}. Pass a name map "
                          f"(canonical -> BVH joint) for them")
    if scale is None:
        rest = b.rest_positions(up)
        leg = np.linalg.norm(rest[idx["left_hip"]] - rest[idx["left_knee"]]) + \
            np.linalg.norm(rest[idx["left_knee"]] - rest[idx["left_ankle"]])
        scale = 0.01 if leg > 10.0 else 1.0
    P = b.positions(up, scale)
    pos = {k: P[:, i] for k, i in idx.items()}
    return Source(Path(path).stem, b.fps, pos)


def _robot_points(robot, pts: dict):
    """Keypoints (with offsets) for a robot points table."""
    out = {}
    for k, (n, off) in pts.items():
        base = ik.keypoints(robot, [n])[0]
        o = np.asarray(base.offset) + ik.quat_mat_np(np.asarray(base.quat)) @ np.asarray(off, np.float64)
        out[k] = ik.Keypoint(k, base.body, tuple(float(x) for x in o), base.quat)
    return out


def source_from_robot_clip(clip: Clip, robot) -> Source:
    """A robot clip (e.g. MimicKit's G1 walk) as a Source: its canonical points by FK."""
    pts = _robot_points(robot, ROBOT_POINTS[robot.name])
    names = list(pts)
    p, _ = ik.forward_points(robot, clip.qpos(robot), [pts[n] for n in names])
    return Source(clip.name, clip.fps, {n: p[:, i] for i, n in enumerate(names)}, clip.loop)


# ---------------------------------------------------------------------------------------
# retargeting
# ---------------------------------------------------------------------------------------
def _chain_len(p, a, b, c=None):
    d = np.linalg.norm(p[a] - p[b], axis=-1)
    if c is not None:
        d = d + np.linalg.norm(p[b] - p[c], axis=-1)
    return float(np.median(d))


def _frame_from(left, right, up_pt, centre):
    """Rotation matrices [T,3,3] with y along right->left, z towards up_pt (orthogonalised)."""
    y = left - right
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    z = up_pt - centre
    z = z - (z * y).sum(-1, keepdims=True) * y
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    x = np.cross(y, z)
    return np.stack([x, y, z], -1)


def _mat_to_quat(R):
    import mujoco
    flat = np.asarray(R, np.float64).reshape(-1, 3, 3)
    out = np.zeros((len(flat), 4))
    for i, m in enumerate(flat):
        mujoco.mju_mat2Quat(out[i], m.reshape(9))
    return out.reshape(R.shape[:-2] + (4,))


def _contacts(ankle, fps, cfg: RetargetConfig):
    rest = np.percentile(ankle[:, 2], 5)
    h = ankle[:, 2] - rest
    v = np.linalg.norm(np.gradient(ankle[:, :2], axis=0), axis=1) * fps if len(ankle) > 1 else np.zeros(1)
    c = (h < cfg.contact_height) & (v < cfg.contact_speed)
    for a, b in ik.contact_phases(c):
        if b - a < cfg.min_contact_frames:
            c[a:b] = False
    out = c.copy()
    for a, b in ik.contact_phases(c):
        out[max(0, a - cfg.contact_dilate):b + cfg.contact_dilate] = True
    return out, rest


def retarget(src: Source, robot, cfg: RetargetConfig = RetargetConfig(), loop: str | None = None):
    """Retarget ``src`` to ``robot`` -> (Clip, report dict)."""
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    from mjxmimic.tools.plausibility import check_clip
    s = src.resample(cfg.fps)
    P = s.pos
    T = s.num_frames
    rp = _robot_points(robot, ROBOT_POINTS[robot.name])
    # robot segment lengths in the default pose
    names = list(rp)
    q0 = robot.default_qpos
    R0 = {n: v for n, v in zip(names, ik.forward_points(robot, q0[None], [rp[n] for n in names])[0][0])}
    r_leg = _chain_len({k: v[None] for k, v in R0.items()}, "left_hip", "left_knee", "left_ankle")
    r_arm = _chain_len({k: v[None] for k, v in R0.items()}, "left_shoulder", "left_elbow", "left_wrist")
    r_hc = 0.5 * (R0["left_hip"] + R0["right_hip"])
    r_sc = 0.5 * (R0["left_shoulder"] + R0["right_shoulder"])
    r_torso = float(np.linalg.norm(r_sc - r_hc))
    r_head = float(np.linalg.norm(R0["head"] - r_sc))
    r_ankle_h = float(R0["left_ankle"][2])          # ankle above the sole when standing
    r_sole = ik.keypoints(robot, ["left_foot", "right_foot"])
    s_leg = r_leg / _chain_len(P, "left_hip", "left_knee", "left_ankle")
    s_arm = r_arm / _chain_len(P, "left_shoulder", "left_elbow", "left_wrist")
    hc = 0.5 * (P["left_hip"] + P["right_hip"])
    sc = 0.5 * (P["left_shoulder"] + P["right_shoulder"])
    s_torso = r_torso / float(np.median(np.linalg.norm(sc - hc, axis=-1)))
    s_head = r_head / float(np.median(np.linalg.norm(P["head"] - sc, axis=-1)))
    # floor: the feet's resting height
    contact, rest = {}, {}
    for side in SIDES:
        contact[side], rest[side] = _contacts(P[f"{side}_ankle"], s.fps, cfg)
    floor = min(rest.values()) - r_ankle_h / s_leg
    # scaled targets
    hc_t = (hc - [0, 0, floor]) * s_leg
    tgt = {}
    for side in SIDES:
        for p in ("hip", "knee", "ankle", "toe"):
            k = f"{side}_{p}"
            if k in P:
                tgt[k] = hc_t + s_leg * (P[k] - hc)
    sc_t = hc_t + s_torso * (sc - hc)
    for side in SIDES:
        sh = P[f"{side}_shoulder"]
        tgt[f"{side}_shoulder"] = sc_t + s_torso * (sh - sc)
        for p in ("elbow", "wrist"):
            tgt[f"{side}_{p}"] = tgt[f"{side}_shoulder"] + s_arm * (P[f"{side}_{p}"] - sh)
    tgt["head"] = sc_t + s_head * (P["head"] - sc)
    # pelvis orientation from the hips and the chest
    up_pt = P["neck"] if "neck" in P else sc
    pelvis_R = _frame_from(P["left_hip"], P["right_hip"], up_pt, hc)
    pelvis_q = _mat_to_quat(pelvis_R)
    # keypoints and targets
    order = ["left_foot", "right_foot", "left_hip", "right_hip", "left_knee", "right_knee", "left_wrist",
             "right_wrist", "left_elbow", "right_elbow", "head", "pelvis"]
    kps = [r_sole[0], r_sole[1]] + [rp[n] for n in order[2:]]
    K = len(kps)
    tg = ik.Targets.empty(T, K)
    w = {"left_hip": cfg.w_hip, "right_hip": cfg.w_hip, "left_knee": cfg.w_knee, "right_knee": cfg.w_knee,
         "left_wrist": cfg.w_hand, "right_wrist": cfg.w_hand, "left_elbow": cfg.w_elbow,
         "right_elbow": cfg.w_elbow, "head": cfg.w_head}
    for i, n in enumerate(order[2:-1], start=2):
        tg.pos[:, i] = tgt[n]
        tg.w_pos[:, i] = w[n]
    tg.rot[:, K - 1] = pelvis_q
    tg.w_rot[:, K - 1] = cfg.w_pelvis_rot
    for f, side in enumerate(SIDES):
        ank = tgt[f"{side}_ankle"]
        toe = tgt.get(f"{side}_toe")
        d = (toe - ank)[:, :2] if toe is not None else pelvis_R[:, :2, 0]
        yaw = np.arctan2(d[:, 1], d[:, 0])
        fwd = np.stack([np.cos(yaw), np.sin(yaw)], -1)
        sole = np.concatenate([ank[:, :2] + fwd * (np.asarray(r_sole[f].offset)[0]),
                               np.maximum(ank[:, 2:3] - r_ankle_h, cfg.swing_clearance)], 1)
        rot = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], -1)
        sole, rot = ik.lock_stance(sole, rot, contact[side], floor_z=0.0)
        tg.pos[:, f], tg.rot[:, f] = sole, rot
        tg.w_pos[:, f] = np.where(contact[side], cfg.w_sole, cfg.w_swing)
        tg.w_rot[:, f] = np.where(contact[side], cfg.w_sole_rot, cfg.w_swing_rot)
    # initial guess: default pose under the hip centre, facing the pelvis heading
    init = np.tile(q0, (T, 1))
    yaw = np.arctan2(pelvis_R[:, 1, 0], pelvis_R[:, 0, 0])
    off = r_hc[:2] - q0[:2]
    init[:, 0] = hc_t[:, 0] - (np.cos(yaw) * off[0] - np.sin(yaw) * off[1])
    init[:, 1] = hc_t[:, 1] - (np.sin(yaw) * off[0] + np.cos(yaw) * off[1])
    init[:, 2] = q0[2] + hc_t[:, 2] - r_hc[2]
    init[:, 3], init[:, 6] = np.cos(yaw / 2), np.sin(yaw / 2)
    res = ik.solve_ik(robot, kps, tg, init, w_posture=cfg.w_posture, fps=s.fps,
                      config=ik.IKConfig(iters=cfg.iters, w_smooth=cfg.w_smooth))
    q = res.qpos
    fps = s.fps / np.sqrt(s_leg) if cfg.time_scale == "froude" else s.fps
    clip = Clip(fps=fps, loop=loop or s.loop, root_pos=q[:, :3], root_rot=q[:, 3:7],
                joint_pos=q[:, robot.qpos_idx], joint_names=tuple(robot.joint_names), name=s.name)
    if cfg.time_scale == "froude":
        clip = resample(clip, cfg.fps)
    rep = check_clip(clip, robot)
    err = res.pos_err
    per = {n: float(np.nanmean(err[:, i])) * 100 for i, n in enumerate(["left_sole", "right_sole"] + order[2:-1])}
    report = {"name": s.name, "frames": clip.num_frames, "fps": clip.fps, "time_scale": cfg.time_scale,
              "scale_leg": s_leg, "scale_arm": s_arm,
              "kp_err_mean_cm": float(np.nanmean(err)) * 100, "kp_err_max_cm": float(np.nanmax(err)) * 100,
              "kp_err_by_point_cm": per, "contact_frames": [int(contact[s_].sum()) for s_ in SIDES],
              "plausibility": rep.as_dict()}
    return clip, report


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------
def _load_source(path: Path, a) -> Source:
    suf = path.suffix.lower()
    if suf == ".bvh":
        return source_from_bvh(path, a.bvh_scale, a.bvh_up)
    if suf == ".npz" and a.src_robot is None:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
        if {"poses", "trans"} <= keys:
            if a.body_model is None:
                raise MotionError(f"{path}: an AMASS file needs an SMPL/SMPL-H body model: pass --body-model "
                                  f"PATH (a licensed model file from smpl.is.tue.mpg.de / mano.is.tue.mpg.de; "
                                  f"none is shipped)")
            from mjxmimic.tools.smpl import load_amass
            return load_amass(path, a.body_model)
    if a.src_robot is None:
        raise MotionError(f"{path}: a robot clip needs --src-robot (the robot it was made for)")
    from mjxmimic.motions.io import load_clip
    from mjxmimic.robots import load_robot
    sr = load_robot(a.src_robot)
    return source_from_robot_clip(load_clip(path, sr), sr)


def format_report(reps) -> str:
    rows = [f"{'clip':<20}{'frames':>7}{'kp err cm':>10}{'max cm':>8}{'pen mm':>8}{'skate mm':>9}{'ZMP mm':>8}"
            f"{'vel/lim':>8}  plausible"]
    for r in reps:
        p = r["plausibility"]
        rows.append(f"{r['name']:<20}{r['frames']:>7}{r['kp_err_mean_cm']:>10.2f}{r['kp_err_max_cm']:>8.2f}"
                    f"{p['penetration_mm']:>8.2f}{p['skate_mm']:>9.2f}{p['zmp_margin_mm']:>8.1f}"
                    f"{p['velocity_ratio']:>8.2f}  {'yes' if p['ok'] else 'no: ' + '; '.join(p['failures'])}")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.tools.retarget", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", nargs="+", help=".bvh, AMASS .npz, or a robot clip with --src-robot")
    ap.add_argument("--robot", required=True)
    ap.add_argument("--out", required=True, help="output folder, or a .npz path for one source")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--src-robot", default=None, help="the robot a source clip was made for (robot-to-robot)")
    ap.add_argument("--body-model", default=None, help="SMPL/SMPL-H model file for AMASS sources")
    ap.add_argument("--bvh-scale", type=float, default=None, help="BVH units to metres (default: guess cm/m)")
    ap.add_argument("--bvh-up", default="y", choices=["y", "z"])
    ap.add_argument("--loop", choices=["wrap", "clamp"], default=None)
    ap.add_argument("--time-scale", choices=["none", "froude"], default="none",
                    help="froude: retime by the square root of the leg-length ratio, so flight phases stay "
                         "free falls on a robot of another size (default: keep the source's timing)")
    ap.add_argument("--json", action="store_true", help="print the reports as JSON")
    a = ap.parse_args(argv)
    from mjxmimic.motions.io import save_clip
    from mjxmimic.robots import load_robot
    robot = load_robot(a.robot)
    out = Path(a.out)
    single = out.suffix == ".npz"
    if single and len(a.src) > 1:
        ap.error("--out is a .npz file but several sources were given; pass a folder")
    if not single:
        out.mkdir(parents=True, exist_ok=True)
    reps = []
    try:
        for s in a.src:
            src = _load_source(Path(s), a)
            clip, rep = retarget(src, robot, RetargetConfig(fps=a.fps, time_scale=a.time_scale), loop=a.loop)
            save_clip(clip, out if single else out / f"{src.name}.npz")
            reps.append(rep)
    except MotionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(reps, indent=1) if a.json else format_report(reps))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reference motions the project makes itself: a ZMP preview-control walking pattern
generator, instep kicks, and the whole-body IK that turns them into joint trajectories.

    python -m mjxmimic.tools.author --all               # regenerate motions/{k1,g1}/ (byte-identical)
    python -m mjxmimic.tools.author --robot k1 --out /tmp/k1 --clips walk,kick_right

Pipeline per clip:

1. **Footstep plan** (gaits): a body frame advances by a constant per-step twist
   (``step_length`` forward, ``step_lateral`` sideways, ``turn`` yaw); each step puts the
   swing foot at the body frame +- ``step_width``/2. A step is a double-support phase then a
   single-support phase.
2. **ZMP reference**: at the support foot's sole centre in single support, moving linearly
   to the next support foot in double support.
3. **CoM**: the cart-table (linear inverted pendulum) model at constant height
   ``com_height``, driven by Kajita's ZMP preview control (Kajita et al. 2003, with
   Katayama's integral-action servo; 1/120 s steps, 1.6 s preview).
4. **Swing foot**: flat; horizontal motion and yaw on a cubic ease, held still for the first
   and last 6 % of the swing, while the foot is within ~2 mm of the floor (lift-off and
   touch-down do not slide); height 16 s^2 (1-s)^2 (zero velocity at both ends).
5. **Whole-body IK** (:mod:`mjxmimic.tools.ik`): CoM, both feet (position + orientation),
   level torso facing the mean foot heading, arm swing and a neutral head/waist as a
   posture prior, floor and joint limits.
6. **Dynamics filter** (Kajita 2003, section 4): the multi-body ZMP of the IK result
   (:func:`mjxmimic.tools.plausibility.multibody_zmp`) differs from the cart-table ZMP
   (swinging limbs, the CoM not being a point); that error is fed through the same
   preview controller to get a CoM correction, and the IK is solved again.

Routes (``walks.yaml``, :func:`route_specs`) use the same footstep pipeline with a per-step
twist that changes along the walk (RouteParams): standing, speeding up, curving, changing
pace, stopping; the whole walk is one ``clamp`` clip.

Gaits are steady cycles with ``loop: wrap``: one gait cycle (two steps) cut from the middle
of a long walk, so frame N (the last) is frame 0 moved by the cycle's root displacement
(MotionLib's wrap offset). Turning in place changes the heading, which a translation-only
wrap offset cannot carry, so the turn clips hold a whole 360 degree turn (identical cycles,
each rotated by the cycle's yaw): their last frame equals their first. Kicks are ``clamp``
clips that start and end in the standing pose of ``stand``.

Kick (instep, right or left foot): the ZMP reference moves over the support foot (the
preview-controlled CoM follows), the kicking foot lifts, swings back, then accelerates
uniformly to ``foot_speed`` (horizontal, along the kick direction) at the moment its instep
point (front top of the foot) reaches the ball's back surface at ball-centre height,
follows through, returns and is put down, and the weight shifts back.

Output is deterministic: fixed parameters, fixed iteration counts, values rounded to 1e-6
and written by :meth:`Clip.save_npz` (an uncompressed zip with fixed timestamps; numpy's
own ``savez`` stamps the current time).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg

from mjxmimic import math as rmath
from mjxmimic.io_util import atomic_write
from mjxmimic.motions.clip import Clip
from mjxmimic.tools import ik

__all__ = ["GaitParams", "KickParams", "RouteParams", "Profile", "PROFILES", "PreviewControl", "gait_plan",
           "kick_plan", "route_plan", "author_clips", "clip_specs", "route_specs", "write_robot", "main"]

GRAVITY = 9.81
FPS = 30
SUB = 4                 # preview-control steps per frame (120 Hz)
ROUND = 6               # decimals stored
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GaitParams:
    step_length: float = 0.0     # m, forward per step
    step_lateral: float = 0.0    # m, leftward per step
    turn: float = 0.0            # rad, leftward (ccw) per step
    step_time: float = 0.4       # s, double + single support
    double_support: float = 0.1  # s
    step_height: float = 0.05    # m, swing clearance
    com_height: float | None = None   # m; None: the profile's walking height
    step_width: float | None = None   # m between the sole centres; None: the standing width


@dataclasses.dataclass(frozen=True)
class KickParams:
    side: str = "right"                      # kicking foot
    ball: tuple[float, float] | None = None  # ball centre (x forward, y left) in the clip frame (origin: the
                                             # feet's midpoint when standing); None: the profile's
    ball_radius: float | None = None         # m; None: the profile's (0.07, FIFA size 1, as envs/kick.py)
    foot_speed: float | None = None          # m/s of the instep at contact; None: profile
    direction: float = 0.0                   # kick direction (rad, yaw in the stance frame)


@dataclasses.dataclass(frozen=True)
class RouteParams:
    """A walk from standing to standing whose per-step twist changes (ROUTE_SCHEDULE): it
    reaches ``legs[0]`` (step_length, step_lateral, turn) in 3 steps, holds it 2 more, blends
    to ``legs[1]`` over 3, holds it 1 more and ramps down over 3 to a zero twist, then the
    closing step. Starts, stops, speed changes and curves: what a task such as walking up to
    a ball needs, and what steady gait cycles lack."""
    legs: tuple[tuple[float, float, float], tuple[float, float, float]]
    step_time: float = 0.4
    double_support: float = 0.1
    step_height: float = 0.04


# weight of legs[0] and legs[1] in each of the 12 steps' twist (see RouteParams)
ROUTE_SCHEDULE = np.array([[1 / 3, 0], [2 / 3, 0], [1, 0], [1, 0], [1, 0], [2 / 3, 1 / 3], [1 / 3, 2 / 3],
                           [0, 1], [0, 1], [0, 2 / 3], [0, 1 / 3], [0, 0]])


@dataclasses.dataclass(frozen=True)
class Profile:
    """Robot-specific facts and style for authoring."""
    robot: str
    root_body: str
    torso_body: str                 # kept level (= root_body when the trunk is the root)
    stand_com_height: float
    walk_com_height: float
    kick_com_height: float          # lower: the legs lean sideways to put the CoM over one foot
    arm_pitch: tuple[str, str]      # left, right shoulder pitch joints (negative = forward)
    arm_swing: float                # rad of shoulder pitch per m of foot separation (fore-aft)
    upper_body: tuple[str, ...]     # joints held near the default pose (weight w_upper)
    instep: tuple[float, float, float]   # instep point in the foot site frame
    ball_radius: float
    ball: tuple[float, float]       # default ball centre (x, |y|; y on the kicking side), clip frame
    foot_speed: float
    backswing: tuple[float, float]  # foot behind its stance spot (m) and raised (m) at the back-swing
    slow: GaitParams
    fast: GaitParams
    turn: GaitParams
    side: GaitParams


PROFILES = {
    "k1": Profile(
        robot="k1", root_body="Trunk", torso_body="Trunk", stand_com_height=0.45, walk_com_height=0.43,
        kick_com_height=0.42,
        arm_pitch=("ALeft_Shoulder_Pitch", "ARight_Shoulder_Pitch"), arm_swing=1.5,
        upper_body=("AAHead_yaw", "Head_pitch", "ALeft_Shoulder_Pitch", "Left_Shoulder_Roll", "Left_Elbow_Pitch",
                    "Left_Elbow_Yaw", "ARight_Shoulder_Pitch", "Right_Shoulder_Roll", "Right_Elbow_Pitch",
                    "Right_Elbow_Yaw"),
        instep=(0.045, 0.0, 0.036), ball_radius=0.07, ball=(0.19, 0.06), foot_speed=2.0, backswing=(0.08, 0.08),
        slow=GaitParams(step_length=0.10, step_time=0.4, double_support=0.1, step_height=0.04),
        fast=GaitParams(step_length=0.15, step_time=0.4, double_support=0.075, step_height=0.05),
        turn=GaitParams(turn=np.pi / 12, step_time=0.4, double_support=0.1, step_height=0.04),
        side=GaitParams(step_lateral=0.05, step_time=0.4, double_support=0.1, step_height=0.04),
    ),
    "g1": Profile(
        robot="g1", root_body="pelvis", torso_body="torso_link", stand_com_height=0.69, walk_com_height=0.67,
        kick_com_height=0.65,
        arm_pitch=("left_shoulder_pitch_joint", "right_shoulder_pitch_joint"), arm_swing=1.0,
        upper_body=("waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint",
                    "left_shoulder_pitch_joint", "left_shoulder_roll_joint", "left_shoulder_yaw_joint",
                    "left_elbow_joint", "left_wrist_roll_joint", "left_wrist_pitch_joint", "left_wrist_yaw_joint",
                    "right_shoulder_pitch_joint", "right_shoulder_roll_joint", "right_shoulder_yaw_joint",
                    "right_elbow_joint", "right_wrist_roll_joint", "right_wrist_pitch_joint", "right_wrist_yaw_joint"),
        instep=(0.06, 0.0, 0.035), ball_radius=0.07, ball=(0.26, 0.08), foot_speed=3.0, backswing=(0.12, 0.12),
        slow=GaitParams(step_length=0.20, step_time=0.45, double_support=0.1, step_height=0.06),
        fast=GaitParams(step_length=0.30, step_time=0.4, double_support=0.08, step_height=0.07),
        turn=GaitParams(turn=np.pi / 12, step_time=0.45, double_support=0.1, step_height=0.05),
        side=GaitParams(step_lateral=0.07, step_time=0.45, double_support=0.1, step_height=0.05),
    ),
}


def clip_specs(profile: Profile) -> dict:
    """The shipped clips: name -> ("stand" | GaitParams | KickParams)."""
    p = profile
    return {
        "stand": "stand",
        "walk": p.slow,
        "walk_fast": p.fast,
        "turn_left": p.turn,
        "turn_right": dataclasses.replace(p.turn, turn=-p.turn.turn),
        "side_step_left": p.side,
        "side_step_right": dataclasses.replace(p.side, step_lateral=-p.side.step_lateral),
        "kick_right": KickParams(side="right"),
        "kick_left": KickParams(side="left"),
    }


ROUTES, ROUTE_SEED = 16, 0


def route_specs(profile: Profile, n: int = ROUTES, seed: int = ROUTE_SEED) -> dict:
    """The shipped routes (walks.yaml): name -> RouteParams, drawn from a fixed seed. A leg's
    twist is u * (L, S, T), L, S, T being the fast walk's step length, the side step and the
    turn per step: forward u0 ~ U(0.3, 1) in 80 % of the legs (else 0), a turn up to
    max(0.4, 1 - u0) and a side step up to 0.6 (1 - u0), so the fastest legs only curve."""
    rng = np.random.default_rng(seed)
    lim = np.array([profile.fast.step_length, profile.side.step_lateral, profile.turn.turn])
    out = {}
    for i in range(n):
        legs = []
        for _ in range(2):
            f = rng.uniform(0.3, 1.0) if rng.random() < 0.8 else 0.0
            side, turn = rng.uniform(-1.0, 1.0, 2)
            u = np.array([f, 0.6 * (1.0 - f) * side, max(0.4, 1.0 - f) * turn])
            legs.append(tuple(float(x) for x in np.round(u * lim, 4)))
        out[f"route_{i:02d}"] = RouteParams(legs=tuple(legs), step_time=profile.slow.step_time,
                                            double_support=profile.slow.double_support,
                                            step_height=profile.slow.step_height)
    return out


# ---------------------------------------------------------------------------------------
# ZMP preview control (cart-table model)
# ---------------------------------------------------------------------------------------
class PreviewControl:
    """Kajita's preview controller for x'' = g/zc (x - p): jerk input, ZMP output, integral
    action on the ZMP error, preview gains over ``horizon`` seconds."""

    def __init__(self, dt: float, zc: float, horizon: float = 1.6, q_e: float = 1.0, r: float = 1e-6):
        self.dt, self.zc = dt, zc
        A = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
        B = np.array([[dt ** 3 / 6], [dt * dt / 2], [dt]])
        C = np.array([[1.0, 0.0, -zc / GRAVITY]])
        At = np.block([[np.eye(1), C @ A], [np.zeros((3, 1)), A]])
        Bt = np.vstack([C @ B, B])
        It = np.array([[1.0], [0.0], [0.0], [0.0]])
        Ft = np.vstack([C @ A, A])
        Q = np.diag([q_e, 0.0, 0.0, 0.0])
        K = scipy.linalg.solve_discrete_are(At, Bt, Q, np.array([[r]]))
        S = np.linalg.inv(r + Bt.T @ K @ Bt)
        self.Gi = float((S @ Bt.T @ K @ It)[0, 0])
        self.Gx = (S @ Bt.T @ K @ Ft)[0]
        Ac = At - Bt @ S @ Bt.T @ K @ At
        X = -Ac.T @ K @ It
        n = int(round(horizon / dt))
        gd = np.zeros(n)
        gd[0] = -self.Gi
        for j in range(1, n):
            gd[j] = float((S @ Bt.T @ X)[0, 0])
            X = Ac.T @ X
        self.Gd = gd
        self.A, self.B, self.C = A, B[:, 0], C[0]

    def run(self, zmp_ref: np.ndarray, x0: np.ndarray | None = None):
        """zmp_ref [n, D] -> CoM [n, D] and the model ZMP [n, D]; the reference is held at its
        last value beyond the end (for the preview)."""
        zmp_ref = np.asarray(zmp_ref, np.float64)
        n, D = zmp_ref.shape
        N = len(self.Gd)
        ref = np.concatenate([zmp_ref, np.repeat(zmp_ref[-1:], N + 1, 0)])
        x = np.zeros((3, D))
        x[0] = zmp_ref[0] if x0 is None else x0
        esum = np.zeros(D)
        com, zmp = np.zeros((n, D)), np.zeros((n, D))
        for k in range(n):
            p = self.C @ x
            com[k], zmp[k] = x[0], p
            esum += p - ref[k]
            u = -self.Gi * esum - self.Gx @ x - self.Gd @ ref[k + 1:k + 1 + N]
            x = self.A @ x + np.outer(self.B, u)
        return com, zmp


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------
def _minjerk(s):
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s * s)


def _smoothstep(s):
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3 - 2 * s)


def _bump(s):
    s = np.clip(s, 0.0, 1.0)
    return 16.0 * s * s * (1 - s) ** 2


def _wrap(a):
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def _rot2(yaw):
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s], [s, c]])


def _compose(pose, twist):
    """Planar pose (x, y, yaw) moved by a body-frame twist (dx, dy, dyaw)."""
    x, y, th = pose
    dx, dy, dth = twist
    c, s = np.cos(th), np.sin(th)
    return np.array([x + c * dx - s * dy, y + s * dx + c * dy, th + dth])


def _quat_yaw_pitch(yaw, pitch=0.0):
    """wxyz of R = Rz(yaw) Ry(pitch), numpy."""
    yaw, pitch = np.broadcast_arrays(np.asarray(yaw, np.float64), np.asarray(pitch, np.float64))
    qz = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], -1)
    qy = np.stack([np.cos(pitch / 2), 0 * pitch, np.sin(pitch / 2), 0 * pitch], -1)
    w1, x1, y1, z1 = np.moveaxis(qz, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(qy, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


def _hermite(t, knots):
    """Piecewise cubic Hermite: knots = [(time, value [D], slope [D]), ...] -> values [n, D]."""
    ts = np.array([k[0] for k in knots])
    P = np.array([k[1] for k in knots], np.float64)
    V = np.array([k[2] for k in knots], np.float64)
    t = np.asarray(t, np.float64)
    i = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, len(ts) - 2)
    h = ts[i + 1] - ts[i]
    s = np.clip((t - ts[i]) / h, 0.0, 1.0)[:, None]
    h = h[:, None]
    h00, h10, h01, h11 = 2 * s ** 3 - 3 * s ** 2 + 1, s ** 3 - 2 * s ** 2 + s, -2 * s ** 3 + 3 * s ** 2, s ** 3 - s ** 2
    out = h00 * P[i] + h10 * h * V[i] + h01 * P[i + 1] + h11 * h * V[i + 1]
    out = np.where((t < ts[0])[:, None], P[0], out)
    return np.where((t > ts[-1])[:, None], P[-1], out)


@dataclasses.dataclass
class Plan:
    """A motion plan sampled at 1/(FPS*SUB) s. Index 0 of feet arrays = left, 1 = right."""
    dt: float
    zmp_ref: np.ndarray      # [n, 2]
    com: np.ndarray          # [n, 3]
    foot_pos: np.ndarray     # [n, 2, 3] sole centres
    foot_yaw: np.ndarray     # [n, 2]
    foot_pitch: np.ndarray   # [n, 2]
    contact: np.ndarray      # [n, 2] bool
    body_yaw: np.ndarray     # [n]
    arm: np.ndarray          # [n, 2] shoulder pitch offsets (left, right)
    com_height: float
    first: int = 0           # plan index of clip frame 0
    frames: int = 0          # clip frames (frame `frames - 1` closes the cycle for gaits)
    cycle: tuple = (0.0, 0.0, 0.0)   # gaits: planar transform of one cycle (dx, dy, dyaw), world frame at `first`
    extra: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# gaits
# ---------------------------------------------------------------------------------------
def _robot_geometry(robot):
    d = robot.kinematics(robot.default_qpos)
    m = robot.model
    lf, rf = (d.site_xpos[m.site(s).id].copy() for s in ("left_foot", "right_foot"))
    return lf, rf


def gait_plan(robot, profile: Profile, gp: GaitParams, n_steps: int = 16, cycle_at: int = 8,
              stand: float = 1.0) -> Plan:
    """Plan a long walk of ``n_steps`` with parameters ``gp`` and mark the steady cycle that
    starts at step ``cycle_at`` (even), in the frame of that cycle's starting feet."""
    if cycle_at % 2:
        raise ValueError("cycle_at must be even (a cycle starts with the left foot's swing)")
    twist = np.array([gp.step_length, gp.step_lateral, gp.turn])
    plan, n0, nstep, B = _walk(robot, profile, gp, np.tile(twist, (n_steps, 1)), stand)
    first = n0 + (cycle_at) * nstep   # start of the double support of step cycle_at + 1 (left swing)
    frames = 2 * nstep // SUB + 1
    # the cycle transform, expressed in the world frame at `first`: body pose B[cycle_at] -> B[cycle_at + 2]
    B0, B2 = B[cycle_at], B[cycle_at + 2]
    return dataclasses.replace(plan, first=first, frames=frames, extra={"B0": B0, "B2": B2, "nstep": nstep})


def route_plan(robot, profile: Profile, rp: RouteParams, stand: float = 1.0) -> Plan:
    """Plan a route (RouteParams): standing, the scheduled steps, the closing step, standing;
    the whole plan is the clip."""
    gp = GaitParams(step_time=rp.step_time, double_support=rp.double_support, step_height=rp.step_height)
    twists = ROUTE_SCHEDULE @ np.asarray(rp.legs, np.float64)
    plan = _walk(robot, profile, gp, twists, stand)[0]
    return dataclasses.replace(plan, frames=(len(plan.zmp_ref) - 1) // SUB + 1)


def _walk(robot, profile: Profile, gp: GaitParams, twists: np.ndarray, stand: float):
    """Footsteps, ZMP, CoM and arm swing of a walk whose step k moves the body frame by
    ``twists[k-1]`` (forward, leftward, yaw), with ``stand`` seconds of standing at both ends:
    (Plan without its clip frames, plan samples of the first standing phase, samples per step,
    body poses [n_steps + 2, 3])."""
    n_steps = len(twists)
    dt = 1.0 / (FPS * SUB)
    lf, rf = _robot_geometry(robot)
    width = gp.step_width if gp.step_width is not None else float(lf[1] - rf[1])
    foot_x = float(0.5 * (lf[0] + rf[0]))   # sole centre ahead of the body-frame origin
    zc = gp.com_height if gp.com_height is not None else profile.walk_com_height
    nstep = int(round(gp.step_time / dt))
    nds = int(round(gp.double_support / dt))
    if abs(nstep * dt - gp.step_time) > 1e-9 or (2 * gp.step_time * FPS) % 1 > 1e-9:
        raise ValueError(f"step_time {gp.step_time} must make a cycle of whole frames at {FPS} fps")
    nss = nstep - nds
    # body poses: B[0] standing; step k >= 1 moves the body by its twist and places foot k%2
    # (1 = left first ... the left foot swings on odd steps)
    B = [np.zeros(3)]
    for k in range(1, n_steps + 1):
        B.append(_compose(B[-1], twists[k - 1]))
    B.append(B[-1].copy())   # closing step: the last foot comes alongside

    def place(pose, side):  # side 0 left (+y), 1 right
        off = np.array([foot_x, width / 2 if side == 0 else -width / 2])
        return np.concatenate([pose[:2] + _rot2(pose[2]) @ off, [pose[2]]])

    feet = [[place(B[0], 0)], [place(B[0], 1)]]   # placements over time per foot
    swing_side = []
    for k in range(1, n_steps + 2):
        side = 0 if k % 2 == 1 else 1
        feet[side].append(place(B[k], side))
        swing_side.append(side)
    n0 = int(round(stand / dt))
    n = n0 + (n_steps + 1) * nstep + n0
    zmp = np.zeros((n, 2))
    fpos = np.zeros((n, 2, 3))
    fyaw = np.zeros((n, 2))
    contact = np.ones((n, 2), bool)
    idx = [0, 0]                       # current placement index per foot
    cur = [feet[0][0], feet[1][0]]
    mid0 = 0.5 * (cur[0][:2] + cur[1][:2])
    zmp[:n0] = mid0
    support_prev = mid0
    for i in range(2):
        fpos[:, i, :2] = cur[i][:2]
        fyaw[:, i] = cur[i][2]
    for k in range(1, n_steps + 2):
        side = swing_side[k - 1]
        sup = 1 - side
        t0 = n0 + (k - 1) * nstep
        new = feet[side][idx[side] + 1]
        old = cur[side]
        sup_xy = cur[sup][:2]
        # double support: ZMP from the previous support to this step's support foot
        s = (np.arange(nds) + 1) / nds
        zmp[t0:t0 + nds] = support_prev + (sup_xy - support_prev) * s[:, None]
        # single support
        a = t0 + nds
        zmp[a:a + nss] = sup_xy
        s = (np.arange(nss) + 1) / nss
        # horizontal: a cubic ease (peak speed 1.5x the mean; min-jerk's 1.875x would exceed
        # K1's 7.1 rad/s hip-pitch limit on the fast gait), held while the foot is within mm of the floor
        hold = 0.06
        h = _smoothstep((s - hold) / (1 - 2 * hold))
        fpos[a:a + nss, side, :2] = old[:2] + (new[:2] - old[:2]) * h[:, None]
        fpos[a:a + nss, side, 2] = gp.step_height * _bump(s)
        fyaw[a:a + nss, side] = old[2] + _wrap(new[2] - old[2]) * h
        contact[a:a + nss - 1, side] = False
        fpos[a + nss:, side, :2] = new[:2]
        fpos[a + nss:, side, 2] = 0.0
        fyaw[a + nss:, side] = new[2]
        cur[side] = new
        idx[side] += 1
        support_prev = sup_xy
    end = n0 + (n_steps + 1) * nstep
    s = (np.arange(n - end) + 1) / max(1, nds)
    mid = 0.5 * (cur[0][:2] + cur[1][:2])
    zmp[end:] = support_prev + (mid - support_prev) * np.clip(s, 0, 1)[:, None]
    pc = PreviewControl(dt, zc)
    com_xy, _ = pc.run(zmp)
    com = np.concatenate([com_xy, np.full((n, 1), zc)], 1)
    # body yaw: circular mean of the feet; arm swing from the fore-aft foot separation
    body_yaw = np.arctan2(np.sin(fyaw).sum(1), np.cos(fyaw).sum(1))
    rel = np.einsum("nij,nj->ni", np.stack([_rot2(-y) for y in body_yaw]), fpos[:, 0, :2] - fpos[:, 1, :2])
    arm = profile.arm_swing * np.stack([rel[:, 0], -rel[:, 0]], 1)   # left foot ahead -> left arm back
    plan = Plan(dt=dt, zmp_ref=zmp, com=com, foot_pos=fpos, foot_yaw=fyaw, foot_pitch=np.zeros((n, 2)),
                contact=contact, body_yaw=body_yaw, arm=arm, com_height=zc)
    return plan, n0, nstep, B


# ---------------------------------------------------------------------------------------
# kicks
# ---------------------------------------------------------------------------------------
def kick_plan(robot, profile: Profile, kp: KickParams, stand_com_height: float | None = None) -> Plan:
    dt = 1.0 / (FPS * SUB)
    lf, rf = _robot_geometry(robot)
    zc = stand_com_height if stand_com_height is not None else profile.stand_com_height
    zk = profile.kick_com_height
    kick = 1 if kp.side == "right" else 0
    if kp.side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {kp.side!r}")
    sup = 1 - kick
    home = [np.array([lf[0], lf[1], 0.0]), np.array([rf[0], rf[1], 0.0])]
    mid = 0.5 * (home[0][:2] + home[1][:2])
    sgn = 1.0 if kick == 0 else -1.0    # +y for the left foot
    ball = mid + np.array(kp.ball if kp.ball is not None else (profile.ball[0], sgn * profile.ball[1]), np.float64)
    r = kp.ball_radius if kp.ball_radius is not None else profile.ball_radius
    v = kp.foot_speed if kp.foot_speed is not None else profile.foot_speed
    direc = np.array([np.cos(kp.direction), np.sin(kp.direction)])
    pitch_c = 0.1         # toe down at contact: the instep faces the ball
    # instep point = sole + R(yaw, pitch) @ instep; at contact the instep is at the ball's back, centre height
    c_inst = np.concatenate([ball - r * direc, [r]])
    q = np.asarray(_quat_yaw_pitch(kp.direction, pitch_c))
    R = np.asarray(rmath.quat_to_mat(q), np.float64)
    sole_c = c_inst - R @ np.asarray(profile.instep)
    # timeline (s)
    f = 1.0 / FPS
    t_shift0, t_shift1 = 0.7, 1.6         # (the preview starts moving the CoM ~0.5 s early)
    t_lift = 1.7
    t_back = t_lift + 0.4
    back_z = profile.backswing[1]
    # uniform acceleration from rest at the back-swing to speed v at contact: d = v tau / 2;
    # tau rounded to whole frames, the back-swing point placed to match
    tau = np.round((2 * (profile.backswing[0] + np.linalg.norm(sole_c[:2] - home[kick][:2])) / v) / f) * f
    d = v * tau / 2
    back = np.concatenate([sole_c[:2] - d * direc, [back_z]])
    t_contact = t_back + tau
    t_ft = t_contact + 0.1
    ft = np.concatenate([sole_c[:2] + (v * 0.1 / 2) * direc, [sole_c[2] + 0.02]])
    t_over = t_ft + 0.45
    over = np.array([home[kick][0], home[kick][1], 0.03])
    t_down = t_over + 0.25
    t_shift2, t_shift3 = t_down + 0.1, t_down + 1.0
    t_end = t_shift3 + 0.8
    n = int(round(t_end / dt)) + 1
    t = np.arange(n) * dt
    # horizontal and vertical profiles are separate so the foot leaves and meets the floor
    # vertically (no slip while it is within mm of the floor)
    zero2 = np.zeros(2)
    t_up = t_lift + 0.08
    xy = _hermite(t, [(0.0, home[kick][:2], zero2), (t_lift + 0.05, home[kick][:2], zero2), (t_back, back[:2], zero2),
                      (t_contact, sole_c[:2], v * direc), (t_ft, ft[:2], zero2), (t_over, over[:2], zero2),
                      (t_end, home[kick][:2], zero2)])
    # the back-swing -> contact segment is a uniform acceleration (Hermite with these slopes
    # is p0 + d s^2 along the kick direction)
    z = _hermite(t, [(0.0, [0.0], [0.0]), (t_lift, [0.0], [0.0]), (t_up, [0.02], [0.4]), (t_back, [back_z], [0.0]),
                     (t_contact, [sole_c[2]], [0.0]), (t_ft, [ft[2]], [0.0]), (t_over, [over[2]], [0.0]),
                     (t_down, [0.0], [0.0]), (t_end, [0.0], [0.0])])
    kpos = np.concatenate([xy, z], 1)
    pk = [(0.0, [0.0], [0.0]), (t_lift, [0.0], [0.0]), (t_back, [0.3], [0.0]), (t_contact, [pitch_c], [0.0]),
          (t_ft, [0.0], [0.0]), (t_over, [0.0], [0.0]), (t_end, [0.0], [0.0])]
    kpitch = _hermite(t, pk)[:, 0]
    fpos = np.zeros((n, 2, 3))
    fpos[:, sup] = home[sup]
    fpos[:, kick] = kpos
    fyaw = np.zeros((n, 2))
    swing = (t > t_lift) & (t < t_down)
    fyaw[:, kick] = np.where(swing, kp.direction * np.clip((t - t_lift) / (t_back - t_lift), 0, 1)
                             * np.clip((t_over - t) / (t_over - t_ft), 0, 1), 0.0)
    fpitch = np.zeros((n, 2))
    fpitch[:, kick] = kpitch
    contact = np.ones((n, 2), bool)
    contact[swing, kick] = False
    # ZMP: centre -> support foot -> centre (smooth), preview-controlled CoM
    s1 = _minjerk((t - t_shift0) / (t_shift1 - t_shift0))
    s2 = _minjerk((t - t_shift2) / (t_shift3 - t_shift2))
    w = s1 * (1 - s2)
    zmp = mid + (home[sup][:2] - mid) * w[:, None]
    pc = PreviewControl(dt, zk)
    com_xy, _ = pc.run(zmp)
    com = np.concatenate([com_xy, (zc + (zk - zc) * w)[:, None]], 1)
    # arms: the arm opposite the kicking leg swings forward with it
    rel = kpos[:, 0] - home[kick][0]
    arm = np.zeros((n, 2))
    arm[:, kick] = profile.arm_swing * rel
    arm[:, sup] = -profile.arm_swing * rel
    frames = int(round(t_end * FPS)) + 1
    return Plan(dt=dt, zmp_ref=zmp, com=com, foot_pos=fpos, foot_yaw=fyaw, foot_pitch=fpitch, contact=contact,
                body_yaw=np.zeros(n), arm=arm, com_height=zk, first=0, frames=frames,
                extra={"t_contact": t_contact, "contact_frame": int(round(t_contact * FPS)), "ball": ball,
                       "ball_radius": r, "foot_speed": v, "instep_contact": c_inst, "kick": kick})


def stand_plan(robot, profile: Profile, frames: int = 31) -> Plan:
    dt = 1.0 / (FPS * SUB)
    lf, rf = _robot_geometry(robot)
    n = (frames - 1) * SUB + 1
    home = np.array([[lf[0], lf[1], 0.0], [rf[0], rf[1], 0.0]])
    mid = home[:, :2].mean(0)
    zc = profile.stand_com_height
    return Plan(dt=dt, zmp_ref=np.tile(mid, (n, 1)), com=np.tile([mid[0], mid[1], zc], (n, 1)),
                foot_pos=np.tile(home, (n, 1, 1)), foot_yaw=np.zeros((n, 2)), foot_pitch=np.zeros((n, 2)),
                contact=np.ones((n, 2), bool), body_yaw=np.zeros(n), arm=np.zeros((n, 2)), com_height=zc,
                first=0, frames=frames)


# ---------------------------------------------------------------------------------------
# plan -> IK targets
# ---------------------------------------------------------------------------------------
PAD = 3     # IK frames solved beyond each end of a gait cycle (smoothness, finite differences)
W_FOOT, W_FOOT_ROT, W_SWING_ROT, W_COM, W_TORSO = 1.0, 1.0, 0.3, 1.0, 0.3
W_LEG_POSTURE, W_UPPER_POSTURE = 1e-3, 0.1


def _keypoints(robot, profile: Profile):
    return ik.keypoints(robot, ["left_foot", "right_foot", "com", profile.root_body, profile.torso_body])


def _targets(robot, profile: Profile, plan: Plan, idx: np.ndarray, com: np.ndarray):
    """IK targets, initial guess and posture at plan indices ``idx`` (CoM given separately)."""
    T = len(idx)
    tg = ik.Targets.empty(T, 5)
    for f in range(2):
        tg.pos[:, f] = plan.foot_pos[idx, f]
        tg.rot[:, f] = _quat_yaw_pitch(plan.foot_yaw[idx, f], plan.foot_pitch[idx, f])
        tg.w_pos[:, f] = W_FOOT
        tg.w_rot[:, f] = np.where(plan.contact[idx, f], W_FOOT_ROT, W_SWING_ROT)
    tg.pos[:, 2] = com
    tg.w_pos[:, 2] = W_COM
    level = _quat_yaw_pitch(plan.body_yaw[idx])
    for k in (3, 4):
        tg.rot[:, k] = level
        tg.w_rot[:, k] = W_TORSO
    J = robot.num_joints
    names = list(robot.joint_names)
    posture = np.tile(robot.default_joint_pos, (T, 1))
    for s in range(2):
        posture[:, names.index(profile.arm_pitch[s])] += plan.arm[idx, s]
    w = np.full(J, W_LEG_POSTURE)
    for n in profile.upper_body:
        w[names.index(n)] = W_UPPER_POSTURE
    # initial guess: the default pose under the CoM target, facing the body heading
    d = robot.kinematics(robot.default_qpos)
    m = robot.model
    mass = m.body_mass[1:]
    com0 = (mass[:, None] * d.xipos[1:]).sum(0) / mass.sum()
    init = np.tile(robot.default_qpos, (T, 1))
    yaw = plan.body_yaw[idx]
    off = com0[:2] - robot.default_qpos[:2]
    init[:, 0] = com[:, 0] - (np.cos(yaw) * off[0] - np.sin(yaw) * off[1])
    init[:, 1] = com[:, 1] - (np.sin(yaw) * off[0] + np.cos(yaw) * off[1])
    init[:, 2] = robot.default_qpos[2] + com[:, 2] - com0[2]
    init[:, 3:7] = _quat_yaw_pitch(yaw)
    return tg, init, posture, w


@dataclasses.dataclass
class _Job:
    name: str
    kind: str          # "stand" | "gait" | "kick" | "route"
    plan: Plan
    idx: np.ndarray    # plan indices of the IK frames
    lo: int            # IK frame index of clip frame 0
    n: int             # IK frames of the clip proper (before closing / replication)
    com: np.ndarray    # current CoM targets [len(idx), 3]


def _jobs(robot, profile: Profile, specs: dict) -> list[_Job]:
    jobs = []
    for name, spec in specs.items():
        if spec == "stand":
            plan = stand_plan(robot, profile)
            idx = np.array([0])
            jobs.append(_Job(name, "stand", plan, idx, 0, 1, plan.com[idx].copy()))
        elif isinstance(spec, GaitParams):
            plan = gait_plan(robot, profile, spec)
            N = plan.frames - 1
            idx = plan.first + (np.arange(-PAD, N + PAD + 1)) * SUB
            jobs.append(_Job(name, "gait", plan, idx, PAD, N, plan.com[idx].copy()))
        elif isinstance(spec, (KickParams, RouteParams)):
            kind = "kick" if isinstance(spec, KickParams) else "route"
            plan = (kick_plan if kind == "kick" else route_plan)(robot, profile, spec)
            idx = np.arange(plan.frames) * SUB
            jobs.append(_Job(name, kind, plan, idx, 0, plan.frames, plan.com[idx].copy()))
        else:
            raise TypeError(f"clip '{name}': unknown spec {spec!r}")
    return jobs


def _solve(robot, profile: Profile, jobs: list[_Job], init: list | None, iters: int):
    kps = _keypoints(robot, profile)
    parts = [_targets(robot, profile, j.plan, j.idx, j.com) for j in jobs]
    tg = parts[0][0]
    for p in parts[1:]:
        tg = tg.concat(p[0])
    q0 = np.concatenate([p[1] for p in parts]) if init is None else np.concatenate(init)
    posture = np.concatenate([p[2] for p in parts])
    w_post = np.concatenate([np.tile(p[3], (len(p[2]), 1)) for p in parts])
    seg = np.concatenate([np.full(len(j.idx), i) for i, j in enumerate(jobs)])
    res = ik.solve_ik(robot, kps, tg, q0, posture=posture, w_posture=w_post, segments=seg, fps=FPS,
                      config=ik.IKConfig(iters=iters, w_smooth=0.0))
    out, a = [], 0
    for j in jobs:
        b = a + len(j.idx)
        out.append(dataclasses.replace(res, qpos=res.qpos[a:b], pos_err=res.pos_err[a:b], rot_err=res.rot_err[a:b],
                                       penetration=res.penetration[a:b], cost=res.cost))
        a = b
    return out


def _zmp_correction(robot, job: _Job, qpos: np.ndarray) -> np.ndarray:
    """Kajita's dynamics filter: CoM correction [len(idx), 2] from the multi-body ZMP error."""
    from mjxmimic.tools.plausibility import multibody_zmp
    plan = job.plan
    if job.kind == "stand":
        return np.zeros((len(job.idx), 2))
    zmp, _ = multibody_zmp(robot, qpos, FPS)
    err = plan.zmp_ref[job.idx] - zmp            # what the CoM must add, as cart-table ZMP
    n = len(plan.zmp_ref)
    e = np.zeros((n, 2))
    if job.kind in ("kick", "route"):
        t = np.arange(n) / SUB
        e = np.stack([np.interp(t, np.arange(len(err)), err[:, d]) for d in range(2)], 1)
    else:
        # periodic error of the steady cycle, repeated over the steady part of the walk (rotated
        # with the heading for turns)
        N = job.n
        cyc = err[job.lo:job.lo + N]
        B0, B2 = plan.extra["B0"], plan.extra["B2"]
        dyaw = B2[2] - B0[2]
        L = N * SUB
        ph = np.arange(L) / SUB
        cyc_f = np.stack([np.interp(ph, np.arange(N + 1), np.concatenate([cyc[:, d], cyc[:1, d]])) for d in range(2)], 1)
        nstep = plan.extra["nstep"]
        for c in range(-(plan.first // L), (n - plan.first) // L):
            a = plan.first + c * L
            lo_s = int(round(1.0 / plan.dt)) + 2 * nstep         # skip the stand and first two steps
            hi_s = n - int(round(1.0 / plan.dt)) - 3 * nstep
            if a < lo_s or a + L > hi_s:
                continue
            e[a:a + L] = cyc_f @ _rot2(c * dyaw).T
    pc = PreviewControl(plan.dt, plan.com_height)
    dc, _ = pc.run(e, x0=np.zeros(2))
    return dc[job.idx]


def _frame_transform(qpos: np.ndarray, R2: np.ndarray, t2: np.ndarray, yaw: float) -> np.ndarray:
    """Apply a planar rigid transform (rotate by yaw about z, R2 = its 2x2, then add t2) to qpos."""
    q = qpos.copy()
    q[..., :2] = q[..., :2] @ R2.T + t2
    q[..., 3:7] = np.asarray(rmath.quat_mul(np.asarray(rmath.yaw_quat(yaw), np.float64), q[..., 3:7]), np.float64)
    return q


def _assemble(robot, job: _Job, qpos: np.ndarray) -> Clip:
    plan = job.plan
    if job.kind == "stand":
        q = np.repeat(qpos[:1], plan.frames, 0)
        loop = "wrap"
        origin = plan.foot_pos[0, :, :2].mean(0)
        yaw0 = 0.0
    elif job.kind in ("kick", "route"):
        q = qpos
        loop = "clamp"
        origin = plan.foot_pos[0, :, :2].mean(0)
        yaw0 = 0.0
    else:
        cyc = qpos[job.lo:job.lo + job.n]          # frames 0 .. N-1 of the cycle
        B0, B2 = plan.extra["B0"], plan.extra["B2"]
        dyaw = float(B2[2] - B0[2])
        R = _rot2(dyaw)
        t = B2[:2] - R @ B0[:2]                    # x -> R x + t maps cycle k to cycle k+1
        reps = 1
        if abs(dyaw) > 1e-9:
            reps = int(round(2 * np.pi / abs(dyaw)))
            if abs(reps * abs(dyaw) - 2 * np.pi) > 1e-6:
                raise ValueError(f"clip '{job.name}': the cycle's yaw {dyaw} does not divide a full turn")
        frames = [cyc]
        for _ in range(reps - 1):
            prev = frames[-1]
            frames.append(_frame_transform(prev, R, t, dyaw))
        last = _frame_transform(frames[-1][:1], R, t, dyaw)
        q = np.concatenate(frames + [last])
        loop = "wrap"
        i0 = plan.first
        origin = plan.foot_pos[i0, :, :2].mean(0)
        yaw0 = float(plan.body_yaw[i0])
    # canonical frame: the feet's midpoint at frame 0, facing +x
    Rinv = _rot2(-yaw0)
    q = _frame_transform(q, Rinv, -Rinv @ origin, -yaw0)
    return _to_clip(robot, q, loop, job.name)


def _rnd(a):
    return np.round(np.asarray(a, np.float64), ROUND) + 0.0   # + 0.0: no negative zeros


def _to_clip(robot, q: np.ndarray, loop: str, name: str) -> Clip:
    rot = q[:, 3:7] / np.linalg.norm(q[:, 3:7], axis=-1, keepdims=True)
    # continuous quaternion signs
    for i in range(1, len(rot)):
        if np.dot(rot[i - 1], rot[i]) < 0:
            rot[i] = -rot[i]
    lo, hi = robot.joint_range.T
    jp = np.clip(_rnd(q[:, robot.qpos_idx]), lo, hi)
    pos, rot = _rnd(q[:, :3]), _rnd(rot)
    if loop == "wrap" and len(q) > 1:
        # exact closure after rounding: the last frame is the first moved by the (rounded) cycle offset
        d = pos[-1] - pos[0]
        d[2] = 0.0
        pos[-1] = pos[0] + d
        jp[-1] = jp[0]
        rot[-1] = rot[0] if np.dot(rot[0], rot[-1]) >= 0 else -rot[0]
    return Clip(fps=float(FPS), loop=loop, root_pos=pos, root_rot=rot, joint_pos=jp + 0.0,
                joint_names=tuple(robot.joint_names), name=name)


def author_clips(robot, names=None, *, zmp_filter: bool = True, iters: int = 12, verbose: bool = False):
    """Make the shipped clips and routes of ``robot`` (or the ``names`` among them).

    Returns ({name: Clip}, info) where info holds per-clip IK residuals and kick facts."""
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    profile = PROFILES[robot.name]
    # the routes are solved as a batch of their own: the IK's last bits depend on the batch, and
    # the clips shipped before the routes existed stay byte-identical
    groups = [clip_specs(profile), route_specs(profile)]
    if names is not None:
        known = [n for g in groups for n in g]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise KeyError(f"unknown clip(s) {unknown}; known: {known}")
        groups = [{n: s for n, s in g.items() if n in names} for g in groups]
    clips, info = {}, {}
    for specs in groups:
        if specs:
            c, i = _author(robot, profile, specs, zmp_filter, iters, verbose)
            clips.update(c)
            info.update(i)
    return clips, info


def _author(robot, profile: Profile, specs: dict, zmp_filter: bool, iters: int, verbose: bool):
    t0 = time.time()
    jobs = _jobs(robot, profile, specs)
    sols = _solve(robot, profile, jobs, None, iters)
    if verbose:
        print(f"[{robot.name}] IK pass 1 ({len(jobs)} clips): {time.time() - t0:.1f} s", file=sys.stderr)
    if zmp_filter:
        for j, s in zip(jobs, sols):
            dc = _zmp_correction(robot, j, s.qpos)
            j.com = j.com + np.concatenate([dc, np.zeros((len(dc), 1))], 1)
        sols = _solve(robot, profile, jobs, [s.qpos for s in sols], iters)
        if verbose:
            print(f"[{robot.name}] IK pass 2 (ZMP filter): {time.time() - t0:.1f} s", file=sys.stderr)
    clips, info = {}, {}
    for j, s in zip(jobs, sols):
        clips[j.name] = _assemble(robot, j, s.qpos)
        info[j.name] = {"ik_pos_err_max_mm": float(np.nanmax(s.pos_err)) * 1e3,
                        "ik_rot_err_max_deg": float(np.degrees(np.nanmax(s.rot_err))),
                        "ik_penetration_max_mm": float(s.penetration.max()) * 1e3}
        if j.kind == "kick":
            info[j.name].update(_kick_info(robot, profile, j, clips[j.name]))
    return clips, info


def _kick_info(robot, profile: Profile, job: _Job, clip: Clip) -> dict:
    """Ball (clip frame), contact time and the instep speed the clip reaches at contact."""
    e = job.plan.extra
    origin = job.plan.foot_pos[0, :, :2].mean(0)
    site = "left_foot" if e["kick"] == 0 else "right_foot"
    base = ik.keypoints(robot, [site])[0]
    q = clip.qpos(robot)
    pos, rot = ik.forward_points(robot, q, [base])
    R = np.asarray(rmath.quat_to_mat(rot[:, 0]), np.float64)
    inst = pos[:, 0] + np.einsum("tij,j->ti", R, np.asarray(profile.instep))
    f = e["contact_frame"]
    v_in = np.linalg.norm(inst[f] - inst[f - 1]) * FPS      # over the last frame before contact
    ball = np.concatenate([e["ball"] - origin, [e["ball_radius"]]])
    return {"ball": [float(x) for x in ball], "ball_radius": float(e["ball_radius"]),
            "contact_time": float(f / FPS), "contact_frame": int(f), "foot_speed_planned": float(e["foot_speed"]),
            "foot_speed_last_frame": float(v_in),
            "instep_at_contact": [float(x) for x in inst[f]]}     # the clip is in the canonical frame already


# ---------------------------------------------------------------------------------------
# deterministic output
# ---------------------------------------------------------------------------------------
_ROBOT_TITLE = {"k1": "Booster K1", "g1": "Unitree G1"}


def _f(x, d=4):
    return f"{float(x):.{d}f}"


def _gait_comment(name: str, gp: GaitParams, profile: Profile) -> str:
    v = gp.step_length / gp.step_time
    parts = [f"step {gp.step_time:g} s (double support {gp.double_support:g} s)"]
    if gp.step_length:
        parts.append(f"step length {gp.step_length:g} m = {v:.3f} m/s forward")
    if gp.step_lateral:
        parts.append(f"{abs(gp.step_lateral):g} m per step to the {'left' if gp.step_lateral > 0 else 'right'}")
    if gp.turn:
        parts.append(f"{np.degrees(abs(gp.turn)):.0f} deg per step to the {'left' if gp.turn > 0 else 'right'} "
                     f"({abs(gp.turn) / gp.step_time:.2f} rad/s), a full 360 deg turn")
    zc = gp.com_height if gp.com_height is not None else profile.walk_com_height
    parts.append(f"CoM height {zc:g} m, swing height {gp.step_height:g} m")
    return f"#   {name}: " + ", ".join(parts)


def _yaml(robot: str, entries, comments, extra: str = "") -> str:
    lines = ["# Generated by `python -m mjxmimic.tools.author --all`; do not edit by hand.",
             f"# {_ROBOT_TITLE.get(robot, robot)} reference motions made by mjxmimic (ZMP preview-control pattern",
             f"# generator + whole-body IK) from robots/{robot}/{robot}.xml (BSD-3-Clause, robots/{robot}/LICENSE).",
             "# 30 fps; gaits are steady cycles (loop: wrap), kicks and routes start and end standing (loop: clamp)."]
    lines += comments
    lines.append("motions:")
    lines += [f"  - {{file: {f}, weight: {w}}}" for f, w in entries]
    return "\n".join(lines) + "\n" + extra


def dataset_yamls(robot_name: str, info: dict) -> dict:
    """{filename: text} of the dataset YAMLs of one robot."""
    profile = PROFILES[robot_name]
    specs = clip_specs(profile)
    gait_c = [_gait_comment(n, s, profile) for n, s in specs.items() if isinstance(s, GaitParams)]
    loco = [("stand.npz", 1.0), ("walk.npz", 2.0), ("walk_fast.npz", 2.0), ("turn_left.npz", 1.0),
            ("turn_right.npz", 1.0), ("side_step_left.npz", 1.0), ("side_step_right.npz", 1.0)]
    out = {
        "walk.yaml": _yaml(robot_name, [("walk.npz", 1.0)], ["# The forward walk alone (DeepMimic).", gait_c[0]]),
        "locomotion.yaml": _yaml(robot_name, loco, ["# Locomotion: stand, walk at two speeds, turn in place, side steps."]
                                 + gait_c),
    }
    kick_c = ["# The two kicks (configs/*_kick.yaml pair this dataset with locomotion.yaml).",
              "# Ball and contact of each kick, in the clip's frame (origin: the feet's midpoint at",
              "# frame 0, x forward, z up), in `kicks:` below (ignored by the dataset loader)."]
    extra = ["kicks:"]
    for n in ("kick_right", "kick_left"):
        if n not in info or "ball" not in info[n]:
            continue
        k = info[n]
        extra += [f"  {n}.npz:",
                  f"    ball_center: [{', '.join(_f(x) for x in k['ball'])}]",
                  f"    ball_radius: {_f(k['ball_radius'])}",
                  f"    contact_time: {_f(k['contact_time'])}   # s (frame {k['contact_frame']})",
                  f"    foot_speed: {_f(k['foot_speed_planned'], 2)}   # m/s of the instep at contact, along +x",
                  f"    instep_at_contact: [{', '.join(_f(x) for x in k['instep_at_contact'])}]"]
    out["kick.yaml"] = _yaml(robot_name, [("kick_right.npz", 1.0), ("kick_left.npz", 1.0)], kick_c,
                             "\n".join(extra) + "\n")
    routes = route_specs(profile)
    rp0 = next(iter(routes.values()))
    route_c = [f"# Routes: walks from standing to standing whose step changes (route_specs, seed {ROUTE_SEED}):",
               f"# leg 1 reached in 3 steps, held 2 more, blended to leg 2 over 3, held 1 more, ramped down over 3;",
               f"# steps of {rp0.step_time:g} s (double support {rp0.double_support:g} s), swing height "
               f"{rp0.step_height:g} m. Legs: forward m, leftward m, turn deg (per step)."]
    route_c += [f"#   {n}: " + "; ".join(f"{l:+.3f} {y:+.3f} {np.degrees(t):+.1f}" for l, y, t in r.legs)
                for n, r in routes.items()]
    out["walks.yaml"] = _yaml(robot_name, [(f"{n}.npz", 1.0) for n in routes], route_c)
    return out


def write_robot(robot_name: str, out_dir, names=None, verbose: bool = False) -> dict:
    """Author and write the clips (+ the dataset YAMLs when all clips are made) of one robot."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips, info = author_clips(robot_name, names, verbose=verbose)
    for n, c in clips.items():
        c.save_npz(out_dir / f"{n}.npz")
    if names is None:
        for fname, text in dataset_yamls(robot_name, info).items():
            atomic_write(out_dir / fname, text)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.tools.author",
                                 description="Author the project's reference clips (deterministic).")
    ap.add_argument("--all", action="store_true", help="every robot, every clip, into motions/<robot>/")
    ap.add_argument("--robot", action="append", choices=sorted(PROFILES), help="robot(s) (repeatable)")
    ap.add_argument("--clips", default=None, help="comma-separated subset (no dataset YAMLs are written then)")
    ap.add_argument("--out", default=None, help="output folder (default motions/; with one robot and --out, "
                                                "the clips go straight into it)")
    ap.add_argument("--check", action="store_true", help="print the plausibility table of what was written")
    a = ap.parse_args(argv)
    robots = sorted(PROFILES) if a.all or not a.robot else a.robot
    if not a.all and not a.robot:
        ap.error("pass --all or --robot NAME")
    names = a.clips.split(",") if a.clips else None
    status = 0
    for r in robots:
        if a.out is None:
            out = REPO / "motions" / r
        else:
            out = Path(a.out) / r if (a.all or len(robots) > 1) else Path(a.out)
        t0 = time.time()
        write_robot(r, out, names, verbose=True)
        print(f"{r}: wrote {out} in {time.time() - t0:.1f} s", file=sys.stderr)
        if a.check:
            from mjxmimic.tools.plausibility import check_clip, format_table
            from mjxmimic.robots import load_robot
            robot = load_robot(r)
            reps = [check_clip(Clip.load_npz(p), robot) for p in sorted(out.glob("*.npz"))]
            print(format_table(reps))
            status |= 0 if all(x.ok for x in reps) else 1
    return status


if __name__ == "__main__":
    sys.exit(main())

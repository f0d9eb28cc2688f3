"""Whole-trajectory inverse kinematics on MJX kinematics.

Solves root pose + joint angles for every frame of a clip at once (Levenberg-Marquardt,
one jit-compiled program per robot / keypoint set / size bucket)::

    kps = keypoints(robot, ["left_foot", "right_foot", "com", "Trunk"])
    tg = Targets.empty(T, len(kps))
    tg.pos[:, 0] = ...; tg.w_pos[:, 0] = 1.0                 # metres, weight per metre
    tg.rot[:, 0] = ...; tg.w_rot[:, 0] = 0.3                 # wxyz, weight per radian
    res = solve_ik(robot, kps, tg, init_qpos, posture=..., fps=30)
    res.qpos, res.pos_err, res.penetration

Per frame the residuals are (all weighted, least squares):

- keypoint positions: sites (``robot.yaml`` ``sites:``), body origins, or ``"com"`` (the
  whole-body centre of mass);
- keypoint orientations (the site/body frame; ``rot`` targets as wxyz quaternions);
- the floor: every collision geom's lowest point (:func:`geom_min_z`) above ``z = 0``
  (a one-sided hinge, weight ``w_floor`` per metre below the floor);
- a posture prior (joint angles towards ``posture``, small weight) that resolves redundancy;

and across frames a temporal smoothness term, the second difference of root position,
root rotation (relative rotation vectors) and joint angles, in acceleration units
(weight ``w_smooth`` per m/s^2 or rad/s^2). Joint limits are hard: every step is projected
into ``robot.joint_range``. Stance feet are held still by giving them a fixed target while
in contact: :func:`lock_stance` turns a foot trajectory plus a contact mask into such targets.

Frames can belong to independent ``segments`` (several clips solved in one batch): no
smoothness crosses a segment boundary, and each segment has its own LM damping and
accept/reject test and its own conjugate-gradient scalars, so a segment's solution does
not depend on what it is batched with (up to float reduction order).

Everything runs in float64 inside ``jax.enable_x64`` (the caller's precision setting is left alone).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from mjxmimic import math as rmath
from mjxmimic.motions.fk import frame_kinematics
from mjxmimic.robots.geometry import geom_min_z

__all__ = ["TreeFK", "Keypoint", "Targets", "IKConfig", "IKResult", "keypoints", "solve_ik", "lock_stance",
           "contact_phases", "forward_points", "quat_mat_np"]

_BUCKET = 64
_FREE, _HINGE = int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_HINGE)


@dataclasses.dataclass(frozen=True)
class Keypoint:
    """A point (and frame) on the robot: ``body`` id (-1 = whole-body CoM), local offset and
    local frame orientation (wxyz) in that body's frame."""
    name: str
    body: int
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


def keypoints(robot, names: Sequence[str]) -> tuple[Keypoint, ...]:
    """Keypoints by name: a site of the robot, a body (its frame origin), or ``"com"``."""
    m = robot.model
    out = []
    for n in names:
        if n == "com":
            out.append(Keypoint("com", -1))
            continue
        s = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, n)
        if s >= 0:
            out.append(Keypoint(n, int(m.site_bodyid[s]), tuple(float(v) for v in m.site_pos[s]),
                                tuple(float(v) for v in m.site_quat[s])))
            continue
        b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)
        if b >= 0:
            out.append(Keypoint(n, int(b)))
            continue
        sites = [m.site(i).name for i in range(m.nsite)]
        raise KeyError(f"robot {robot.name} has no site or body '{n}' (sites: {sites}; bodies: "
                       f"{list(robot.body_names)}; or 'com')")
    return tuple(out)


@dataclasses.dataclass
class Targets:
    """Per-frame keypoint targets; a zero weight switches a target off."""
    pos: np.ndarray    # [T, K, 3] world, metres
    w_pos: np.ndarray  # [T, K]   weight per metre
    rot: np.ndarray    # [T, K, 4] world wxyz
    w_rot: np.ndarray  # [T, K]   weight per radian

    @staticmethod
    def empty(t: int, k: int) -> "Targets":
        rot = np.zeros((t, k, 4))
        rot[..., 0] = 1.0
        return Targets(np.zeros((t, k, 3)), np.zeros((t, k)), rot, np.zeros((t, k)))

    @property
    def num_frames(self) -> int:
        return self.pos.shape[0]

    def concat(self, other: "Targets") -> "Targets":
        return Targets(*(np.concatenate([a, b], 0) for a, b in
                         zip(dataclasses.astuple(self), dataclasses.astuple(other))))


@dataclasses.dataclass(frozen=True)
class IKConfig:
    iters: int = 30            # LM iterations (fixed: deterministic, jit-friendly)
    cg_iters: int = 25         # conjugate-gradient iterations per LM step
    w_smooth: float = 1e-4     # per m/s^2 or rad/s^2 of root/joint acceleration
    w_floor: float = 10.0      # per metre of a collision geom below z = floor_margin
    floor_margin: float = 0.0
    mu0: float = 1e-4          # initial LM damping (relative to the Gauss-Newton diagonal)
    backend: str = "tree"      # "tree" (TreeFK) or "mjx" (mjx.kinematics; same numbers, slow to compile)


@dataclasses.dataclass
class IKResult:
    qpos: np.ndarray         # [T, nq]
    pos_err: np.ndarray      # [T, K] |keypoint - target| (m), NaN where the weight is 0
    rot_err: np.ndarray      # [T, K] angle (rad), NaN where the weight is 0
    penetration: np.ndarray  # [T] max depth of any collision geom below the floor (m), >= 0
    cost: np.ndarray         # [S] final cost per segment

    def max_pos_err(self) -> float:
        return float(np.nanmax(self.pos_err)) if np.isfinite(self.pos_err).any() else 0.0


# ---------------------------------------------------------------------------------------
# stance helpers (numpy)
# ---------------------------------------------------------------------------------------
def contact_phases(contact: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of True in a boolean [T] mask."""
    c = np.asarray(contact, bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], c.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def lock_stance(pos: np.ndarray, rot: np.ndarray | None, contact: np.ndarray, floor_z: float | None = 0.0):
    """Stance-foot targets: during every contact run, the foot's position is the run's mean
    (its height ``floor_z`` unless None) and its orientation the run's mean heading, level.

    pos [T, 3], rot [T, 4] wxyz (or None), contact [T] bool -> (pos, rot) copies."""
    pos = np.array(pos, np.float64)
    rot = None if rot is None else np.array(rot, np.float64)
    for a, b in contact_phases(contact):
        p = pos[a:b].mean(0)
        if floor_z is not None:
            p[2] = floor_z
        pos[a:b] = p
        if rot is not None:
            yaw = np.asarray(rmath.heading(jnp.asarray(rot[a:b])))
            mean_yaw = float(np.arctan2(np.sin(yaw).mean(), np.cos(yaw).mean()))
            rot[a:b] = np.asarray(rmath.yaw_quat(mean_yaw))
    return pos, rot


def forward_points(robot, qpos: np.ndarray, kps: Sequence[Keypoint]):
    """Keypoint positions [T, K, 3] and frame orientations [T, K, 4] (MuJoCo C)."""
    m = robot.model
    xpos, xmat, xquat, xipos = frame_kinematics(m, qpos, ("xpos", "xmat", "xquat", "xipos"))
    pos = np.zeros((len(xpos), len(kps), 3))
    rot = np.zeros((len(xpos), len(kps), 4))
    mass = m.body_mass[1:]
    for t in range(len(xpos)):
        for k, kp in enumerate(kps):
            if kp.body < 0:
                pos[t, k] = (mass[:, None] * xipos[t, 1:]).sum(0) / mass.sum()
                rot[t, k] = (1, 0, 0, 0)
            else:
                pos[t, k] = xpos[t, kp.body] + xmat[t, kp.body] @ np.asarray(kp.offset)
                mujoco.mju_mulQuat(rot[t, k], xquat[t, kp.body], np.asarray(kp.quat, np.float64))
    return pos, rot


def _penetration(robot, qpos: np.ndarray) -> np.ndarray:
    """[T] depth (m, >= 0) of the lowest collision-geom point below z = 0 (MuJoCo C kinematics)."""
    m = robot.model
    g = np.asarray(robot.collision_geom_ids)
    gp, gm = frame_kinematics(m, qpos, ("geom_xpos", "geom_xmat"))
    with jax.enable_x64(True):
        z = np.asarray(geom_min_z(m.geom_type[g], m.geom_size[g], jnp.asarray(gp[:, g]), jnp.asarray(gm[:, g])))
    return np.maximum(-z.min(-1), 0.0)


# ---------------------------------------------------------------------------------------
# the solver
# ---------------------------------------------------------------------------------------
def _check_robot(robot):
    m = robot.model
    if int(m.jnt_type[0]) != _FREE or m.nq != 7 + robot.num_joints:
        raise ValueError(f"robot {robot.name}: IK needs a free root joint followed by the actuated hinges only")


def quat_mat_np(q) -> np.ndarray:
    """Rotation matrices [..., 3, 3] of (not necessarily unit) wxyz quaternions, float64."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    with jax.enable_x64(True):
        return np.asarray(rmath.quat_to_mat(jnp.asarray(q, jnp.float64)), np.float64)


class TreeFK:
    """MuJoCo forward kinematics (mj_kinematics: body, inertial and geom frames) for a tree
    of one free root joint and hinge joints, as a small JAX function.

    Same numbers as ``mjx.kinematics`` (tests/test_reference_motions.py checks it), but a
    much smaller XLA program: rotation matrices, bodies processed a tree level at a time,
    vectorised, gathers only. jacfwd through mjx.kinematics takes about a minute to compile
    on a 2-core CPU, through this a few seconds. ``IKConfig(backend="mjx")`` uses mjx.kinematics.
    Host-side FK of given frames (no Jacobians) is :func:`mjxmimic.motions.fk.frame_kinematics`;
    this one exists because the IK differentiates through it in JAX."""

    def __init__(self, m: mujoco.MjModel):
        self.nbody, self.ngeom = m.nbody, m.ngeom
        if m.nbody < 2 or m.body_jntnum[1] != 1 or int(m.jnt_type[m.body_jntadr[1]]) != _FREE:
            raise ValueError("TreeFK needs body 1 to be the root with a free joint")
        self.root_adr = int(m.jnt_qposadr[m.body_jntadr[1]])
        depth = np.zeros(m.nbody, int)
        for b in range(1, m.nbody):
            depth[b] = depth[m.body_parentid[b]] + 1
            if b > 1 and m.body_jntnum[b] > 1:
                raise ValueError(f"TreeFK: body {m.body(b).name} has {m.body_jntnum[b]} joints (max 1)")
            if b > 1 and m.body_jntnum[b] == 1 and int(m.jnt_type[m.body_jntadr[b]]) != _HINGE:
                raise ValueError(f"TreeFK supports hinge joints only below the root ({m.body(b).name})")
        # rows of the level-ordered stack: world, root, then level 2, 3, ...
        order = [0, 1]
        self.levels = []
        for lv in range(2, int(depth.max()) + 1):
            bs = np.flatnonzero(depth == lv)
            has = m.body_jntnum[bs] == 1
            jid = np.where(has, m.body_jntadr[bs], 0)
            axis = m.jnt_axis[jid] * has[:, None]
            kx = np.zeros((len(bs), 3, 3))   # cross-product matrix of the axis
            kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
            kx = kx - kx.transpose(0, 2, 1)
            row = {b: i for i, b in enumerate(order)}
            self.levels.append(dict(
                parent=np.array([row[p] for p in m.body_parentid[bs]]), pos=m.body_pos[bs].copy(),
                rot=quat_mat_np(m.body_quat[bs]), adr=np.where(has, m.jnt_qposadr[jid], 0),
                has=has.astype(np.float64), K=kx, K2=kx @ kx, jpos=m.jnt_pos[jid] * has[:, None]))
            order += bs.tolist()
        self.row_of_body = np.argsort(np.array(order))
        self.ipos = m.body_ipos.copy()
        self.geom_body, self.geom_pos = m.geom_bodyid.copy(), m.geom_pos.copy()
        self.geom_rot = quat_mat_np(m.geom_quat)

    def __call__(self, qpos):
        """qpos [nq] -> dict xpos [nb,3], xmat [nb,3,3], xipos [nb,3], geom_xpos [ng,3], geom_xmat [ng,3,3]."""
        dt = qpos.dtype
        a = self.root_adr
        xpos = jnp.stack([jnp.zeros(3, dt), qpos[a:a + 3]])
        xmat = jnp.stack([jnp.eye(3, dtype=dt), rmath.quat_to_mat(rmath.normalize(qpos[a + 3:a + 7]))])
        for L in self.levels:
            rp = xmat[L["parent"]]
            pos = xpos[L["parent"]] + jnp.einsum("bij,bj->bi", rp, L["pos"])
            rb = jnp.einsum("bij,bjk->bik", rp, L["rot"])
            ang = qpos[L["adr"]] * L["has"]
            rj = (jnp.eye(3, dtype=dt) + jnp.sin(ang)[:, None, None] * L["K"]
                  + (1.0 - jnp.cos(ang))[:, None, None] * L["K2"])
            rot = jnp.einsum("bij,bjk->bik", rb, rj)
            if np.any(L["jpos"]):   # hinge axis not through the body origin: keep the anchor fixed
                pos = pos + jnp.einsum("bij,bj->bi", rb, L["jpos"]) - jnp.einsum("bij,bj->bi", rot, L["jpos"])
            xpos = jnp.concatenate([xpos, pos])
            xmat = jnp.concatenate([xmat, rot])
        xpos, xmat = xpos[self.row_of_body], xmat[self.row_of_body]
        xipos = xpos + jnp.einsum("bij,bj->bi", xmat, self.ipos)
        gm = xmat[self.geom_body]
        return dict(xpos=xpos, xmat=xmat, xipos=xipos,
                    geom_xpos=xpos[self.geom_body] + jnp.einsum("gij,gj->gi", gm, self.geom_pos),
                    geom_xmat=jnp.einsum("gij,gjk->gik", gm, self.geom_rot))


def _mjx_fk(m_np):
    from mujoco import mjx
    with jax.enable_x64(True):
        m = mjx.put_model(m_np)
        d0 = mjx.make_data(m)

    def fk(qpos):
        d = mjx.kinematics(m, d0.replace(qpos=qpos))
        return dict(xpos=d.xpos, xmat=d.xmat, xipos=d.xipos, geom_xpos=d.geom_xpos,
                    geom_xmat=d.geom_xmat.reshape(-1, 3, 3))
    return fk


@functools.lru_cache(maxsize=8)
def _solver(robot_name: str, kps: tuple[Keypoint, ...], num_segments: int, cfg: IKConfig):
    from mjxmimic.robots import load_robot
    robot = load_robot(robot_name)
    _check_robot(robot)
    m_np = robot.model
    fk = _mjx_fk(m_np) if cfg.backend == "mjx" else TreeFK(m_np)
    qidx = np.asarray(robot.qpos_idx)
    lo, hi = robot.joint_range[:, 0], robot.joint_range[:, 1]
    kb = np.array([max(k.body, 0) for k in kps])
    is_com = np.array([k.body < 0 for k in kps])
    koff = np.array([k.offset for k in kps], np.float64)
    krot = quat_mat_np(np.array([k.quat for k in kps], np.float64))
    mass = m_np.body_mass.copy()
    mass[0] = 0.0
    g = np.asarray(robot.collision_geom_ids)
    gtype, gsize = m_np.geom_type[g], m_np.geom_size[g]
    S = num_segments
    nj = robot.num_joints
    n = 6 + nj

    inv = np.argsort(qidx)   # qpos[7:] = joints[inv] (qpos_idx is a permutation of 7..nq-1)

    def assemble(p, q, j):
        return jnp.concatenate([p, q, j[inv]])

    def frame_res(delta, p, q, j, tg):
        p2 = p + delta[:3]
        q2 = rmath.quat_mul(q, rmath.exp_map_to_quat(delta[3:6]))
        j2 = j + delta[6:]
        d = fk(assemble(p2, q2, j2))
        pts = d["xpos"][kb] + jnp.einsum("kij,kj->ki", d["xmat"][kb], koff)
        com = (mass[:, None] * d["xipos"]).sum(0) / mass.sum()
        pts = jnp.where(is_com[:, None], com[None], pts)
        e_pos = (pts - tg["pos"]) * tg["w_pos"][:, None]
        # |R - R_target|_F / sqrt(2) = 2 sin(angle / 2): ~ the angle, monotonic up to pi
        rot = jnp.einsum("kij,kjl->kil", d["xmat"][kb], krot)
        e_rot = (rot - tg["rot"]).reshape(-1, 9) * (tg["w_rot"][:, None] / np.sqrt(2.0))
        z = geom_min_z(gtype, gsize, d["geom_xpos"][g], d["geom_xmat"][g])
        e_floor = jnp.minimum(z - cfg.floor_margin, 0.0) * cfg.w_floor
        e_post = (j2 - tg["posture"]) * tg["w_post"]
        return jnp.concatenate([e_pos.ravel(), e_rot.ravel(), e_floor, e_post])

    def value_and_jac(p, q, j, tg):
        f = lambda dl: (frame_res(dl, p, q, j, tg),) * 2  # noqa: E731
        jac, r = jax.jacfwd(f, has_aux=True)(jnp.zeros(n))
        return r, jac

    res_all = jax.vmap(lambda p, q, j, tg: frame_res(jnp.zeros(n), p, q, j, tg))
    vjac_all = jax.vmap(value_and_jac)

    def second_diff(x, smask):
        """Current second differences [T, n] (rotations as relative rotation vectors), masked."""
        p, q, j = x
        lin = jnp.concatenate([p, j], -1)
        dd = jnp.roll(lin, 1, 0) - 2 * lin + jnp.roll(lin, -1, 0)
        qn = jnp.roll(q, -1, 0)
        w = rmath.quat_to_exp_map(rmath.quat_mul(rmath.quat_conj(q), qn))   # rel. rotation t -> t+1
        a = w - jnp.roll(w, 1, 0)
        out = jnp.concatenate([dd[:, :3], a, dd[:, 3:]], -1)
        return out * smask[:, None]

    def L(v, smask):
        return (jnp.roll(v, 1, 0) - 2 * v + jnp.roll(v, -1, 0)) * smask[:, None]

    def LT(w, smask):
        w = w * smask[:, None]
        return jnp.roll(w, -1, 0) - 2 * w + jnp.roll(w, 1, 0)

    def seg_sum(x, seg):
        return jax.ops.segment_sum(x, seg, num_segments=S)

    def costs(x, a, tg, seg, smask, ws):
        r = res_all(*x, tg)
        c = 0.5 * (r * r).sum(-1) + 0.5 * ws * ws * (a * a).sum(-1)
        return seg_sum(c, seg)

    def retract(x, dx):
        p, q, j = x
        p = p + dx[:, :3]
        q = rmath.normalize(rmath.quat_mul(q, rmath.exp_map_to_quat(dx[:, 3:6])))
        j = jnp.clip(j + dx[:, 6:], lo, hi)
        return p, q, j

    def solve(p, q, j, tg, seg, smask, ws):
        x = (p, q, j)
        a0 = second_diff(x, smask)
        cost0 = costs(x, a0, tg, seg, smask, ws)
        mu0 = jnp.full((S,), cfg.mu0)
        diag_ll = (jnp.roll(smask, 1) + 4 * smask + jnp.roll(smask, -1)) * ws * ws

        def step(_, carry):
            x, cost, mu = carry
            r, jac = vjac_all(*x, tg)                  # [T, R], [T, R, n]
            a = second_diff(x, smask)
            H = jnp.einsum("tri,trj->tij", jac, jac)
            grad = jnp.einsum("tri,tr->ti", jac, r) + ws * ws * LT(a, smask)
            dg = jnp.diagonal(H, axis1=1, axis2=2)
            Hd = H + jax.vmap(jnp.diag)(mu[seg][:, None] * (dg + 1e-6))
            P = Hd + jax.vmap(jnp.diag)(jnp.broadcast_to(diag_ll[:, None], dg.shape))
            Pinv = jnp.linalg.inv(P)

            def A(v):
                return jnp.einsum("tij,tj->ti", Hd, v) + ws * ws * LT(L(v, smask), smask)

            def prec(v):
                return jnp.einsum("tij,tj->ti", Pinv, v)

            def sdot(u, v):
                return seg_sum((u * v).sum(-1), seg)

            b = -grad
            dx = prec(b)
            res = b - A(dx)
            z = prec(res)
            pdir = z
            rz = sdot(res, z)

            def cg(_, c):
                dx, res, pdir, rz = c
                Ap = A(pdir)
                pAp = sdot(pdir, Ap)
                alpha = jnp.where(pAp > 0, rz / jnp.where(pAp > 0, pAp, 1.0), 0.0)
                dx = dx + alpha[seg][:, None] * pdir
                res = res - alpha[seg][:, None] * Ap
                z = prec(res)
                rz_new = sdot(res, z)
                beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
                pdir = z + beta[seg][:, None] * pdir
                return dx, res, pdir, rz_new

            dx, *_ = jax.lax.fori_loop(0, cfg.cg_iters, cg, (dx, res, pdir, rz))
            xn = retract(x, dx)
            cn = costs(xn, second_diff(xn, smask), tg, seg, smask, ws)
            acc = cn < cost
            af = acc[seg]
            x = tuple(jnp.where(af.reshape((-1,) + (1,) * (a_.ndim - 1)), b_, a_) for a_, b_ in zip(x, xn))
            cost = jnp.where(acc, cn, cost)
            mu = jnp.clip(jnp.where(acc, mu * 0.3, mu * 10.0), 1e-10, 1e8)
            return x, cost, mu

        x, cost, _ = jax.lax.fori_loop(0, cfg.iters, step, (x, cost0, mu0))
        return x, cost

    return jax.jit(solve)


def _bucket(x: int, b: int) -> int:
    return max(b, -(-x // b) * b)


def solve_ik(robot, kps: Sequence[Keypoint], targets: Targets, init_qpos: np.ndarray, *,
             posture: np.ndarray | None = None, w_posture=0.01, segments: np.ndarray | None = None,
             fps: float = 30.0, config: IKConfig = IKConfig()) -> IKResult:
    """Solve the whole trajectory; see the module docstring.

    init_qpos [T, nq]: the starting guess (root pose + joints), also the default ``posture``.
    posture [T, J] (robot joint order), w_posture: scalar, [J] or [T, J] weight per radian.
    segments [T] int: independent pieces (no smoothness across; default one segment).
    """
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    _check_robot(robot)
    kps = tuple(kps)
    init_qpos = np.asarray(init_qpos, np.float64)
    T, K = targets.num_frames, len(kps)
    if init_qpos.shape != (T, robot.model.nq):
        raise ValueError(f"init_qpos must be [{T}, {robot.model.nq}], got {init_qpos.shape}")
    if targets.pos.shape != (T, K, 3) or targets.rot.shape != (T, K, 4):
        raise ValueError(f"targets must be [T={T}, K={K}, 3|4], got {targets.pos.shape}, {targets.rot.shape}")
    J = robot.num_joints
    j0 = init_qpos[:, robot.qpos_idx]
    posture = j0 if posture is None else np.asarray(posture, np.float64)
    w_post = np.broadcast_to(np.asarray(w_posture, np.float64), (T, J))
    seg = np.zeros(T, np.int64) if segments is None else np.asarray(segments)
    uniq, seg = np.unique(seg, return_inverse=True)
    ns = len(uniq)
    # neighbours in the same segment -> smoothness row valid
    smask = np.zeros(T)
    if T >= 3:
        smask[1:-1] = (seg[:-2] == seg[1:-1]) & (seg[2:] == seg[1:-1])
    # pad frames and segments to buckets so a few compiled programs serve every call
    Tp, Sp = _bucket(T, _BUCKET), _bucket(ns + 1, 8)
    pad = Tp - T

    def padf(a, fill):
        a = np.asarray(a, np.float64)
        if pad == 0:
            return a
        return np.concatenate([a, np.broadcast_to(fill, (pad,) + a.shape[1:])], 0)

    rot_fill = np.zeros((K, 4))
    rot_fill[:, 0] = 1
    tg = {"pos": padf(targets.pos, 0.0), "w_pos": padf(targets.w_pos, 0.0),
          "rot": quat_mat_np(padf(targets.rot, rot_fill)),
          "w_rot": padf(targets.w_rot, 0.0), "posture": padf(posture, robot.default_joint_pos),
          "w_post": padf(w_post, 1.0)}
    q0 = init_qpos[:, 3:7] / np.linalg.norm(init_qpos[:, 3:7], axis=-1, keepdims=True)
    p = padf(init_qpos[:, :3], robot.default_qpos[:3])
    q = padf(q0, robot.default_qpos[3:7])
    j = padf(np.clip(j0, robot.joint_range[:, 0], robot.joint_range[:, 1]), robot.default_joint_pos)
    segp = np.concatenate([seg, np.full(pad, ns)]).astype(np.int32)
    smaskp = padf(smask, 0.0)
    solve = _solver(robot.name, kps, Sp, config)
    ws = config.w_smooth * fps * fps
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in (p, q, j)]
        tgj = {k: jnp.asarray(v) for k, v in tg.items()}
        (p, q, j), cost = solve(*args, tgj, jnp.asarray(segp), jnp.asarray(smaskp), jnp.float64(ws))
        p, q, j, cost = (np.asarray(a, np.float64) for a in (p, q, j, cost))
    qpos = np.tile(robot.model.qpos0, (T, 1))
    qpos[:, :3], qpos[:, 3:7], qpos[:, robot.qpos_idx] = p[:T], q[:T], j[:T]
    # errors with MuJoCo C (a second XLA program for them would cost seconds of compile time)
    pos, rot = forward_points(robot, qpos, kps)
    pe = np.linalg.norm(pos - targets.pos, axis=-1)
    R, Rt = quat_mat_np(rot), quat_mat_np(targets.rot)
    chord = np.linalg.norm((R - Rt).reshape(T, K, 9), axis=-1) / np.sqrt(8.0)
    re = 2.0 * np.arcsin(np.clip(chord, 0.0, 1.0))
    pen = _penetration(robot, qpos)
    pe = np.where(targets.w_pos > 0, pe, np.nan)
    re = np.where(targets.w_rot > 0, re, np.nan)
    return IKResult(qpos=qpos, pos_err=pe, rot_err=re, penetration=pen, cost=cost[:ns])

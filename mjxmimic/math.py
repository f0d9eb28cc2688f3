"""Rotation math, defined once for the whole project.

Quaternions are (w, x, y, z), scalar first, as MuJoCo stores them. Every function
broadcasts over leading axes and is jit/vmap/grad-safe.
"""
from __future__ import annotations

import jax.numpy as jnp

__all__ = ["normalize", "quat_conj", "quat_mul", "quat_rotate", "quat_rotate_inv", "quat_from_axis_angle",
           "quat_to_exp_map", "exp_map_to_quat", "quat_angle", "quat_diff_angle", "quat_to_tan_norm",
           "heading", "yaw_quat", "heading_quat", "heading_quat_inv", "quat_slerp", "quat_to_mat", "quat_xyzw_to_wxyz",
           "quat_wxyz_to_xyzw", "wrap_angle", "quat_angular_velocity"]

_EPS = 1e-8


def normalize(q):
    return q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), _EPS)


def quat_conj(q):
    return jnp.concatenate([q[..., :1], -q[..., 1:]], axis=-1)


def quat_mul(a, b):
    aw, ax, ay, az = jnp.moveaxis(a, -1, 0)
    bw, bx, by, bz = jnp.moveaxis(b, -1, 0)
    return jnp.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_rotate(q, v):
    """Rotate vector(s) v by unit quaternion(s) q."""
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * jnp.cross(u, v)
    return v + w * t + jnp.cross(u, t)


def quat_rotate_inv(q, v):
    return quat_rotate(quat_conj(q), v)


def quat_from_axis_angle(axis, angle):
    axis = axis / jnp.maximum(jnp.linalg.norm(axis, axis=-1, keepdims=True), _EPS)
    half = 0.5 * jnp.asarray(angle)[..., None]
    return jnp.concatenate([jnp.cos(half), jnp.sin(half) * axis], axis=-1)


def _safe_norm(v):
    # Gradient-safe at v = 0 (the double-where trick).
    sq = jnp.sum(v * v, axis=-1)
    nz = sq > _EPS * _EPS
    return jnp.where(nz, jnp.sqrt(jnp.where(nz, sq, 1.0)), 0.0)


def quat_to_exp_map(q):
    """Rotation vector (axis * angle, angle in [0, pi]) of q."""
    q = normalize(q)
    q = jnp.where(q[..., :1] < 0, -q, q)  # shortest arc
    s = _safe_norm(q[..., 1:])
    angle = 2.0 * jnp.arctan2(s, q[..., 0])
    # angle / s -> 2 as s -> 0
    scale = jnp.where(s > 1e-6, angle / jnp.where(s > 1e-6, s, 1.0), 2.0)
    return q[..., 1:] * scale[..., None]


def exp_map_to_quat(e):
    angle = _safe_norm(e)
    half = 0.5 * angle
    # sin(half)/angle -> 0.5 as angle -> 0
    k = jnp.where(angle > 1e-6, jnp.sin(half) / jnp.where(angle > 1e-6, angle, 1.0), 0.5)
    return jnp.concatenate([jnp.cos(half)[..., None], e * k[..., None]], axis=-1)


def quat_angle(q):
    """Rotation angle of q in [0, pi]."""
    w = jnp.abs(q[..., 0])
    s = _safe_norm(q[..., 1:])
    return 2.0 * jnp.arctan2(s, w)


def quat_diff_angle(a, b):
    """Angle of the rotation that takes a to b, in [0, pi]."""
    return quat_angle(quat_mul(quat_conj(a), b))


def quat_to_tan_norm(q):
    """MimicKit's 6-D rotation encoding: the rotated x (tangent) and z (normal) axes."""
    shape = q.shape[:-1] + (3,)
    x = quat_rotate(q, jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0]), shape))
    z = quat_rotate(q, jnp.broadcast_to(jnp.array([0.0, 0.0, 1.0]), shape))
    return jnp.concatenate([x, z], axis=-1)


def heading(q):
    """Yaw angle of the rotated x axis in the world xy plane."""
    shape = q.shape[:-1] + (3,)
    x = quat_rotate(q, jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0]), shape))
    return jnp.arctan2(x[..., 1], x[..., 0])


def yaw_quat(yaw):
    yaw = jnp.asarray(yaw)
    z = jnp.zeros_like(yaw)
    return jnp.stack([jnp.cos(0.5 * yaw), z, z, jnp.sin(0.5 * yaw)], axis=-1)


def heading_quat(q):
    """Rotation about z by q's heading (the yaw part of q)."""
    return yaw_quat(heading(q))


def heading_quat_inv(q):
    """Rotation about z that removes q's heading (MimicKit's heading frame)."""
    return yaw_quat(-heading(q))


def quat_slerp(a, b, t):
    """Spherical interpolation from a (t=0) to b (t=1) along the shortest arc."""
    t = jnp.asarray(t)[..., None]
    dot = jnp.sum(a * b, axis=-1, keepdims=True)
    b = jnp.where(dot < 0, -b, b)
    dot = jnp.abs(dot)
    lin = dot > 0.9995  # nearly parallel: lerp avoids dividing by sin(0)
    theta = jnp.arccos(jnp.clip(dot, -1.0, 1.0))
    sin_t = jnp.where(lin, 1.0, jnp.sin(theta))
    wa = jnp.where(lin, 1.0 - t, jnp.sin((1.0 - t) * theta) / sin_t)
    wb = jnp.where(lin, t, jnp.sin(t * theta) / sin_t)
    return normalize(wa * a + wb * b)


def quat_to_mat(q):
    w, x, y, z = jnp.moveaxis(q, -1, 0)
    return jnp.stack([
        jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_xyzw_to_wxyz(q):
    return jnp.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def quat_wxyz_to_xyzw(q):
    return jnp.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def wrap_angle(a):
    return jnp.mod(a + jnp.pi, 2.0 * jnp.pi) - jnp.pi


def quat_angular_velocity(q0, q1, dt):
    """World-frame angular velocity that takes q0 to q1 in dt (finite difference)."""
    return quat_to_exp_map(quat_mul(q1, quat_conj(q0))) / dt

"""Rotation math against MuJoCo's C implementations and closed forms."""
import mujoco
import numpy as np
import pytest

from mjxmimic import math as rm

RNG = np.random.default_rng(0)


def rand_quat(n):
    q = RNG.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def same_rot(a, b, atol=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    assert np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)).max() < atol


def test_mul_and_rotate_match_mujoco():
    a, b, v = rand_quat(20), rand_quat(20), RNG.normal(size=(20, 3))
    ref_mul, ref_rot = np.zeros((20, 4)), np.zeros((20, 3))
    for i in range(20):
        mujoco.mju_mulQuat(ref_mul[i], a[i], b[i])
        mujoco.mju_rotVecQuat(ref_rot[i], v[i], a[i])
    np.testing.assert_allclose(rm.quat_mul(a, b), ref_mul, atol=1e-5)
    np.testing.assert_allclose(rm.quat_rotate(a, v), ref_rot, atol=1e-5)
    np.testing.assert_allclose(rm.quat_rotate_inv(a, rm.quat_rotate(a, v)), v, atol=1e-5)
    mats = np.zeros((20, 9))
    for i in range(20):
        mujoco.mju_quat2Mat(mats[i], a[i])
    np.testing.assert_allclose(rm.quat_to_mat(a), mats.reshape(20, 3, 3), atol=1e-5)


def test_exp_map_round_trip_and_axis_angle():
    q = rand_quat(50)
    same_rot(rm.exp_map_to_quat(rm.quat_to_exp_map(q)), q)
    axis = np.array([0.0, 0.6, 0.8])
    e = np.asarray(rm.quat_to_exp_map(rm.quat_from_axis_angle(axis, 1.2)))
    np.testing.assert_allclose(e, 1.2 * axis, atol=1e-5)
    np.testing.assert_allclose(rm.quat_to_exp_map(np.array([1.0, 0, 0, 0])), 0.0, atol=1e-7)
    np.testing.assert_allclose(rm.quat_angle(rm.quat_from_axis_angle(axis, 2.5)), 2.5, atol=1e-5)


def test_slerp_endpoints_midpoint_and_shortest_arc():
    a = rm.quat_from_axis_angle(np.array([0.0, 0, 1]), 0.2)
    b = rm.quat_from_axis_angle(np.array([0.0, 0, 1]), 1.0)
    same_rot(rm.quat_slerp(a, b, 0.0), a)
    same_rot(rm.quat_slerp(a, b, 1.0), b)
    same_rot(rm.quat_slerp(a, b, 0.5), rm.quat_from_axis_angle(np.array([0.0, 0, 1]), 0.6))
    same_rot(rm.quat_slerp(a, -np.asarray(b), 0.5), rm.quat_from_axis_angle(np.array([0.0, 0, 1]), 0.6))


def test_heading_frame_removes_yaw_only():
    yaw, tilt = 0.9, rm.quat_from_axis_angle(np.array([1.0, 0, 0]), 0.3)
    q = rm.quat_mul(rm.yaw_quat(yaw), tilt)
    assert float(rm.heading(q)) == pytest.approx(yaw, abs=1e-5)
    same_rot(rm.quat_mul(rm.heading_quat_inv(q), q), tilt)


def test_tan_norm_is_rotated_x_and_z_axes():
    q = rand_quat(10)
    m = np.asarray(rm.quat_to_mat(q))
    np.testing.assert_allclose(rm.quat_to_tan_norm(q), np.concatenate([m[:, :, 0], m[:, :, 2]], -1), atol=1e-5)


def test_angular_velocity_finite_difference():
    w = np.array([0.3, -1.2, 0.7])
    q0 = rand_quat(1)[0]
    dt = 0.01
    q1 = rm.quat_mul(rm.exp_map_to_quat(w * dt), q0)  # world-frame rotation for dt
    np.testing.assert_allclose(rm.quat_angular_velocity(q0, q1, dt), w, atol=1e-3)
    np.testing.assert_allclose(rm.wrap_angle(np.array([3.5, -3.5, 0.1])), [3.5 - 2 * np.pi, 2 * np.pi - 3.5, 0.1],
                               atol=1e-6)

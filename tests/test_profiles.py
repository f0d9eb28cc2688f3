"""Robot actuation profiles (robots/<name>/robot.yaml ``profiles:``): the vendors' numbers, the
firmware's PD in MuJoCo C, the spec loader's errors. MuJoCo C only: fast."""
import math
import re

import mujoco
import numpy as np
import pytest
import yaml

from mjxmimic.robots.profiles import apply_profile, effort_over_kp, load_profile, profile_default_qpos
from mjxmimic.robots.spec import RobotSpecError, load_spec
from mjxmimic.paths import ROBOTS_DIR


def test_k1_deploy_is_boosters(k1):
    p = load_profile(k1, "deploy")
    j = {n: i for i, n in enumerate(k1.joint_names)}
    expect = {"Left_Hip_Pitch": (80, 2, 30, 0.09375), "Right_Hip_Roll": (80, 2, 35, 0.109375),
              "Left_Hip_Yaw": (80, 2, 20, 0.0625), "Right_Knee_Pitch": (80, 2, 40, 0.125),
              "Left_Ankle_Roll": (30, 2, 20, 0.25 * 20 / 30), "Left_Elbow_Yaw": (4, 1, 14, 0.875),
              "Head_pitch": (4, 1, 6, 0.375)}
    for n, (kp, kd, eff, s) in expect.items():
        assert (p.kp[j[n]], p.kd[j[n]], p.effort[j[n]]) == (kp, kd, eff), n
        assert p.action_scale[j[n]] == pytest.approx(s), n
    assert p.armature[j["Left_Knee_Pitch"]] == 0.0956 and p.armature[j["AAHead_yaw"]] == 0.001
    pose = dict(zip(k1.joint_names, p.default_joint_pos))
    assert pose.pop("Left_Shoulder_Roll") == -1.3 and pose.pop("Right_Shoulder_Roll") == 1.3
    assert not any(pose.values())
    assert (p.control_freq, p.sim_timestep, p.action_scale_factor) == (50.0, 0.005, 0.25)
    assert "Booster" in p.sources[0]


def test_g1_deploy_gains_from_armature(g1):
    p = load_profile(g1, "deploy")
    w = 2 * math.pi * 10
    np.testing.assert_allclose(p.kp, p.armature * w * w)
    np.testing.assert_allclose(p.kd, 4 * p.armature * w)
    j = {n: i for i, n in enumerate(g1.joint_names)}
    # beyondmimic_notes.md §5's table (kp, kd, effort, scale).
    for n, (kp, kd, eff, s) in {"left_hip_pitch_joint": (40.18, 2.558, 88, 0.548),
                                "right_knee_joint": (99.10, 6.309, 139, 0.351),
                                "left_elbow_joint": (14.25, 0.907, 25, 0.439),
                                "right_wrist_yaw_joint": (16.78, 1.068, 5, 0.0745),
                                "waist_pitch_joint": (28.50, 1.814, 50, 0.439)}.items():
        np.testing.assert_allclose([p.kp[j[n]], p.kd[j[n]], p.effort[j[n]], p.action_scale[j[n]]],
                                   [kp, kd, eff, s], rtol=2e-3, err_msg=n)
    assert p.default_joint_pos[j["left_knee_joint"]] == 0.669
    assert p.default_joint_pos[j["right_shoulder_roll_joint"]] == -0.2


def test_sim_profile_is_the_model(k1):
    p = load_profile(k1, "sim")
    np.testing.assert_array_equal(p.kp, k1.model.actuator_gainprm[:, 0])
    np.testing.assert_array_equal(p.kd, -k1.model.actuator_biasprm[:, 2])
    np.testing.assert_array_equal(p.effort, k1.model.actuator_forcerange[:, 1])
    np.testing.assert_array_equal(p.default_joint_pos, k1.default_joint_pos)
    assert p.control_freq is None and p.sim_timestep == k1.model.opt.timestep
    with pytest.raises(ValueError, match=r"no profile 'field'.*\['sim', 'deploy'\]"):
        load_profile(k1, "field")


@pytest.mark.parametrize("robot", ["k1", "g1"])
def test_actuator_force_is_the_firmwares_pd(robot, request):
    r = request.getfixturevalue(robot)
    p = load_profile(r, "deploy")
    m = apply_profile(r.model, r, p)
    assert m is not r.model and r.model.opt.timestep != 0.005 and m.opt.timestep == 0.005
    np.testing.assert_array_equal(m.dof_armature[r.qvel_idx], p.armature)
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    lo, hi = r.joint_range.T
    q = rng.uniform(lo, hi)
    d.qpos[:] = profile_default_qpos(r, p)
    d.qpos[r.qpos_idx] = q
    d.qvel[r.qvel_idx] = rng.uniform(-3, 3, len(q))
    d.ctrl[:] = rng.uniform(lo, hi)   # inside ctrlrange: MuJoCo clamps ctrl to it
    mujoco.mj_forward(m, d)
    tau = np.clip(p.kp * (d.ctrl - q) - p.kd * d.qvel[r.qvel_idx], -p.effort, p.effort)
    assert np.any(np.abs(tau) == p.effort) and np.any(np.abs(tau) < p.effort)   # both regimes tested
    np.testing.assert_allclose(d.actuator_force, tau, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(d.qfrc_actuator[r.qvel_idx], tau, rtol=1e-9, atol=1e-9)


def test_profile_default_qpos_stands_on_the_soles(k1):
    p = load_profile(k1, "deploy")
    q = profile_default_qpos(k1, p)
    np.testing.assert_array_equal(q[k1.qpos_idx], p.default_joint_pos)
    assert abs(k1.lowest_point(q, k1.foot_geom_ids)) < 1e-6   # float32 geometry
    assert 0.5 < q[2] < 0.6   # straight legs: higher than the sim pose's bent knees
    assert q[2] > k1.default_qpos[2]


def test_effort_over_kp():
    np.testing.assert_allclose(effort_over_kp(0.25, [30.0, 6.0], [80.0, 4.0]), [0.09375, 0.375])


# ---- spec loader errors ------------------------------------------------------------------
@pytest.fixture(scope="module")
def k1_raw():
    return yaml.safe_load((ROBOTS_DIR / "k1" / "robot.yaml").read_text())


def _load(tmp_path, raw, edit):
    raw = yaml.safe_load(yaml.safe_dump(raw))
    edit(raw["profiles"]["deploy"])
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(raw))
    return load_spec(tmp_path / "robot.yaml")


def _set(k, v):
    return lambda d: d.__setitem__(k, v)


@pytest.mark.parametrize("edit, msg", [
    (_set("default_pos", {"Left_Shoulder_Rol": 1.0}), "default_pos: unknown joint(s) ['Left_Shoulder_Rol']"),
    (lambda d: d["joints"].pop(".*Head_.*"), "no pattern matches joint(s) ['AAHead_yaw', 'Head_pitch']"),
    (lambda d: d["joints"].__setitem__("Neck_.*", dict(kp=1, kd=1, effort=1, armature=0)), "['Neck_.*']: matches no joint"),
    (lambda d: d["joints"].__setitem__("Left_Hip_Pitch", dict(kp=1, kd=1, effort=1, armature=0)),
     "joint 'Left_Hip_Pitch' is matched by two patterns"),
    (lambda d: d["joints"][".*Head_.*"].pop("effort"), "missing ['effort']"),
    (lambda d: d["joints"][".*Head_.*"].__setitem__("kp", "stiff"), "kp must be a number or 'rule'"),
    (lambda d: d.pop("source"), "missing required key 'source'"),
    (_set("action_scale", {"rule": "fixed", "factor": 0.25}), "action_scale must be {rule: one of ['effort_over_kp']"),
    (_set("control_freq", 0), "must be positive"),
    (_set("rate", 50), "unknown key(s) ['rate']"),
])
def test_bad_profile_yaml_is_one_clear_error(tmp_path, k1_raw, edit, msg):
    with pytest.raises(RobotSpecError, match=re.escape(msg)) as e:
        _load(tmp_path, k1_raw, edit)
    assert "profiles.deploy" in str(e.value) and "\n" not in str(e.value)


def test_sim_is_a_reserved_profile_name(tmp_path, k1_raw):
    raw = yaml.safe_load(yaml.safe_dump(k1_raw))
    raw["profiles"]["sim"] = raw["profiles"]["deploy"]
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(RobotSpecError, match="'sim' is reserved"):
        load_spec(tmp_path / "robot.yaml")


def test_gain_scale_stiffens_the_pd_and_keeps_the_action_range():
    """env.gain_scale: kp·a and kd·b in the model (what export writes and the firmware then runs),
    the effort limits and the policy's action range/scale unchanged; bad values: one clear error."""
    from mjxmimic.envs.registry import ConfigError, make_env
    for name in ("k1_kick", "k1_walk_deploy"):
        base, _, _ = make_env(name, {"env.num_envs": 1, "env.profile": "deploy"})
        stiff, _, _ = make_env(name, {"env.num_envs": 1, "env.profile": "deploy", "env.gain_scale": [2.0, 3.0]})
        nu = base.robot.num_joints
        mb, ms = base.model, stiff.model
        np.testing.assert_allclose(ms.actuator_gainprm[:nu, 0], 2.0 * mb.actuator_gainprm[:nu, 0])
        np.testing.assert_allclose(ms.actuator_biasprm[:nu, 1], 2.0 * mb.actuator_biasprm[:nu, 1])
        np.testing.assert_allclose(ms.actuator_biasprm[:nu, 2], 3.0 * mb.actuator_biasprm[:nu, 2])
        np.testing.assert_array_equal(ms.actuator_forcerange, mb.actuator_forcerange)
        np.testing.assert_array_equal(stiff.action_low, base.action_low)
        np.testing.assert_array_equal(stiff.action_high, base.action_high)
        # The force MuJoCo C applies is the firmware's PD with the scaled gains.
        d = mujoco.MjData(ms)
        d.qpos[:] = ms.qpos0
        j = base.robot.qpos_idx[0]
        d.ctrl[0] = d.qpos[j] + 0.01
        mujoco.mj_forward(ms, d)
        assert d.actuator_force[0] == pytest.approx(2.0 * mb.actuator_gainprm[0, 0] * 0.01, rel=1e-6)
    with pytest.raises(ConfigError, match="gain_scale"):
        make_env("k1_kick", {"env.num_envs": 1, "env.gain_scale": [2.0, 0.0]})


def test_effort_scale_scales_only_the_force_limits():
    """env.effort_scale (a what-if for clip feasibility): forcerange·f, gains and action range unchanged;
    MuJoCo C then clamps the PD force at the scaled limit."""
    from mjxmimic.envs.registry import ConfigError, make_env
    base, _, _ = make_env("k1_track", {"env.num_envs": 1})
    strong, _, _ = make_env("k1_track", {"env.num_envs": 1, "env.effort_scale": 2.0})
    nu = base.robot.num_joints
    mb, ms = base.model, strong.model
    np.testing.assert_allclose(ms.actuator_forcerange[:nu], 2.0 * mb.actuator_forcerange[:nu])
    np.testing.assert_array_equal(ms.actuator_gainprm, mb.actuator_gainprm)
    np.testing.assert_array_equal(ms.actuator_biasprm, mb.actuator_biasprm)
    np.testing.assert_array_equal(strong.action_scale, base.action_scale)
    d = mujoco.MjData(ms)
    d.qpos[:] = ms.qpos0
    d.ctrl[0] = d.qpos[base.robot.qpos_idx[0]] + 10.0          # a target far beyond the limit
    mujoco.mj_forward(ms, d)
    assert d.actuator_force[0] == pytest.approx(ms.actuator_forcerange[0, 1])
    with pytest.raises(ConfigError, match="effort_scale"):
        make_env("k1_track", {"env.num_envs": 1, "env.effort_scale": 0.0})

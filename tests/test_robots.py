"""Robot models: converter output vs the vendors' models, MJX vs MuJoCo C, standing, bad input."""
import shutil
import xml.etree.ElementTree as ET

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from mjxmimic import math as rmath
from mjxmimic.robots import convert, load_robot
from mjxmimic.paths import REPO_ROOT
from mjxmimic.robots.spec import RobotSpecError, load_spec

SHARED = REPO_ROOT.parent / "shared" / "robots"
VENDOR = {"k1": SHARED / "booster_k1" / "K1_22dof.xml", "g1": SHARED / "unitree_g1" / "g1_mocap_29dof.xml"}
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/robots not present")


@needs_shared
@pytest.mark.parametrize("name", ["k1", "g1"])
def test_committed_model_regenerates_byte_identically(name, tmp_path):
    robot = load_spec(REPO_ROOT / "robots" / name / "robot.yaml")
    out = convert.convert(robot, tmp_path / f"{name}.xml")
    assert out.read_bytes() == robot.xml_path.read_bytes(), \
        f"robots/{name}/{name}.xml is stale: run python -m mjxmimic.robots.convert --all"
    assert (tmp_path / "LICENSE").read_text() == (robot.xml_path.parent / "LICENSE").read_text()
    assert "BSD" in (tmp_path / "LICENSE").read_text() or "Redistribution" in (tmp_path / "LICENSE").read_text()


@needs_shared
@pytest.mark.parametrize("name", ["k1", "g1"])
def test_matches_vendor_model(name):
    robot = load_robot(name)
    ours, ref = robot.model, mujoco.MjModel.from_xml_path(str(VENDOR[name]))
    ref_hinges = [ref.joint(i).name for i in range(ref.njnt) if ref.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE]
    assert list(robot.joint_names) == ref_hinges
    assert abs(ours.body_mass.sum() - ref.body_mass.sum()) / ref.body_mass.sum() < 0.01
    if name == "k1":
        # The vendor MJCF is the range reference for K1.
        np.testing.assert_allclose(robot.joint_range, [ref.joint(n).range for n in ref_hinges], atol=1e-6)
    else:
        # G1: the mocap MJCF narrows ranges for retargeting; the hardware ranges are the URDF's,
        # which MimicKit's own g1.xml (in degrees, to 0.1 deg) also uses.
        mk = ET.parse(REPO_ROOT.parent / "shared" / "motions" / "mimickit_g1" / "g1.xml").getroot()
        deg = {j.get("name"): [float(x) for x in j.get("range").split()] for j in mk.iter("joint") if j.get("range")}
        np.testing.assert_allclose(robot.joint_range, np.radians([deg[n] for n in ref_hinges]), atol=2e-3)

    rng = np.random.default_rng(0)
    # The mocap MJCF's toe_link is a marker placed 2 cm off the URDF's toe frame; every
    # other body must agree.
    common = [ref.body(i).name for i in range(1, ref.nbody)
              if mujoco.mj_name2id(ours, mujoco.mjtObj.mjOBJ_BODY, ref.body(i).name) >= 0 and "toe" not in ref.body(i).name]
    assert len(common) >= robot.num_joints + 1
    d_o, d_r = mujoco.MjData(ours), mujoco.MjData(ref)
    lo, hi = robot.joint_range.T
    worst = 0.0
    for _ in range(100):
        q = rng.uniform(lo, hi)
        root = np.concatenate([rng.normal(size=3), rmath.normalize(rng.normal(size=4))])
        for m, d in ((ours, d_o), (ref, d_r)):
            d.qpos[:7] = root
            for n, v in zip(robot.joint_names, q):
                d.qpos[m.jnt_qposadr[m.joint(n).id]] = v
            mujoco.mj_kinematics(m, d)
        for b in common:
            worst = max(worst, np.abs(d_o.body(b).xpos - d_r.body(b).xpos).max())
    assert worst < 1e-4, f"body positions differ by {worst} m"


@pytest.fixture(scope="module", params=["k1", "g1"])
def robot(request):
    return load_robot(request.param)


def test_mjx_matches_mujoco_c(robot):
    """1 s rollout from the same state and controls. MJX runs in float32 (C in float64) and
    a standing biped with contacts amplifies rounding, so we compare the trajectory with a
    tolerance of 5 mm on positions / 0.02 rad on joints, and much tighter after one step."""
    m = robot.model
    rng = np.random.default_rng(1)
    n = int(round(1.0 / m.opt.timestep))
    ctrl = robot.default_joint_pos + 0.05 * np.sin(np.arange(n)[:, None] * 0.1 + rng.uniform(0, 6, robot.num_joints))
    d = mujoco.MjData(m)
    d.qpos[:] = robot.default_qpos
    c_q = []
    for t in range(n):
        d.ctrl[:] = ctrl[t]
        mujoco.mj_step(m, d)
        c_q.append(d.qpos.copy())
    c_q = np.array(c_q)

    mx = robot.mjx_model()
    dx = mjx.make_data(mx).replace(qpos=jnp.asarray(robot.default_qpos))

    def body(dx, u):
        dx = mjx.step(mx, dx.replace(ctrl=u))
        return dx, dx.qpos
    _, j_q = jax.jit(lambda dx, us: jax.lax.scan(body, dx, us))(dx, jnp.asarray(ctrl))
    j_q = np.asarray(j_q)
    assert np.abs(j_q[0] - c_q[0]).max() < 1e-4
    assert np.abs(j_q[:, :3] - c_q[:, :3]).max() < 5e-3
    assert np.abs(j_q[:, robot.qpos_idx] - c_q[:, robot.qpos_idx]).max() < 0.02


def test_stands_three_seconds_in_mjx(robot):
    """Default pose held by the PD servos, in MJX. K1 stands on its own gains. G1's gains
    are MimicKit's (for a policy that balances): they are passively unstable, e.g. the
    waist pitch stiffness of 28.5 Nm/rad barely exceeds the ~20 Nm/rad of gravity on the
    torso and arms, so the hold test stiffens G1's servos 10x (the same servos, stiffer)."""
    m = robot.model
    scale = 1.0 if robot.name == "k1" else 10.0
    mx = robot.mjx_model()
    mx = mx.replace(actuator_gainprm=mx.actuator_gainprm * scale, actuator_biasprm=mx.actuator_biasprm * scale)
    q0 = jnp.asarray(robot.default_joint_pos)

    def body(dx, _):
        dx = mjx.step(mx, dx.replace(ctrl=q0))
        return dx, dx.qpos[:7]
    dx = mjx.make_data(mx).replace(qpos=jnp.asarray(robot.default_qpos))
    _, traj = jax.jit(lambda dx: jax.lax.scan(body, dx, None, length=int(round(3.0 / m.opt.timestep))))(dx)
    traj = np.asarray(traj)
    assert np.all(np.isfinite(traj))
    # Root height stays within 3 cm of the start and the torso stays upright (< 0.2 rad tilt).
    assert np.abs(traj[:, 2] - robot.default_qpos[2]).max() < 0.03
    up = np.asarray(rmath.quat_rotate(jnp.asarray(traj[:, 3:7]), jnp.array([0.0, 0.0, 1.0])))
    assert np.arccos(np.clip(up[:, 2], -1, 1)).max() < 0.2


def _spec_copy(tmp_path, name, edit):
    src = (REPO_ROOT / "robots" / name / "robot.yaml").read_text()
    p = tmp_path / "robot.yaml"
    p.write_text(edit(src))
    return p


@needs_shared
def test_unknown_joint_lists_urdf_joints(tmp_path):
    p = _spec_copy(tmp_path, "k1", lambda s: s.replace("  AAHead_yaw:", "  Head_Yaw_typo:"))
    out = tmp_path / "out" / "k1.xml"
    rc = convert.main([str(SHARED / "booster_k1" / "K1_22dof.urdf"), "--robot", str(p), "--out", str(out)])
    assert rc == 2 and not out.exists()
    with pytest.raises(convert.ConversionError, match=r"Head_Yaw_typo.*AAHead_yaw"):
        convert.to_xml(load_spec(p))


@needs_shared
def test_missing_mesh_is_a_clear_error(tmp_path):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    for f in (SHARED / "booster_k1" / "meshes").iterdir():
        if f.name != "Left_Foot.STL":
            (meshes / f.name).symlink_to(f)
    out = tmp_path / "k1.xml"
    with pytest.raises(convert.ConversionError, match="Left_Foot.STL"):
        convert.convert(load_spec(REPO_ROOT / "robots" / "k1"), out, meshes_dir=meshes)
    assert not out.exists() and not (tmp_path / "LICENSE").exists()


@needs_shared
def test_meshes_are_visual_only(tmp_path):
    # URDF deeper than the output: relative mesh paths must not be resolved from the URDF's folder.
    deep = tmp_path / "a" / "b" / "c" / "d" / "e" / "f"
    deep.mkdir(parents=True)
    urdf = deep / "k1.urdf"
    shutil.copy(load_spec(REPO_ROOT / "robots" / "k1").urdf, urdf)
    out = convert.convert(load_spec(REPO_ROOT / "robots" / "k1"), tmp_path / "out" / "k1.xml", urdf=urdf,
                          meshes_dir=SHARED / "booster_k1" / "meshes")
    m = mujoco.MjModel.from_xml_path(str(out))
    mesh = m.geom_type == mujoco.mjtGeom.mjGEOM_MESH
    assert mesh.sum() >= 20 and np.all(m.geom_contype[mesh] == 0) and np.all(m.geom_conaffinity[mesh] == 0)
    np.testing.assert_allclose(m.body_mass, load_robot("k1").model.body_mass)


def test_malformed_yaml_is_a_clear_error(tmp_path):
    p = tmp_path / "robot.yaml"
    p.write_text("name: k1\njoints: [unclosed\n")
    with pytest.raises(RobotSpecError, match="malformed YAML"):
        load_spec(p)
    p.write_text("name: k1\n")
    with pytest.raises(RobotSpecError, match="missing required key 'source'"):
        load_spec(p)


def test_unknown_robot_lists_known():
    with pytest.raises(RobotSpecError, match=r"unknown robot 'h1'.*'g1', 'k1'"):
        load_robot("h1")

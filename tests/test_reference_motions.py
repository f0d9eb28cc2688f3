"""Reference motions made by the project: IK, the walking pattern generator, kicks, the
shipped clips, their plausibility and their byte-identical regeneration."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import yaml

from mjxmimic.motions.clip import Clip
from mjxmimic.motions.io import load_dataset
from mjxmimic.robots import load_robot
from mjxmimic.paths import REPO_ROOT
from mjxmimic.tools import author, ik
from mjxmimic.tools.plausibility import check_clip, support_margin, velocity_limits

MOTIONS = REPO_ROOT / "motions"
CLIPS = ["stand", "walk", "walk_fast", "turn_left", "turn_right", "side_step_left", "side_step_right",
         "kick_right", "kick_left"]
ROBOTS = ["k1", "g1"]


# ---------------------------------------------------------------------------------------
# kinematics and IK
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ROBOTS)
def test_tree_fk_matches_mujoco(name):
    r = load_robot(name)
    m = r.model
    fk = ik.TreeFK(m)
    rng = np.random.default_rng(3)
    d = mujoco.MjData(m)
    for _ in range(3):
        q = r.default_qpos.copy()
        q[r.qpos_idx] += rng.normal(0, 0.6, r.num_joints)
        q[:3] += rng.normal(0, 0.3, 3)
        q[3:7] = rng.normal(size=4)
        q[3:7] /= np.linalg.norm(q[3:7])
        with jax.enable_x64(True):
            out = jax.jit(fk)(jnp.asarray(q))
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        np.testing.assert_allclose(out["xpos"], d.xpos, atol=1e-12)
        np.testing.assert_allclose(np.asarray(out["xmat"]).reshape(-1, 9), d.xmat, atol=1e-12)
        np.testing.assert_allclose(out["xipos"], d.xipos, atol=1e-12)
        np.testing.assert_allclose(out["geom_xpos"], d.geom_xpos, atol=1e-12)
        np.testing.assert_allclose(np.asarray(out["geom_xmat"]).reshape(-1, 9), d.geom_xmat, atol=1e-12)


def _known_trajectory(r, T=45, seed=0):
    """A smooth random joint trajectory within limits, walking-height root, turning a bit."""
    t = np.arange(T) / 30.0
    rng = np.random.default_rng(seed)
    lo, hi = r.joint_range.T
    amp = 0.25 * np.minimum(hi - lo, 1.0)
    ph, fr = rng.uniform(0, 2 * np.pi, r.num_joints), rng.uniform(0.3, 1.0, r.num_joints)
    jp = np.clip(r.default_joint_pos + amp * np.sin(2 * np.pi * fr * t[:, None] + ph), lo + 0.01, hi - 0.01)
    q = np.tile(r.default_qpos, (T, 1))
    q[:, r.qpos_idx] = jp
    q[:, 0] = 0.2 * t
    q[:, 2] += 0.08
    yaw = 0.4 * np.sin(t)
    q[:, 3], q[:, 6] = np.cos(yaw / 2), np.sin(yaw / 2)
    return q


def test_ik_recovers_known_trajectory_from_its_keypoints(k1):
    r = k1
    q = _known_trajectory(r)
    m = r.model
    names = [m.site(i).name for i in range(m.nsite)] + list(r.spec.key_bodies) + ["com"] + \
        [r.body_names[b] for b in range(1, m.nbody)]
    kps = ik.keypoints(r, list(dict.fromkeys(names)))
    pos, rot = ik.forward_points(r, q, kps)
    feet = [i for i, k in enumerate(kps) if k.name in ("left_foot", "right_foot")]
    w_rot = np.zeros(pos.shape[:2])
    w_rot[:, feet] = 1.0
    tg = ik.Targets(pos, np.ones(pos.shape[:2]), rot, w_rot)
    init = np.tile(r.default_qpos, (len(q), 1))      # start from the standing pose, facing +x
    init[:, :3] = q[:, :3]
    res = ik.solve_ik(r, kps, tg, init, w_posture=1e-4, config=ik.IKConfig(iters=30, w_smooth=0.0))
    assert res.max_pos_err() < 1e-3, f"keypoint error {res.max_pos_err() * 1e3:.3f} mm"
    assert np.nanmax(res.rot_err) < 1e-3
    # the start was far off: this is a real solve, not the initial guess
    assert np.abs(init[:, r.qpos_idx] - q[:, r.qpos_idx]).max() > 0.2
    assert np.abs(res.qpos[:, r.qpos_idx] - q[:, r.qpos_idx]).max() < 0.05


def test_ik_floor_limits_and_stance_lock(k1):
    r = k1
    T = 12
    kps = ik.keypoints(r, ["left_foot", "right_foot", "com"])
    base = np.tile(r.default_qpos, (T, 1))
    pos, rot = ik.forward_points(r, base, kps)
    tg = ik.Targets(pos.copy(), np.ones((T, 3)), rot.copy(), np.zeros((T, 3)))
    tg.pos[:, :2, 2] = -0.03                          # ask for the feet 3 cm below the floor
    tg.pos[:, 2, 2] -= 0.03
    tg.w_rot[:, :2] = 1.0
    # a left foot that wobbles by 1 cm while in contact on frames 0..7
    wob = tg.pos[:, 0].copy()
    wob[:, 0] += 0.01 * np.sin(np.arange(T))
    contact = np.arange(T) < 8
    locked, lrot = ik.lock_stance(wob, tg.rot[:, 0], contact)
    assert np.ptp(locked[:8], axis=0).max() == 0 and np.all(locked[:8, 2] == 0)
    np.testing.assert_array_equal(locked[8:], wob[8:])
    tg.pos[:, 0] = locked
    tg.pos[8:, 0, 2] = -0.03
    res = ik.solve_ik(r, kps, tg, base, config=ik.IKConfig(iters=20, w_smooth=0.0))
    assert res.penetration.max() < 2e-3, "the floor term must win over targets below the floor"
    assert r.lowest_point(res.qpos[3]) > -2e-3
    lo, hi = r.joint_range.T
    jp = res.qpos[:, r.qpos_idx]
    assert np.all(jp >= lo) and np.all(jp <= hi)
    p, _ = ik.forward_points(r, res.qpos[:8], kps[:1])
    assert np.ptp(p[:, 0, :2], axis=0).max() < 1e-3, "locked stance foot moved"


# ---------------------------------------------------------------------------------------
# pattern generator
# ---------------------------------------------------------------------------------------
def _foot_corners(pos, yaw, half=(0.09, 0.035)):
    c = np.array([[sx * half[0], sy * half[1]] for sx in (-1, 1) for sy in (-1, 1)])
    R = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    return pos[:2] + c @ R.T


@pytest.mark.parametrize("clip", ["walk_fast", "turn_left", "side_step_right"])
def test_generator_zmp_inside_support_polygon_and_cycle_is_steady(k1, clip):
    p = author.PROFILES["k1"]
    gp = author.clip_specs(p)[clip]
    plan = author.gait_plan(k1, p, gp)
    dt = plan.dt
    c = plan.com[:, :2]
    acc = np.gradient(np.gradient(c, dt, axis=0), dt, axis=0)
    zmp = c - plan.com_height / author.GRAVITY * acc     # the cart-table ZMP of the planned CoM
    worst = np.inf
    for i in range(5, len(c) - 5):
        pts = np.concatenate([_foot_corners(plan.foot_pos[i, f], plan.foot_yaw[i, f])
                              for f in range(2) if plan.contact[i, f]])
        worst = min(worst, support_margin(zmp[i], pts))
    assert worst > 0.005, f"cart-table ZMP {worst * 1e3:.1f} mm from the support polygon edge"
    # the reference itself sits at the sole centre in single support
    ss = plan.contact.sum(1) == 1
    sup = np.where(plan.contact[ss, 0][:, None], plan.foot_pos[ss, 0, :2], plan.foot_pos[ss, 1, :2])
    assert np.abs(plan.zmp_ref[ss] - sup).max() < 1e-12
    # the extracted cycle repeats: the CoM one cycle later is the CoM moved by the cycle transform
    n = (plan.frames - 1) * author.SUB
    B0, B2 = plan.extra["B0"], plan.extra["B2"]
    th = B2[2] - B0[2]
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    a = plan.first
    pred = (c[a:a + n] - B0[:2]) @ R.T + B2[:2]
    assert np.abs(pred - c[a + n:a + 2 * n]).max() < 1e-5


def test_preview_control_tracks_a_step():
    pc = author.PreviewControl(1 / 120, 0.45)
    ref = np.zeros((600, 1))
    ref[240:] = 0.1
    com, zmp = pc.run(ref)
    assert abs(com[-1, 0] - 0.1) < 1e-4 and abs(zmp[-1, 0] - 0.1) < 1e-4
    assert com[200, 0] > 1e-3, "preview: the CoM starts moving before the ZMP step"
    assert np.abs(zmp - ref)[:, 0].max() < 0.1


# ---------------------------------------------------------------------------------------
# plausibility checks
# ---------------------------------------------------------------------------------------
def _load(robot, name):
    return Clip.load_npz(MOTIONS / robot / f"{name}.npz")


def test_plausibility_flags_planted_bad_clips(k1):
    stand = _load("k1", "stand")
    assert check_clip(stand, k1).ok
    sunk = stand.replace(root_pos=stand.root_pos - [0.0, 0.0, 0.01])
    rep = check_clip(sunk, k1)
    assert not rep.ok and rep.penetration_mm > 9.0 and any("penetration" in f for f in rep.failures)
    drift = stand.root_pos.copy()
    drift[:, 0] += 0.0005 * np.arange(stand.num_frames)           # 15 mm over the clip, feet on the floor
    rep = check_clip(stand.replace(root_pos=drift, loop="clamp"), k1)
    assert any("skating" in f for f in rep.failures) and 12.0 < rep.skate_mm < 18.0
    assert rep.penetration_mm < 2.0
    bad = stand.joint_pos.copy()
    j = k1.joint_names.index("Left_Knee_Pitch")
    bad[5, j] = k1.joint_range[j, 1] + 0.05
    rep = check_clip(stand.replace(joint_pos=bad, loop="clamp"), k1)
    assert any("joint limits" in f for f in rep.failures) and rep.joint_limit_rad == pytest.approx(0.05, abs=1e-6)
    assert any("velocity" in f for f in rep.failures), "a 0.5 rad jump in one frame is 15 rad/s"
    walk = _load("k1", "walk_fast")
    rep = check_clip(walk.replace(fps=walk.fps * 3), k1)          # the same steps, 3x faster
    assert any("ZMP" in f for f in rep.failures) and rep.zmp_margin_mm < 0
    assert any("velocity" in f for f in rep.failures)


def test_flight_gravity_closed_form(k1):
    from mjxmimic.tools.plausibility import flight_gravity
    fps = 60.0
    t = np.arange(40) / fps
    z = 0.7 + 1.5 * t - 0.5 * 9.81 * 0.6 * t ** 2           # a CoM falling at 0.6 g
    air = (t > 0.1) & (t < 0.5)
    assert flight_gravity(z, air, fps) == pytest.approx(0.6, abs=1e-9)
    air2 = air.copy()
    air2[2:5] = True                                          # a shorter run elsewhere is ignored
    assert flight_gravity(z, air2, fps) == pytest.approx(0.6, abs=1e-9)
    assert np.isnan(flight_gravity(z, np.zeros(40, bool), fps)) and np.isnan(flight_gravity(z, t < 0.05, fps))
    # a planted clip: no flight, so no gravity figure and no failure about it
    rep = check_clip(_load("k1", "stand"), k1)
    assert np.isnan(rep.flight_gravity) and rep.ok


def test_velocity_limits_from_urdf(k1):
    v = velocity_limits(k1)
    if v is None:
        pytest.skip("../shared not present")
    assert v[k1.joint_names.index("Left_Hip_Pitch")] == 7.1
    g1 = load_robot("g1")
    assert velocity_limits(g1)[g1.joint_names.index("left_hip_pitch_joint")] == 32.0


@pytest.mark.parametrize("robot", ROBOTS)
def test_shipped_clips_are_plausible(robot):
    r = load_robot(robot)
    for name in CLIPS:
        c = _load(robot, name)
        rep = check_clip(c, r)
        assert rep.ok, f"{robot}/{name}: {rep.failures}"
        assert rep.flight_frames == 0 and c.fps == 30.0 and c.joint_names == r.joint_names
        assert c.loop == ("clamp" if name.startswith("kick") else "wrap")
        if c.loop == "wrap":
            # the last frame is the first moved by the cycle's horizontal root displacement
            d = c.root_pos[-1] - c.root_pos[0]
            assert d[2] == 0.0
            np.testing.assert_array_equal(c.joint_pos[-1], c.joint_pos[0])
            assert np.array_equal(c.root_rot[-1], c.root_rot[0]) or np.array_equal(c.root_rot[-1], -c.root_rot[0])
            assert rep.seam_mm < 1e-3
        if name.startswith("turn") or name == "stand":
            assert np.abs(c.root_pos[-1] - c.root_pos[0]).max() < 1e-9
    # the kicks start and end (nearly at rest) in the stand clip's pose
    stand = _load(robot, "stand")
    for k in ("kick_left", "kick_right"):
        c = _load(robot, k)
        assert np.abs(c.joint_pos[0] - stand.joint_pos[0]).max() < 1e-4
        assert np.abs(c.joint_pos[-1] - stand.joint_pos[0]).max() < 2e-3
        speed = np.linalg.norm(np.diff(c.root_pos, axis=0), axis=1) * c.fps
        assert speed[0] < 0.02 and speed[-1] < 0.01


@pytest.mark.parametrize("robot", ROBOTS)
def test_routes_go_where_their_steps_lead_and_stop(robot):
    """Every shipped route: plausible, a clamp clip that ends standing in the pose it starts in (at
    rest; the walking CoM height, so not the stand clip's), its end pose where the scheduled per-step
    twists lead, composed here by hand."""
    r = load_robot(robot)
    profile = author.PROFILES[robot]
    specs = author.route_specs(profile)
    assert len(specs) == author.ROUTES and specs == author.route_specs(profile)   # deterministic
    lim = np.array([profile.fast.step_length, profile.side.step_lateral, profile.turn.turn])
    lf, rf = author._robot_geometry(r)
    fx = 0.5 * (lf[0] + rf[0])                      # sole centres ahead of the body origin
    for name, rp in specs.items():
        assert np.all(np.abs(np.asarray(rp.legs)) <= lim + 1e-9), name
        c = _load(robot, name)
        rep = check_clip(c, r)
        assert rep.ok, f"{robot}/{name}: {rep.failures}"
        assert c.loop == "clamp" and rep.flight_frames == 0
        assert np.abs(c.joint_pos[-1] - c.joint_pos[0]).max() < 3e-3
        assert abs(c.root_pos[-1, 2] - c.root_pos[0, 2]) < 1e-4
        speed = np.linalg.norm(np.diff(c.root_pos, axis=0), axis=1) * c.fps
        assert speed[0] < 0.02 and speed[-1] < 0.01 and speed.max() > 0.1
        x, y, th = 0.0, 0.0, 0.0
        for k in range(12):                         # the schedule: 3 up, 2 hold, 3 blend, 1 hold, 3 down
            w1 = [1 / 3, 2 / 3, 1, 1, 1, 2 / 3, 1 / 3, 0, 0, 0, 0, 0][k]
            w2 = [0, 0, 0, 0, 0, 1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3, 0][k]
            dx, dy, dth = w1 * np.asarray(rp.legs[0]) + w2 * np.asarray(rp.legs[1])
            x, y, th = x + np.cos(th) * dx - np.sin(th) * dy, y + np.sin(th) * dx + np.cos(th) * dy, th + dth
        q0, q1 = c.root_rot[0], c.root_rot[-1]
        yaw = [2 * np.arctan2(q[3], q[0]) for q in (q0, q1)]
        assert abs(np.angle(np.exp(1j * (yaw[1] - yaw[0] - th)))) < 0.01, name
        # the root sits over the feet as at the start, moved with the body frame
        R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        expect = np.array([x, y]) + R @ (np.array([fx, 0.0]) + c.root_pos[0, :2]) - [fx, 0.0]
        np.testing.assert_allclose(c.root_pos[-1, :2], expect, atol=5e-3, err_msg=name)


@pytest.mark.parametrize("robot", ROBOTS)
def test_dataset_yamls_load(robot):
    r = load_robot(robot)
    expect = {"walk.yaml": ["walk"], "kick.yaml": ["kick_right", "kick_left"],
              "walks.yaml": [f"route_{i:02d}" for i in range(author.ROUTES)],
              "locomotion.yaml": ["stand", "walk", "walk_fast", "turn_left", "turn_right", "side_step_left",
                                  "side_step_right"]}
    for f, names in expect.items():
        ds = load_dataset(MOTIONS / robot / f, r)
        assert [c.name for c in ds.clips] == names
    raw = yaml.safe_load((MOTIONS / robot / "kick.yaml").read_text())
    ball = raw["kicks"]["kick_right.npz"]
    assert ball["ball_radius"] == 0.07 and ball["ball_center"][1] < 0 < raw["kicks"]["kick_left.npz"]["ball_center"][1]


def test_kick_reaches_the_ball_at_the_stated_speed():
    r = load_robot("k1")
    raw = yaml.safe_load((MOTIONS / "k1" / "kick.yaml").read_text())["kicks"]["kick_right.npz"]
    c = _load("k1", "kick_right")
    f = int(round(raw["contact_time"] * 30))
    site = ik.keypoints(r, ["right_foot"])
    pos, rot = ik.forward_points(r, c.qpos(r), site)
    R = ik.quat_mat_np(rot[:, 0])
    inst = pos[:, 0] + R @ np.asarray(author.PROFILES["k1"].instep)
    ball = np.asarray(raw["ball_center"])
    # the instep touches the ball's back surface, at ball-centre height
    assert np.linalg.norm(inst[f] - (ball - [raw["ball_radius"], 0, 0])) < 2e-3
    v = (inst[f] - inst[f - 1]) * 30           # mean over the last frame: uniform acceleration to 2 m/s
    assert v[0] > 1.7 and abs(v[1]) < 0.1
    assert (inst[f + 1][0] - inst[f][0]) * 30 > 1.5, "the foot follows through"
    np.testing.assert_allclose(raw["instep_at_contact"], inst[f], atol=1e-4)


# ---------------------------------------------------------------------------------------
# regeneration
# ---------------------------------------------------------------------------------------
def test_npz_writer_is_deterministic_and_loadable(tmp_path):
    c = _load("k1", "walk")
    a = c.save_npz(tmp_path / "a.npz")
    b = c.save_npz(tmp_path / "b.npz")
    assert a.read_bytes() == b.read_bytes() == (MOTIONS / "k1" / "walk.npz").read_bytes()
    d = Clip.load_npz(a)
    np.testing.assert_array_equal(d.joint_pos, c.joint_pos)
    assert d.loop == "wrap" and d.name == "walk"


def _write_robot_as_shipped(robot: str, out, clips=None):
    """``author.write_robot`` in a subprocess with XLA's default flags: the shipped clips were
    made with them, and the suite's faster-compiling flags (conftest.py) change the IK's last bits."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = f"from mjxmimic.tools import author; author.write_robot({robot!r}, {str(out)!r}, {clips!r})"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("robot", ROBOTS)
def test_regenerates_everything_byte_identically(tmp_path, robot):
    _write_robot_as_shipped(robot, tmp_path)
    ours = sorted(p.name for p in tmp_path.iterdir())
    assert ours == sorted(p.name for p in (MOTIONS / robot).iterdir())
    for n in ours:
        assert (tmp_path / n).read_bytes() == (MOTIONS / robot / n).read_bytes(), \
            f"motions/{robot}/{n} is stale: run python -m mjxmimic.tools.author --all"

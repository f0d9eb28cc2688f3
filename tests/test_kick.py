"""Ball kick: ball physics in MJX (rolling stop distance, no sinking, bouncing off a foot),
the scene's contact pairs, kick reward/obs (hand-computed, heading invariance), episode
layout, and the kick env end to end (success ends and bootstraps)."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mujoco import mjx

from mjxmimic import math as rmath
from mjxmimic.envs.kick import KickConfig, KickEnv, kick_episode_stats, kick_obs, kick_reward, sample_ball_and_target
from mjxmimic.envs.scene import BallConfig, build_ball_scene
from mjxmimic.motions.lib import build_motion_lib
from mjxmimic.tools.synthetic import synthetic_clip

R = 0.07


@pytest.fixture(scope="module")
def scene(k1):
    return build_ball_scene(k1)


def test_scene_layout_and_pairs(k1, scene):
    m = scene.model
    assert m.nq == k1.model.nq + 7 and m.nbody == k1.model.nbody + 1 and m.nu == k1.model.nu
    assert scene.ball_qpos_adr == k1.model.nq and scene.ball_qvel_adr == k1.model.nv
    assert m.geom_contype[scene.ball_geom_id] == 0 and m.geom_conaffinity[scene.ball_geom_id] == 0
    assert m.body_mass[scene.ball_body_id] == pytest.approx(0.205)
    assert m.body_inertia[scene.ball_body_id][0] == pytest.approx(2 / 3 * 0.205 * R * R)
    # exactly: ball-floor (condim 6, rolling friction) + both feet + both shins
    names = sorted(m.geom(int(g)).name for g in scene.robot_contact_geom_ids)
    assert names == ["Left_Shank_col8", "Right_Shank_col11", "left_foot_link_col9", "right_foot_link_col12"]
    assert m.npair == 5
    floor = [p for p in range(m.npair) if scene.floor_geom_id in (m.pair_geom1[p], m.pair_geom2[p])][0]
    assert m.pair_dim[floor] == 6 and m.pair_friction[floor][3] == pytest.approx(0.009)
    # the robot's own model and indices are untouched
    np.testing.assert_array_equal(m.body_mass[: k1.model.nbody], k1.model.body_mass)
    assert build_ball_scene(k1, BallConfig(robot_contacts="all")).model.npair == 1 + len(k1.collision_geom_ids)
    with pytest.raises(ValueError, match="robot_contacts"):
        BallConfig(robot_contacts="hands")


@pytest.fixture(scope="module")
def ball_runs(k1, scene):
    """5 s of MJX physics (robot holding its standing pose) for four ball set-ups."""
    m, a, v = scene.model, scene.ball_qpos_adr, scene.ball_qvel_adr
    yl = 0.0962  # left foot centre y (robot default pose); its box front face is at x = 0.104
    setups = [  # (ball pos, lin vel, ang vel)
        ([0.0, 2.0, R], [2.0, 0, 0], [0, 2.0 / R, 0]),      # rolling at 2 m/s, far from the robot
        ([0.0, -2.0, R], [2.0, 0, 0], [0, 0, 0]),           # given 2 m/s without spin (slides, then rolls)
        ([1.5, -1.0, 0.5], [0, 0, 0], [0, 0, 0]),           # dropped from 0.5 m
        ([0.6, yl, R], [-1.5, 0, 0], [0, -1.5 / R, 0]),     # rolling into the left foot
    ]
    qpos = np.tile(scene.default_qpos, (4, 1)).astype(np.float32)
    qvel = np.zeros((4, m.nv), np.float32)
    for i, (p, lv, av) in enumerate(setups):
        qpos[i, a:a + 3] = p
        qvel[i, v:v + 3], qvel[i, v + 3:v + 6] = lv, av
    mx = scene.mjx_model()
    ctrl = jnp.asarray(k1.default_joint_pos, jnp.float32)

    @jax.jit
    def run(qpos, qvel):
        def one(q, qv):
            d = mjx.make_data(mx).replace(qpos=q, qvel=qv, ctrl=ctrl)

            def body(d, _):
                d = mjx.step(mx, d)
                return d, (d.qpos[a:a + 3], d.qvel[v:v + 3], d.qpos[2])
            return jax.lax.scan(body, d, None, length=600)[1]
        return jax.vmap(one)(qpos, qvel)

    pos, vel, root_z = run(jnp.asarray(qpos), jnp.asarray(qvel))
    return np.asarray(pos), np.asarray(vel), np.asarray(root_z), float(m.opt.timestep)


def test_rolling_ball_stops_like_on_turf(ball_runs):
    pos, vel, _, dt = ball_runs
    x = pos[0, :, 0]
    dist = x[-1] - x[0] + 2.0 * dt  # from the start position
    assert 1.5 < dist < 4.5, f"2 m/s rolling stop distance {dist:.2f} m"
    assert np.linalg.norm(vel[0, -1, :2]) < 0.02                       # it stopped
    stop = np.argmax(np.linalg.norm(vel[0, :, :2], axis=-1) < 0.02) * dt
    assert 1.5 < stop < 5.0, f"stopped after {stop:.2f} s"
    assert abs(pos[0, -1, 1] - 2.0) < 0.05                               # straight line
    assert pos[0, :, 2].min() > R - 0.003 and pos[0, :, 2].max() < R + 0.003  # rolls on the floor, no sinking
    # a ball given 2 m/s without spin first slides (losing energy) then rolls: shorter
    d_slide = pos[1, -1, 0] - pos[1, 0, 0]
    assert 0.5 < d_slide < dist


def test_dropped_ball_rests_on_the_floor(ball_runs):
    pos, vel, _, _ = ball_runs
    z = pos[2, :, 2]
    # soft contact: landing at 3.1 m/s compresses it ~2.4 cm (timeconst 0.02 s at 120 Hz; a real
    # ball deforms too), then it rests on the surface, not in it
    assert z.min() > R - 0.03
    assert abs(z[-1] - R) < 0.001 and np.linalg.norm(vel[2, -1]) < 0.01


def test_ball_bounces_off_a_foot(ball_runs):
    pos, vel, root_z, _ = ball_runs
    x, vx, z = pos[3, :, 0], vel[3, :, 0], pos[3, :, 2]
    # The foot box is 3.6 cm tall and the ball's radius 7 cm: the ball meets the toe's top edge
    # below its centre (first touch with the centre ~0.165 m ahead of the root), rides a little
    # onto it and is pushed back. It never gets past the toe (box front face at x = 0.104).
    assert x.min() > 0.09, f"ball centre reached x={x.min():.3f}: it went through the foot"
    assert x.min() < 0.17                           # it did reach the foot
    hit = int(np.argmin(x))
    assert vx[hit:].max() > 0.1                     # it comes back off the foot
    assert x[-1] > x.min() + 0.1
    assert z.max() < R + 0.05                       # no launch
    assert root_z.min() > 0.45                      # and the robot stays up


# ---------------------------------------------------------------------------------------
# task terms (pure)
# ---------------------------------------------------------------------------------------
def test_kick_reward_hand_computed():
    c = KickConfig(robot="k1", approach_speed=0.6, ball_speed=1.5, w_approach=0.3, w_ball_vel=0.4, w_ball_pos=0.3)
    dt = 1 / 30
    rot = rmath.yaw_quat(jnp.float32(0.0))
    p0 = jnp.array([0.0, 0.0, 0.55])
    p1 = p0 + jnp.array([0.3 * dt, 0.0, 0.0])               # walking to the ball at 0.3 m/s
    ball = jnp.array([1.0, 0.0, R])
    tar = jnp.array([1.0, 2.0, 0.0])                         # 2 m to the left of the ball
    bv = jnp.array([0.3, 0.75, 0.0])                         # 0.75 m/s toward the target
    r, t = kick_reward(p1, p0, rot, ball, bv, tar, dt, c)
    d = 1.0 - 0.3 * dt
    approach = 0.5 * math.exp(-0.5 * d * d) + 0.4 * math.exp(-4.0 * 0.3 ** 2) + 0.1 * 1.0
    assert float(t["approach"]) == pytest.approx(approach, abs=1e-5)
    assert float(t["ball_vel"]) == pytest.approx(0.75 / 1.5, abs=1e-6)
    assert float(t["ball_pos"]) == pytest.approx(math.exp(-0.5 * 4.0), abs=1e-6)
    assert float(r) == pytest.approx(0.3 * approach + 0.4 * 0.5 + 0.3 * math.exp(-2.0), abs=1e-5)
    # a ball at rest or rolling away earns no ball-velocity reward; fast is capped at 1
    assert float(kick_reward(p1, p0, rot, ball, jnp.zeros(3), tar, dt, c)[1]["ball_vel"]) == 0.0
    assert float(kick_reward(p1, p0, rot, ball, -bv, tar, dt, c)[1]["ball_vel"]) == 0.0
    assert float(kick_reward(p1, p0, rot, ball, 4 * bv, tar, dt, c)[1]["ball_vel"]) == 1.0
    # ball_side_weight: the speed across the ball->target line (here 0.3 m/s along x) is subtracted
    cs = dataclasses.replace(c, ball_side_weight=1.0)
    assert float(kick_reward(p1, p0, rot, ball, bv, tar, dt, cs)[1]["ball_vel"]) == pytest.approx((0.75 - 0.3) / 1.5,
                                                                                                  abs=1e-6)
    assert float(kick_reward(p1, p0, rot, ball, jnp.array([0.8, 0.75, 0.0]), tar, dt, cs)[1]["ball_vel"]) == 0.0
    with pytest.raises(ValueError, match="ball_side_weight"):
        KickConfig(robot="k1", ball_side_weight=-1.0)


def test_kick_obs_heading_invariance():
    rot = rmath.normalize(jnp.array([0.9, 0.05, -0.1, 0.4]))
    pos, ball, bv, tar = (jnp.array([0.2, -1.0, 0.5]), jnp.array([1.0, 0.3, R]), jnp.array([1.0, -0.5, 0.2]),
                          jnp.array([3.0, 2.0, 0.0]))
    o1 = kick_obs(pos, rot, ball, bv, tar)
    q = rmath.yaw_quat(jnp.float32(1.7))
    s = jnp.array([-4.0, 2.5, 0.0])
    o2 = kick_obs(rmath.quat_rotate(q, pos) + s, rmath.quat_mul(q, rot), rmath.quat_rotate(q, ball) + s,
                  rmath.quat_rotate(q, bv), rmath.quat_rotate(q, tar) + s)
    assert o1.shape == (8,)
    np.testing.assert_allclose(np.asarray(o1), np.asarray(o2), atol=1e-5)
    # hand check: heading frame of a pure-yaw root
    o3 = kick_obs(jnp.zeros(3), rmath.yaw_quat(jnp.float32(math.pi / 2)), jnp.array([0.0, 1.0, R]),
                  jnp.array([0.0, 2.0, 0.0]), jnp.array([-1.0, 0.0, 0.0]))
    np.testing.assert_allclose(np.asarray(o3), [1, 0, R, 2, 0, 0, 0, 1], atol=1e-6)


def test_ball_and_target_layout():
    c = KickConfig(robot="k1")
    keys = jax.random.split(jax.random.PRNGKey(0), 512)
    root = jnp.array([2.0, -1.0, 0.55])
    yaw = 0.8
    ball, tar = jax.vmap(lambda k: sample_ball_and_target(k, root, rmath.yaw_quat(jnp.float32(yaw)), c))(keys)
    rb = np.asarray(ball - root[:2])
    d = np.linalg.norm(rb, axis=-1)
    assert d.min() >= c.ball_dist_min - 1e-5 and d.max() <= c.ball_dist_max + 1e-5
    bearing = np.asarray(rmath.wrap_angle(np.arctan2(rb[:, 1], rb[:, 0]) - yaw))
    assert np.abs(bearing).max() <= c.ball_angle_max + 1e-5 and np.abs(bearing).max() > 0.8 * c.ball_angle_max
    bt = np.asarray(tar - ball)
    td = np.linalg.norm(bt, axis=-1)
    assert td.min() >= c.target_dist_min - 1e-5 and td.max() <= c.target_dist_max + 1e-5
    turn = np.asarray(rmath.wrap_angle(np.arctan2(bt[:, 1], bt[:, 0]) - np.arctan2(rb[:, 1], rb[:, 0])))
    assert np.abs(turn).max() <= c.target_angle_max + 1e-5
    assert np.all(np.linalg.norm(np.asarray(tar - root[:2]), axis=-1) > d)  # the target lies beyond the ball


def test_episode_stats():
    m = {"env/term_success": 0.02, "env/term_fail": 0.01, "env/term_timeout": 0.01, "env/time_to_success": 0.06,
         "env/final_ball_target_dist": 0.02}
    s = kick_episode_stats(m)
    assert s["success_rate"] == pytest.approx(0.5) and s["fall_rate"] == pytest.approx(0.25)
    assert s["time_to_success"] == pytest.approx(3.0) and s["final_ball_target_dist"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------
# the env end to end (one compile)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kick_run(k1):
    clip = synthetic_clip(k1, frames=61, fps=30.0, loop="wrap", speed=0.3, yaw_rate=0.3, amp=0.1)
    env = KickEnv(KickConfig(robot="k1", approach_until_touch=True), robot=k1)
    params = env.default_params(build_motion_lib([clip], k1))
    a, v = env.ball_qpos_adr, env.ball_qvel_adr

    @jax.jit
    def run(keys):
        s0 = jax.vmap(env.reset, in_axes=(None, 0))(params, keys)
        # envs 0-1: move the target onto the ball -> success on the first step
        tar = s0.info["tar_pos"].at[:2, :2].set(s0.physics.qpos[:2, a:a + 2])
        # env 2: the ball rolls away at 1 m/s (touched); env 3: it stays at rest
        qvel = s0.physics.qvel.at[2, v].set(1.0)
        s0b = s0.replace(info={**s0.info, "tar_pos": tar}, physics=s0.physics.replace(qvel=qvel))
        s1 = jax.vmap(env.step, in_axes=(None, 0, 0))(params, s0b, s0.physics.ctrl)
        return s0, s1
    s0, s1 = run(jax.random.split(jax.random.PRNGKey(1), 4))
    return env, params, s0, s1


def test_kick_env_reset(kick_run, k1):
    env, params, s0, s1 = kick_run
    a, c = env.ball_qpos_adr, env.cfg
    assert env.obs_size == env.char_obs_size() + 8 and env.action_size == 22
    q = np.asarray(s0.physics.qpos)
    np.testing.assert_allclose(q[:, a + 2], R, atol=1e-6)                          # ball on the floor
    np.testing.assert_allclose(np.asarray(s0.physics.qvel[:, env.ball_qvel_adr:]), 0.0)  # at rest
    d = np.linalg.norm(q[:, a:a + 2] - q[:, :2], axis=-1)
    assert np.all((d >= c.ball_dist_min - 1e-4) & (d <= c.ball_dist_max + 1e-4))
    root_rot = rmath.normalize(s0.physics.qpos[:, 3:7])
    want = kick_obs(s0.physics.qpos[:, :3], root_rot, s0.physics.qpos[:, a:a + 3],
                    s0.physics.qvel[:, env.ball_qvel_adr:env.ball_qvel_adr + 3], s0.info["tar_pos"])
    np.testing.assert_allclose(np.asarray(s0.obs[:, -8:]), np.asarray(want), atol=1e-6)
    assert set(s0.metrics) >= {"success", "fall", "time_to_success", "final_ball_target_dist", "term_success"}


def test_kick_success_ends_and_bootstraps(kick_run):
    env, params, s0, s1 = kick_run
    c = env.cfg
    done, trunc, succ = np.asarray(s1.done), np.asarray(s1.truncated), np.asarray(s1.metrics["success"])
    np.testing.assert_array_equal(succ, [1, 1, 0, 0])
    np.testing.assert_array_equal(done, [True, True, False, False])
    np.testing.assert_array_equal(trunc, [True, True, False, False])        # success_bootstrap
    assert np.all(np.asarray(s1.reward[:2]) >= c.success_bonus)
    assert np.all(np.asarray(s1.reward[2:]) < 1.0)
    np.testing.assert_allclose(np.asarray(s1.metrics["time_to_success"][:2]), env.control_dt, atol=1e-6)
    assert np.all(np.asarray(s1.metrics["final_ball_target_dist"][:2]) < c.target_radius)
    assert bool(jnp.all(jnp.isfinite(s1.info["disc_obs"])))


def test_kick_reward_approach_offset_hand_computed():
    """approach_offset: the approach term leads to the spot behind the ball on the ball->target
    line, and once within approach_dist of it the facing term rewards facing the target direction."""
    c = KickConfig(robot="k1", approach_speed=0.6, approach_offset=0.25, approach_dist=0.35, approach_pos_scale=2.0)
    dt = 1 / 50
    ball = jnp.array([1.0, 0.0, R])
    tar = jnp.array([1.0, 2.0, 0.0])                         # straight left of the ball: the spot is (1, -0.25)
    rot = rmath.yaw_quat(jnp.float32(0.0))                    # facing +x
    p0 = jnp.array([0.0, 0.0, 0.55])
    p1 = p0 + jnp.array([0.3 * dt, 0.0, 0.0])
    dx, dy = 1.0 - 0.3 * dt, -0.25
    d2 = dx * dx + dy * dy
    ux = dx / math.sqrt(d2)                              # the unit direction to the spot, x
    far = 0.5 * math.exp(-2.0 * d2) + 0.4 * math.exp(-4.0 * (0.6 - 0.3 * ux) ** 2) + 0.1 * max(ux, 0.0)
    assert float(kick_reward(p1, p0, rot, ball, jnp.zeros(3), tar, dt, c)[1]["approach"]) == pytest.approx(far, abs=1e-5)
    # on the spot: position and speed terms full; facing +x is perpendicular to the target direction (+y)
    spot = jnp.array([1.0, -0.25, 0.55])
    assert float(kick_reward(spot, spot, rot, ball, jnp.zeros(3), tar, dt, c)[1]["approach"]) == pytest.approx(0.9, abs=1e-6)
    face_y = rmath.yaw_quat(jnp.float32(math.pi / 2))
    assert float(kick_reward(spot, spot, face_y, ball, jnp.zeros(3), tar, dt, c)[1]["approach"]) == pytest.approx(1.0, abs=1e-6)
    # offset 0 is MimicKit's: near the ball the facing term is 1 whatever the heading
    c0 = dataclasses.replace(c, approach_offset=0.0)
    at_ball = jnp.array([1.0, -0.1, 0.55])
    assert float(kick_reward(at_ball, at_ball, rot, ball, jnp.zeros(3), tar, dt, c0)[1]["approach"]) == pytest.approx(
        0.5 * math.exp(-2.0 * 0.01) + 0.5, abs=1e-6)
    with pytest.raises(ValueError, match="approach_offset"):
        KickConfig(robot="k1", approach_offset=-0.1)


def test_approach_until_touch(kick_run):
    """approach_until_touch: a new episode starts untouched; once the ball rolls faster than
    touch_speed the approach term is 1 however far the ball is (env 2), and not before (env 3)."""
    env, params, s0, s1 = kick_run
    assert not np.asarray(s0.info["ball_touched"]).any()
    np.testing.assert_array_equal(np.asarray(s1.info["ball_touched"][2:]), [True, False])
    r = np.asarray(s1.metrics["r_approach"])
    assert r[2] == pytest.approx(1.0) and r[3] < 0.95          # the ball is 0.5-1.2 m from the root
    # the pure term: the latch only replaces the approach term
    args = (jnp.array([0.0, 0.0, 0.55]), jnp.array([0.0, 0.0, 0.55]), rmath.yaw_quat(jnp.float32(0.0)),
            jnp.array([1.0, 0.0, R]), jnp.zeros(3), jnp.array([3.0, 0.0, 0.0]), 1 / 30, env.cfg)
    r0, t0 = kick_reward(*args)
    r1, t1 = kick_reward(*args, jnp.asarray(True))
    assert float(t1["approach"]) == 1.0 and float(t0["approach"]) < 1.0
    assert float(r1 - r0) == pytest.approx(env.cfg.w_approach * (1.0 - float(t0["approach"])), abs=1e-6)
    assert float(kick_reward(*args, jnp.asarray(False))[0]) == pytest.approx(float(r0), abs=1e-7)
    with pytest.raises(ValueError, match="touch_speed"):
        KickConfig(robot="k1", touch_speed=0.0)

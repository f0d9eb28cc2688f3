"""Dribble: reward terms by hand, ball-loss counting, episode stats, obs heading invariance,
a tiny k1_dribble training run (the physics step end to end), the task's placement, and the
episode logic on planted states (ball teleported away -> lost after the grace time; ball in
the target with the robot upright -> success; fallen robot with the ball in the target -> no
success)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.envs.ball import episode_stats
from mjxmimic.envs.char import CharEnv
from mjxmimic.envs.dribble import (DribbleConfig, DribbleEnv, ball_lost, dribble_episode_stats, dribble_obs,
                                   dribble_reward, feet_ball_dist)
from mjxmimic.envs.physics import set_state

R = 0.07
DT = 1 / 30


# ---------------------------------------------------------------------------------------
# task terms (pure)
# ---------------------------------------------------------------------------------------
def test_dribble_reward_hand_computed():
    c = DribbleConfig(robot="k1", keep_radius=0.5, keep_scale=10.0, ball_speed=0.4, ball_pos_scale=0.1,
                      move_speed=0.4, move_vel_scale=4.0, w_keep=0.3, w_ball_vel=0.3, w_move=0.2, w_ball_pos=0.2)
    p1 = jnp.array([0.0, 0.0, 0.55])
    p0 = p1 - jnp.array([0.3 * DT, 0.0, 0.0])                   # the root walks +x at 0.3 m/s
    feet = jnp.array([[0.0, 0.1, 0.05], [0.0, -0.1, 0.05]])
    tar = jnp.array([3.0, 4.0, 0.0])
    # ball at the left toe (0.3 m from that foot): keep = 1, the move term aims at the target
    ball, bv = jnp.array([0.3, 0.1, R]), jnp.array([0.2, 0.3, 0.0])
    r, t, d_f = dribble_reward(p1, p0, feet, ball, bv, tar, DT, c)
    assert float(d_f) == pytest.approx(0.3, abs=1e-6) and float(t["keep"]) == 1.0
    move = math.exp(-4.0 * (0.4 - 0.3 * 0.6) ** 2)                 # root->target direction (0.6, 0.8)
    d_bt = math.hypot(2.7, 3.9)
    bvel = (0.2 * 2.7 + 0.3 * 3.9) / d_bt / 0.4
    bpos = math.exp(-0.1 * d_bt * d_bt)
    assert float(t["move"]) == pytest.approx(move, abs=1e-5)
    assert float(t["ball_vel"]) == pytest.approx(bvel, abs=1e-5)
    assert float(t["ball_pos"]) == pytest.approx(bpos, abs=1e-6)
    assert float(r) == pytest.approx(0.3 + 0.3 * bvel + 0.2 * move + 0.2 * bpos, abs=1e-5)
    # ball 1 m ahead: keep = exp(-10·0.5²), the move term aims at the ball
    ball = jnp.array([1.0, 0.1, R])
    _, t, d_f = dribble_reward(p1, p0, feet, ball, bv, tar, DT, c)
    assert float(d_f) == pytest.approx(1.0, abs=1e-6)
    assert float(t["keep"]) == pytest.approx(math.exp(-2.5), abs=1e-6)
    assert float(t["move"]) == pytest.approx(math.exp(-4.0 * (0.4 - 0.3 / math.sqrt(1.01)) ** 2), abs=1e-5)
    # walking away earns no move term; a ball at rest or rolling away none, a fast one at most 1
    assert float(dribble_reward(p0, p1, feet, ball, bv, tar, DT, c)[1]["move"]) == 0.0
    assert float(dribble_reward(p1, p0, feet, ball, jnp.zeros(3), tar, DT, c)[1]["ball_vel"]) == 0.0
    assert float(dribble_reward(p1, p0, feet, ball, -bv, tar, DT, c)[1]["ball_vel"]) == 0.0
    assert float(dribble_reward(p1, p0, feet, ball, 5 * bv, tar, DT, c)[1]["ball_vel"]) == 1.0
    # the nearer foot counts
    assert float(feet_ball_dist(feet, jnp.array([0.0, -0.5, R]))) == pytest.approx(0.4, abs=1e-6)


def test_ball_lost_after_the_grace_time():
    c = DribbleConfig(robot="k1", keep_radius=0.5, lost_margin=0.3, lost_grace=0.1)   # 3 steps at 30 Hz
    n, lost = jnp.zeros((), jnp.int32), []
    for d in [0.9, 0.9, 0.9, 0.7, 0.9, 0.9, 0.9, 0.9]:             # 0.7 < 0.8: back near the feet
        n, lo = ball_lost(n, jnp.float32(d), c, DT)
        lost.append(bool(lo))
    assert lost == [False] * 7 + [True]                              # the near step restarts the count


def test_episode_stats():
    m = {"env/term_success": 0.02, "env/term_fail": 0.03, "env/term_timeout": 0.01, "env/ball_lost": 0.02,
         "env/fall": 0.01, "env/time_to_success": 0.1, "env/final_ball_target_dist": 0.06}
    s = dribble_episode_stats(m)
    assert s["success_rate"] == pytest.approx(1 / 3) and s["ball_loss_rate"] == pytest.approx(1 / 3)
    assert s["fall_rate"] == pytest.approx(1 / 6) and s["timeout_rate"] == pytest.approx(1 / 6)
    assert s["time_to_success"] == pytest.approx(5.0) and s["final_ball_target_dist"] == pytest.approx(1.0)
    # play passes its evaluation's end/ means
    e = episode_stats({"end/" + k[4:]: v for k, v in m.items()}, DribbleEnv.episode_rates)
    assert e == pytest.approx(s)
    assert math.isnan(dribble_episode_stats({})["success_rate"])


def test_dribble_obs_heading_invariance():
    rot = rmath.normalize(jnp.array([0.9, 0.05, -0.1, 0.4]))
    pos, ball, bv, tar = (jnp.array([0.2, -1.0, 0.5]), jnp.array([1.0, 0.3, R]), jnp.array([1.0, -0.5, 0.2]),
                          jnp.array([3.0, 2.0, 0.0]))
    o1 = dribble_obs(pos, rot, ball, bv, tar)
    q, s = rmath.yaw_quat(jnp.float32(-2.3)), jnp.array([5.0, 1.5, 0.0])
    o2 = dribble_obs(rmath.quat_rotate(q, pos) + s, rmath.quat_mul(q, rot), rmath.quat_rotate(q, ball) + s,
                     rmath.quat_rotate(q, bv), rmath.quat_rotate(q, tar) + s)
    assert o1.shape == (10,)
    np.testing.assert_allclose(np.asarray(o1), np.asarray(o2), atol=1e-5)
    # hand check, root facing +y: the ball 0.3 m ahead, the target 4 m ahead and 1 m to the right
    o3 = dribble_obs(jnp.zeros(3), rmath.yaw_quat(jnp.float32(math.pi / 2)), jnp.array([0.0, 0.3, R]),
                     jnp.array([0.0, 0.5, 0.0]), jnp.array([1.0, 4.0, 0.0]))
    np.testing.assert_allclose(np.asarray(o3), [0.3, 0, R, 0.5, 0, 0, 4, -1, 3.7, -1], atol=1e-6)


# ---------------------------------------------------------------------------------------
# a tiny k1_dribble training run (the physics step end to end), then the env's episode logic on
# planted states: the task's placement (task_init) from the robot's init pose, then the step's
# evaluation (env.evaluate_step: task terms, ball loss, fall, success) of planted states held
# for STEPS control steps. Compiling the physics step once more would cost a minute on CI.
# ---------------------------------------------------------------------------------------
STEPS = 5
OVERRIDES = {"env.num_envs": 4, "env.episode_length": 1.0, "env.lost_grace": 0.1,   # lost after 3 steps away
             "agent.steps_per_iter": 4, "agent.actor_hidden": [16], "agent.critic_hidden": [16],
             "agent.disc_hidden": [16], "agent.disc_buffer_size": 32, "agent.disc_replay_samples": 8}


@pytest.fixture(scope="module")
def trained():
    from mjxmimic.envs.registry import make_env
    from mjxmimic.train import build_trainer

    env, params, agent_cfg = make_env("k1_dribble", OVERRIDES)
    trainer = build_trainer(env, params, agent_cfg)
    ts = trainer.init(jax.random.PRNGKey(0))
    for _ in range(2):
        ts, m = trainer.iteration(ts)
    return env, params, ts, jax.device_get(m)


def test_k1_dribble_trains_two_iterations_without_nan(trained):
    from mjxmimic.learning import policy_params

    env, _, ts, m = trained
    assert isinstance(env, DribbleEnv) and env.cfg.keep_radius == 0.5 and int(ts.iteration) == 2
    for k in ("disc_loss", "task_reward_mean", "style_reward_mean", "env/ball_lost", "env/r_keep",
              "env/ball_feet_dist", "env/term_fail"):
        assert k in m and np.isfinite(m[k]), k
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(jax.device_get(policy_params(ts))))


@pytest.fixture(scope="module")
def planted(trained):
    env, params, ts, _ = trained
    a = env.ball_qpos_adr
    info0 = ts.env_state.info                                       # the 4 envs' info (its keys)
    q0, v0 = env.full_state(jnp.asarray(env.init_qpos), jnp.zeros((env.robot.model.nv,), jnp.float32))
    lying = rmath.normalize(jnp.array([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0]))

    @jax.jit
    def run(keys):
        q, v, info = jax.vmap(env.task_init, in_axes=(None, 0, None, None, 0))(params, keys, q0, v0, info0)
        placed = (q, jax.vmap(lambda qq: set_state(params.model, qq, v0).xpos)(q), info)
        tar = info["tar_pos"]
        # env 0: the ball teleported 3 m behind the robot; env 1: the target moved onto the ball;
        # env 2: the robot lying on its side with the target on the ball; env 3: as placed
        q = q.at[0, a:a + 2].add(jnp.array([-3.0, 3.0]))
        tar = tar.at[1:3, :2].set(q[1:3, a:a + 2])
        q = q.at[2, 2].set(0.15).at[2, 3:7].set(lying)
        data = jax.vmap(lambda qq, qv: set_state(params.model, qq, qv))(q, v)
        # mid-episode: a fall never counts on an episode's first step
        info = {**info, "tar_pos": tar, "step": jnp.full((4,), 10, jnp.int32)}

        def body(info, _):
            info = {**info, "step": info["step"] + 1}   # what env.step does before evaluating
            _, r, failed, succeeded, m, info = jax.vmap(env.evaluate_step, in_axes=(None, None, 0, 0, 0))(
                params, None, data, data, info)
            return info, (failed, succeeded, r, m)
        return placed, jax.lax.scan(body, info, None, length=STEPS)[1]
    placed, out = run(jax.random.split(jax.random.PRNGKey(3), 4))
    return env, jax.device_get(placed), jax.device_get(out)


def test_dribble_task_placement(planted, trained):
    env, (q, xpos, info), _ = planted
    c, a = env.cfg, env.ball_qpos_adr
    assert env.obs_size == env.char_obs_size() + 10 and env.task_spec()["name"] == "dribble"
    assert DribbleEnv.reset is CharEnv.reset and DribbleEnv.step is CharEnv.step     # hooks only
    np.testing.assert_allclose(q[:, a + 2], R, atol=1e-6)
    d = np.linalg.norm(q[:, a:a + 2] - q[:, :2], axis=-1)
    assert np.all((d >= c.ball_dist_min - 1e-4) & (d <= c.ball_dist_max + 1e-4))
    d_t = np.linalg.norm(info["tar_pos"][:, :2] - q[:, a:a + 2], axis=-1)
    assert np.all((d_t >= c.target_dist_min - 1e-4) & (d_t <= c.target_dist_max + 1e-4))
    # the ball starts within the keep radius of a foot, not yet away
    d_f = feet_ball_dist(jnp.asarray(xpos[:, env.foot_body_ids]), jnp.asarray(q[:, a:a + 3]))
    assert np.all(np.asarray(d_f) < c.keep_radius) and np.all(info["ball_far_steps"] == 0)
    assert set(trained[2].env_state.metrics) >= {"success", "ball_lost", "fall", "term_success", "term_fail"}


def test_ball_teleported_away_is_lost_after_the_grace_time(planted):
    _, _, (failed, succeeded, _, m) = planted
    np.testing.assert_array_equal(failed[:4, 0], [False, False, False, True])
    assert m["ball_lost"][3, 0] == 1.0 and m["fall"][3, 0] == 0.0 and not succeeded[:, 0].any()
    assert m["ball_feet_dist"][0, 0] > 2.0


def test_ball_in_target_upright_is_a_success(planted):
    env, _, (failed, succeeded, reward, m) = planted
    assert succeeded[0, 1] and not failed[0, 1]
    assert m["success"][0, 1] == 1.0 and m["ball_lost"][0, 1] == 0.0
    assert reward[0, 1] >= env.cfg.success_bonus
    assert m["time_to_success"][0, 1] == pytest.approx(11 * env.control_dt, abs=1e-5)
    assert m["final_ball_target_dist"][0, 1] < env.cfg.target_radius


def test_fallen_robot_with_ball_in_target_is_no_success(planted):
    env, _, (failed, succeeded, reward, m) = planted
    assert failed[0, 2] and not succeeded[0, 2]
    assert m["fall"][0, 2] == 1.0 and m["success"][0, 2] == 0.0 and m["ball_lost"][0, 2] == 0.0
    assert m["ball_target_dist"][0, 2] < env.cfg.target_radius and reward[0, 2] < env.cfg.success_bonus


def test_untouched_episode_runs_on(planted):
    _, _, (failed, succeeded, reward, m) = planted
    assert not failed[:, 3].any() and not succeeded[:, 3].any()
    assert np.all(m["ball_feet_dist"][:, 3] < 0.5) and np.all(m["r_keep"][:, 3] == 1.0)
    assert np.all(np.isfinite(reward))

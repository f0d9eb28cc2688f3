"""Run an exported policy in MuJoCo C (not MJX): the check before it goes on the robot.

    python -m mjxmimic.sim2sim deploy/k1_walk --episodes 20 [--video out.mp4] [--seconds 10]

Reads ``policy.onnx`` + ``policy.json`` (written by :mod:`mjxmimic.export`) and drives the robot's
MuJoCo model the way the firmware drives the servos:

* Physics at ``--dt`` (default 0.002 s, finer than training). The position actuators become
  torque motors; every physics step applies τ = clip(kp·(q* − q) − kd·q̇, ±effort) with the
  policy.json gains (explicit PD, as a servo loop computes it; MJX integrated the same law
  implicitly inside its position actuators). q* is clamped to the actuators' ctrlrange as
  MuJoCo did in training. ``--delay N``: q* takes effect N physics steps after the policy sent it.
* Armature per joint from policy.json (the run's profile).
* The observation is built term by term from policy.json's layout with the env's pure functions,
  from what the robot measures: root orientation and gyro (an IMU on the root body: qpos[3:7],
  qvel[3:6]), joint encoders, the last action, and the reference clip's terms. The anchor body's
  orientation comes from forward kinematics of those (as on the robot). Terms of the ``full``
  observation set that a robot cannot measure (``anchor_pos``, ``base_lin_vel``) are read from the
  simulator, with a warning.
* Episodes start on the clip's first frame (``--start-noise`` adds uniform joint noise) and end
  on a tracking failure (the tracking env's ``compute_terminations``), the clip's end or the
  episode length. Tracking runs only; AMP/kick runs are not supported yet.
"""
from __future__ import annotations

import argparse
import collections
import copy
import sys
from pathlib import Path

import numpy as np

__all__ = ["PRIVILEGED_TERMS", "load_policy", "torque_model", "read_sensors", "make_observation_fn",
           "run_episodes", "main"]

# Terms of the tracking env's "full" set that come from the simulator's world state.
PRIVILEGED_TERMS = ("anchor_pos", "base_lin_vel")


def load_policy(policy_dir):
    """(policy.json as loaded by :func:`mjxmimic.export.load_policy_json`, onnxruntime session)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("sim2sim needs onnxruntime: pip install 'mjxmimic[deploy]'") from None
    from mjxmimic.export import load_policy_json
    d = Path(policy_dir)
    meta = load_policy_json(d / "policy.json")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(d / meta["onnx"]["file"]), opts, providers=["CPUExecutionProvider"])
    return meta, sess


def torque_model(robot, meta: dict, timestep: float = 0.002):
    """A copy of the robot's MjModel at ``timestep`` whose actuators are torque motors (gain 1,
    no bias, ctrl = τ limited to ±effort) and whose joint armature is policy.json's."""
    m = copy.deepcopy(robot.model)
    m.opt.timestep = timestep
    nu = m.nu
    eff = meta["effort"].astype(np.float64)
    m.actuator_gainprm[:nu] = 0.0
    m.actuator_gainprm[:nu, 0] = 1.0
    m.actuator_biasprm[:nu] = 0.0
    m.actuator_ctrlrange[:nu] = np.stack([-eff, eff], -1)
    m.actuator_forcerange[:nu] = np.stack([-eff, eff], -1)
    m.actuator_ctrllimited[:nu] = 1
    m.actuator_forcelimited[:nu] = 1
    m.dof_armature[robot.qvel_idx] = meta["armature"]
    return m


def read_sensors(robot, data, anchor_id: int) -> dict:
    """What the robot measures (plus the simulator-only anchor position and root velocity for the
    privileged terms), as float32 arrays; ``data`` must have its kinematics computed."""
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return {"root_rot": f(data.qpos[3:7]), "gyro": f(data.qvel[3:6]), "joint_pos": f(data.qpos[robot.qpos_idx]),
            "joint_vel": f(data.qvel[robot.qvel_idx]), "anchor_rot": f(data.xquat[anchor_id]),
            "anchor_pos": f(data.xpos[anchor_id]), "root_vel": f(data.qvel[0:3])}


def make_observation_fn(meta: dict):
    """obs(sensors, clip, step, last_action) -> the actor observation [size] (noise-free), following
    policy.json's layout; jitted once. Raises ValueError for a term it does not know."""
    import jax
    import jax.numpy as jnp

    from mjxmimic import math as rmath
    from mjxmimic.envs.observations import projected_gravity
    from mjxmimic.envs.tracking import rot6d
    default = jnp.asarray(meta["default_joint_pos"])
    fut = np.asarray(meta["reference"]["future_steps"], np.int32)

    def ref_cmd(r):
        parts = [r["joint_pos"][0], r["joint_vel"][0]]
        if len(fut):
            parts += [r["joint_pos"][fut].reshape(-1), r["joint_vel"][fut].reshape(-1)]
        return jnp.concatenate(parts)

    terms = {
        "command": lambda s, r, a: ref_cmd(r),
        "ref_joint_pos": lambda s, r, a: r["joint_pos"][0],
        "ref_joint_vel": lambda s, r, a: r["joint_vel"][0],
        "anchor_pos": lambda s, r, a: rmath.quat_rotate_inv(s["anchor_rot"], r["anchor_pos"][0] - s["anchor_pos"]),
        "anchor_ori": lambda s, r, a: rot6d(rmath.quat_mul(rmath.quat_conj(s["anchor_rot"]), r["anchor_rot"][0])),
        "base_lin_vel": lambda s, r, a: rmath.quat_rotate_inv(rmath.normalize(s["root_rot"]), s["root_vel"]),
        "base_ang_vel": lambda s, r, a: s["gyro"],
        "gyro": lambda s, r, a: s["gyro"],
        "projected_gravity": lambda s, r, a: projected_gravity(rmath.normalize(s["root_rot"])),
        "joint_pos": lambda s, r, a: s["joint_pos"] - default,
        "joint_vel": lambda s, r, a: s["joint_vel"],
        "last_action": lambda s, r, a: a,
    }
    layout = meta["observation"]["layout"]
    unknown = [t["name"] for t in layout if t["name"] not in terms]
    if unknown:
        raise ValueError(f"sim2sim cannot build observation term(s) {unknown} (it knows {sorted(terms)})")

    @jax.jit
    def build(s, r, a):
        return jnp.concatenate([terms[t["name"]](s, r, a).reshape(-1) for t in layout])

    clips = meta["reference"]["clips"]
    span = 1 + int(fut.max(initial=0))

    def obs(sensors, clip: int, step: int, last_action):
        c = clips[clip]
        k = min(step, len(c["joint_pos"]) - span)
        r = {n: c[n][k:k + span] for n in ("joint_pos", "joint_vel", "anchor_pos", "anchor_rot")}
        out = np.asarray(build(sensors, r, np.asarray(last_action, np.float32)))
        if out.shape != (meta["observation"]["size"],):
            raise ValueError(f"built an observation of {out.shape}, policy.json says {meta['observation']['size']}")
        return out
    return obs


def _check(meta: dict, robot):
    if "reference" not in meta:
        raise ValueError(f"sim2sim runs tracking policies; this one ({meta.get('env_kind')}) has no reference clip "
                         f"(AMP/kick runs are not supported yet)")
    if list(meta["joint_names"]) != list(robot.joint_names):
        raise ValueError(f"policy.json's joints differ from robot {robot.name}'s")


def run_episodes(meta: dict, session, episodes: int = 1, seconds=None, dt: float = 0.002, delay: int = 0,
                 start_noise: float = 0.0, obs_noise: float = 0.0, seed: int = 0, record: bool = False):
    """Run ``episodes`` (clip i % clips) -> (metrics, qpos [T, nq] of episode 0 or None).

    ``obs_noise`` scales policy.json's uniform noise per term (0: none). Metrics: ``survival``
    (episodes without a tracking failure), ``joint_pos_err`` (mean |wrap(q_ref − q)|, rad),
    and ``episode_length_s``; an episode without a failure ran to the clip's end or the episode length."""
    import mujoco

    from mjxmimic import math as rmath
    from mjxmimic.envs.tracking import compute_terminations
    from mjxmimic.robots import load_robot
    robot = load_robot(meta["robot"])
    _check(meta, robot)
    model = torque_model(robot, meta, dt)
    data = mujoco.MjData(model)
    control_dt = 1.0 / meta["control_freq"]
    n_sub = int(round(control_dt / dt))
    if n_sub < 1 or abs(n_sub * dt - control_dt) > 1e-6:
        raise ValueError(f"--dt {dt} must divide the control step {control_dt}")
    ref = meta["reference"]
    anchor = robot.body_id(ref["anchor_body"])
    ee = np.array([robot.body_id(n) for n in ref["ee_bodies"]])
    term = ref["termination"]
    act = meta["action"]
    kp, kd, eff = meta["kp"], meta["kd"], meta["effort"]
    lo, hi = act["target_range"][:, 0], act["target_range"][:, 1]
    if act["mode"] == "low_high":
        lo, hi = np.maximum(lo, act["low"]), np.minimum(hi, act["high"])
    obs_fn = make_observation_fn(meta)
    layout = meta["observation"]["layout"]
    noise = np.concatenate([np.full(t["size"], t["noise"], np.float32) for t in layout]) * obs_noise
    priv = [t["name"] for t in layout if t["name"] in PRIVILEGED_TERMS]
    if priv:
        print(f"warning: the policy reads {priv}, which the robot does not measure; sim2sim takes them from the "
              f"simulator", file=sys.stderr)
    max_steps = int(meta["max_episode_steps"]) if seconds is None else int(round(seconds / control_dt))
    rng = np.random.default_rng(seed)
    inp, outp = meta["onnx"]["input"], meta["onnx"]["output"]
    J = len(robot.joint_names)
    fails, errs, lengths, traj = 0, [], [], None
    for ep in range(episodes):
        ci = ep % len(ref["clips"])
        c = ref["clips"][ci]
        mujoco.mj_resetData(model, data)
        data.qpos[:robot.model.nq] = c["qpos0"]
        data.qvel[:robot.model.nv] = c["qvel0"]
        data.qpos[robot.qpos_idx] += rng.uniform(-start_noise, start_noise, J)
        mujoco.mj_forward(model, data)
        a = np.zeros(J, np.float32)
        queue = None
        qs = [data.qpos.copy()] if record and ep == 0 else None
        end = max_steps if c["end_step"] is None else min(max_steps, int(c["end_step"]))
        failed, k = False, 0
        while k < end:
            s = read_sensors(robot, data, anchor)
            o = obs_fn(s, ci, k, a) + noise * rng.uniform(-1.0, 1.0, noise.shape).astype(np.float32)
            a = session.run([outp], {inp: o[None].astype(np.float32)})[0][0]
            target = np.clip(act["offset"] + act["scale"] * a, lo, hi)
            if queue is None:   # before the first command arrives the servos hold the first one
                queue = collections.deque([target] * (delay + 1), maxlen=delay + 1)
            for _ in range(n_sub):
                queue.append(target)
                q, dq = data.qpos[robot.qpos_idx], data.qvel[robot.qvel_idx]
                data.ctrl[:J] = np.clip(kp * (queue[0] - q) - kd * dq, -eff, eff)
                mujoco.mj_step(model, data)
            mujoco.mj_kinematics(model, data)
            k += 1
            if qs is not None:
                qs.append(data.qpos.copy())
            kk = min(k, len(c["anchor_pos"]) - 1)
            f = compute_terminations(np.float32(data.xpos[anchor, 2]), c["anchor_pos"][kk, 2],
                                     np.asarray(data.xquat[anchor], np.float32), c["anchor_rot"][kk],
                                     np.asarray(data.xpos[ee, 2], np.float32), c["ee_z"][kk],
                                     term["anchor_height"], term["gravity_z"], term["ee_height"])
            errs.append(float(np.mean(np.abs(rmath.wrap_angle(c["joint_pos"][kk] - data.qpos[robot.qpos_idx])))))
            if any(bool(x) for x in f):
                failed = True
                break
        fails += failed
        lengths.append(k * control_dt)
        if qs is not None:
            traj = np.asarray(qs)
    metrics = {"episodes": episodes, "survival": 1.0 - fails / episodes,
               "joint_pos_err": float(np.mean(errs)) if errs else 0.0, "episode_length_s": float(np.mean(lengths)),
               "dt": dt, "delay_steps": delay}
    return metrics, traj


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.sim2sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy_dir", help="a folder with policy.onnx and policy.json (python -m mjxmimic.export)")
    ap.add_argument("--episodes", type=int, default=10, help="episodes (clip i %% number of clips)")
    ap.add_argument("--seconds", type=float, default=None, help="episode length (default: policy.json's)")
    ap.add_argument("--dt", type=float, default=0.002, help="physics timestep (s)")
    ap.add_argument("--delay", type=int, default=0, help="actuator delay in physics steps")
    ap.add_argument("--start-noise", type=float, default=0.0, help="uniform ± joint-angle noise at the start (rad)")
    ap.add_argument("--obs-noise", type=float, default=0.0, help="times policy.json's observation noise")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--video", help="write an mp4 of the first episode here")
    ap.add_argument("--json", help="also write the metrics to this JSON file")
    args = ap.parse_args(argv)
    if args.video:
        from mjxmimic.view import select_gl_backend
        if select_gl_backend() is None:
            print("warning: no OpenGL backend (egl/osmesa) works here; skipping the video", file=sys.stderr)
            args.video = None
    from mjxmimic.quiet import import_mjx
    import_mjx()  # after MUJOCO_GL is chosen: no warp-probe lines
    if args.episodes < 1 or args.delay < 0:
        print("error: --episodes must be >= 1 and --delay >= 0", file=sys.stderr)
        return 2
    try:
        meta, sess = load_policy(args.policy_dir)
        m, traj = run_episodes(meta, sess, args.episodes, args.seconds, args.dt, args.delay, args.start_noise,
                               args.obs_noise, args.seed, record=bool(args.video))
    except (FileNotFoundError, ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("| metric | value |\n|---|---|")
    for k in sorted(m):
        print(f"| {k} | {m[k]:.4g} |")
    if args.json:
        import json
        Path(args.json).write_text(json.dumps(m, indent=1))
    if args.video:
        from mjxmimic.robots import load_robot
        from mjxmimic.view import render_rollout
        robot = load_robot(meta["robot"])
        print(f"wrote {render_rollout(robot.model, robot, traj, Path(args.video), meta['control_freq'], stills=0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run an exported policy in MuJoCo C (not MJX): the check before it goes on the robot.

    python -m mjxmimic.sim2sim deploy/k1_walk --episodes 20 [--video out.mp4] [--seconds 10]
    python -m mjxmimic.sim2sim deploy/k1_kick --episodes 100 --json kick.json

Reads ``policy.onnx`` + ``policy.json`` (written by :mod:`mjxmimic.export`) and drives the robot's
MuJoCo model the way the firmware drives the servos:

* Physics at ``--dt``, finer than training. The position actuators become torque motors; every
  physics step applies τ = clip(kp·(q* − q) − kd·q̇, ±effort) with the policy.json gains
  (explicit PD, as a servo loop computes it; MJX integrated the same law implicitly inside its
  position actuators). A servo's loop runs far faster than any simulation step, so the step must
  keep the explicit damping stable: each step multiplies a joint's q̇ by about 1 − kd·dt/M_jj
  (M: the joint-space inertia), which oscillates above 1 and diverges above 2. The default
  ``--dt`` is the largest step that divides the control period with kd·dt/M_jj ≤ 1 on every joint
  and at most 2 ms (:func:`pd_stable_timestep`; K1's arms with kd 6 need 0.25 ms); a coarser
  ``--dt`` is run with a warning. q* is clamped to the actuators' ctrlrange as MuJoCo did in
  training. ``--delay-ms T`` (or ``--delay N`` physics steps): q* takes effect that much later;
  by default the middle of the delay range the policy was trained with (policy.json's
  ``randomize``; 0 without one).
* Armature per joint from policy.json (the run's profile).
* The observation is built term by term from policy.json's layout with the env's pure functions,
  from what the robot measures: root orientation and gyro (an IMU on the root body: qpos[3:7],
  qvel[3:6]), joint encoders, the last action, and the task's inputs. The anchor body's
  orientation comes from forward kinematics of those (as on the robot). Terms of the ``full``
  observation set that a robot cannot measure (``anchor_pos``, ``base_lin_vel``) are read from the
  simulator, with a warning.

Tracking runs: episodes start on the clip's first frame (``--start-noise`` adds uniform joint
noise) and end on a tracking failure (the tracking env's ``compute_terminations``), the clip's end
or the episode length; metrics: survival, joint error, episode length.

Ball-kick runs (``k1_kick_deploy``: the robot-side observation set): the model is the env's own
ball scene (:func:`mjxmimic.envs.scene.build_ball_scene` with policy.json's ball). Episodes start
with the robot at rest in the run's start pose and the ball and target placed as the env's reset
places them (its layout ranges, a seeded numpy RNG); the kick's 8 task numbers (ball position and
velocity and target, relative to the robot in its heading frame: what its vision would give) are
the env's ``kick_obs`` of the simulated state. Episodes end as the env's do: a fall (a body other
than the robot's contact bodies, its feet, on the ground), the ball in the target area (a success
only with the robot not fallen) or the episode length. Metrics, as ``play`` prints them for the env: success, fall and
timeout rates, mean time to success, mean final ball-target distance. ``--video`` shows the ball
and the target area. (AMP runs without a task, steering and location runs are not supported.)
"""
from __future__ import annotations

import argparse
import collections
import copy
import math
import sys
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

__all__ = ["PRIVILEGED_TERMS", "TASKS", "Recording", "default_delay_ms", "load_policy", "sim_model", "torque_model",
           "read_sensors", "pd_stable_timestep", "physics_timestep",
           "read_kick_inputs", "make_observation_fn", "observed_action", "history", "ObsStack", "policy_action",
           "run_episodes", "main"]

# Terms of the tracking env's "full" set that come from the simulator's world state.
PRIVILEGED_TERMS = ("anchor_pos", "base_lin_vel")
# Tasks (policy.json's ``task.name``) sim2sim runs, besides tracking.
TASKS = ("kick",)


class Recording(NamedTuple):
    """The first episode: ``qpos`` [T, model nq] of the simulated model (robot or ball scene) and
    the task's ``target`` [T, 3] (None without one)."""
    qpos: np.ndarray
    target: Optional[np.ndarray]


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


def sim_model(meta: dict, robot):
    """(MjModel the run trained on before its profile, ball scene or None): the robot's model, or
    for a kick run the env's own ball scene (:func:`mjxmimic.envs.scene.build_ball_scene` with
    policy.json's ball)."""
    task = meta.get("task")
    if task is None:
        return robot.model, None
    if task.get("name") not in TASKS:
        raise ValueError(f"sim2sim does not know the task {task.get('name')!r} (it knows {list(TASKS)})")
    from mjxmimic.envs.scene import BallConfig, build_ball_scene
    ball = BallConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in task["ball"].items()})
    scene = build_ball_scene(robot, ball)
    return scene.model, scene


def torque_model(robot, meta: dict, timestep: float = 0.002, model=None):
    """A copy of ``model`` (default: the robot's MjModel) at ``timestep`` whose robot actuators are
    torque motors (gain 1, no bias, ctrl = τ limited to ±effort) and whose joint armature is
    policy.json's."""
    m = copy.deepcopy(robot.model if model is None else model)
    m.opt.timestep = timestep
    nu = robot.model.nu
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


MAX_DT = 0.002   # s: the default physics step's upper bound


def pd_stable_timestep(model, qpos, dof_idx, kd) -> tuple[float, int]:
    """(min_j M_jj / kd_j, j): the largest physics step at which explicit PD damping −kd·q̇ does not
    oscillate on any joint ``dof_idx`` (M: the joint-space inertia at ``qpos``, armature included;
    explicit Euler scales q̇ by 1 − kd·dt/M_jj per step), and the index of the joint that limits it."""
    import mujoco
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    mujoco.mj_forward(model, d)
    M = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, d, M)
    ratio = np.diag(M)[np.asarray(dof_idx)] / np.maximum(np.asarray(kd, np.float64), 1e-12)
    j = int(np.argmin(ratio))
    return float(ratio[j]), j


def physics_timestep(robot, meta: dict, dt: Optional[float] = None, model=None) -> float:
    """The physics step sim2sim runs ``meta``'s policy at: ``dt``, with a warning on stderr when its
    explicit PD is unstable or oscillating (:func:`pd_stable_timestep`); None: the largest step that
    divides the control period, is at most ``MAX_DT`` and keeps kd·dt/M ≤ 1 on every joint."""
    m = torque_model(robot, meta, MAX_DT, model)
    qpos = np.array(m.qpos0)
    qpos[:robot.model.nq] = meta.get("init_qpos", robot.model.qpos0)
    limit, j = pd_stable_timestep(m, qpos, robot.qvel_idx, meta["kd"])
    control_dt = 1.0 / meta["control_freq"]
    if dt is None:
        return control_dt / math.ceil(control_dt / min(MAX_DT, limit) - 1e-9)
    if dt > limit:
        print(f"warning: at --dt {dt:g} the explicit PD oscillates or diverges: joint {robot.joint_names[j]} "
              f"(kd {meta['kd'][j]:g}) needs a step of at most {limit:.3g} s; leave --dt out to get one",
              file=sys.stderr)
    return float(dt)


def _step_and_delay(robot, meta: dict, dt, delay: int, delay_ms, model=None) -> tuple[float, int]:
    """(physics step, actuator delay in its steps): :func:`physics_timestep`, and ``delay_ms``
    (when given) rounded to steps of it, else ``delay``."""
    dt = physics_timestep(robot, meta, dt, model)
    return dt, (delay if delay_ms is None else int(round(delay_ms / 1000.0 / dt)))


def read_sensors(robot, data, anchor_id: Optional[int] = None) -> dict:
    """What the robot measures (plus, for tracking, the anchor body and the simulator-only anchor
    position and root velocity for the privileged terms), as float32 arrays; ``data`` must have
    its kinematics computed."""
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    s = {"root_rot": f(data.qpos[3:7]), "gyro": f(data.qvel[3:6]), "joint_pos": f(data.qpos[robot.qpos_idx]),
         "joint_vel": f(data.qvel[robot.qvel_idx]), "root_vel": f(data.qvel[0:3])}
    if anchor_id is not None:
        s.update(anchor_rot=f(data.xquat[anchor_id]), anchor_pos=f(data.xpos[anchor_id]))
    return s


def read_kick_inputs(scene, data, tar_pos) -> dict:
    """The kick's task inputs (what the robot's vision and localisation give: ball and target
    relative to the robot; here the world positions it is computed from), float32."""
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    a, v = scene.ball_qpos_adr, scene.ball_qvel_adr
    return {"root_pos": f(data.qpos[0:3]), "ball_pos": f(data.qpos[a:a + 3]), "ball_vel": f(data.qvel[v:v + 3]),
            "tar_pos": f(tar_pos)}


def observed_action(act: dict, a):
    """The last action as the env observes it: tracking runs the policy's output ``a``; ``low_high``
    runs (AMP, kick) the PD target after the action bounds' clip, mapped back onto [-1, 1]
    (``AMPEnv.normalized_action``: the inverse of policy.json's rule)."""
    if act["mode"] != "low_high":
        return np.asarray(a, np.float32)
    return ((np.clip(act["offset"] + act["scale"] * a, act["low"], act["high"]) - act["offset"])
            / act["scale"]).astype(np.float32)


def make_observation_fn(meta: dict):
    """obs(sensors, clip, step, last_action) -> one actor observation frame (noise-free; size / history),
    following policy.json's layout; jitted once. ``clip``/``step`` index the tracking reference (None/any for
    a kick run, whose ``task`` term reads :func:`read_kick_inputs`' entries of ``sensors``);
    ``last_action`` is :func:`observed_action`'s. Raises ValueError for a term it does not know."""
    import jax
    import jax.numpy as jnp

    from mjxmimic import math as rmath
    from mjxmimic.envs.observations import projected_gravity
    from mjxmimic.envs.tracking import rot6d
    default = jnp.asarray(meta["default_joint_pos"])
    ref = meta.get("reference")
    fut = np.asarray(ref["future_steps"] if ref else [], np.int32)

    def ref_cmd(r):
        parts = [r["joint_pos"][0], r["joint_vel"][0]]
        if len(fut):
            parts += [r["joint_pos"][fut].reshape(-1), r["joint_vel"][fut].reshape(-1)]
        return jnp.concatenate(parts)

    terms = {
        "projected_gravity": lambda s, r, a: projected_gravity(rmath.normalize(s["root_rot"])),
        "gyro": lambda s, r, a: s["gyro"],
        "joint_pos": lambda s, r, a: s["joint_pos"] - default,
        "joint_vel": lambda s, r, a: s["joint_vel"],
        "last_action": lambda s, r, a: a,
    }
    if ref:
        terms.update({
            "command": lambda s, r, a: ref_cmd(r),
            "ref_joint_pos": lambda s, r, a: r["joint_pos"][0],
            "ref_joint_vel": lambda s, r, a: r["joint_vel"][0],
            "anchor_pos": lambda s, r, a: rmath.quat_rotate_inv(s["anchor_rot"], r["anchor_pos"][0] - s["anchor_pos"]),
            "anchor_ori": lambda s, r, a: rot6d(rmath.quat_mul(rmath.quat_conj(s["anchor_rot"]), r["anchor_rot"][0])),
            "base_lin_vel": lambda s, r, a: rmath.quat_rotate_inv(rmath.normalize(s["root_rot"]), s["root_vel"]),
            "base_ang_vel": lambda s, r, a: s["gyro"],
        })
    if meta.get("task", {}).get("name") == "kick":
        from mjxmimic.envs.kick import kick_obs
        terms["task"] = lambda s, r, a: kick_obs(s["root_pos"], rmath.normalize(s["root_rot"]), s["ball_pos"],
                                                 s["ball_vel"], s["tar_pos"])
    layout = meta["observation"]["layout"]
    unknown = [t["name"] for t in layout if t["name"] not in terms]
    if unknown:
        raise ValueError(f"sim2sim cannot build observation term(s) {unknown} of this {meta.get('env_kind')} policy "
                         f"(it knows {sorted(terms)})")

    @jax.jit
    def build(s, r, a):
        return jnp.concatenate([terms[t["name"]](s, r, a).reshape(-1) for t in layout])

    clips = ref["clips"] if ref else []
    span = 1 + int(fut.max(initial=0))
    frame_size = meta["observation"]["size"] // history(meta)

    def obs(sensors, clip, step: int, last_action):
        r = {}
        if clip is not None:
            c = clips[clip]
            k = min(step, len(c["joint_pos"]) - span)
            r = {n: c[n][k:k + span] for n in ("joint_pos", "joint_vel", "anchor_pos", "anchor_rot")}
        out = np.asarray(build(sensors, r, np.asarray(last_action, np.float32)))
        if out.shape != (frame_size,):
            raise ValueError(f"built an observation frame of {out.shape}, policy.json says {frame_size}")
        return out
    return obs


def _check(meta: dict, robot):
    if "reference" not in meta and meta.get("task", {}).get("name") not in TASKS:
        raise ValueError(f"sim2sim runs tracking and ball-kick policies; this one ({meta.get('env_kind')}) has "
                         f"neither a reference clip nor a task it knows ({list(TASKS)})")
    if list(meta["joint_names"]) != list(robot.joint_names):
        raise ValueError(f"policy.json's joints differ from robot {robot.name}'s")


class _Servos:
    """The policy -> PD target -> torque loop of one control step (policy.json's action rule,
    explicit PD at the physics step, ``delay`` physics steps of actuator delay)."""

    def __init__(self, robot, model, data, meta: dict, dt: float, delay: int):
        control_dt = 1.0 / meta["control_freq"]
        self.n_sub = int(round(control_dt / dt))
        if self.n_sub < 1 or abs(self.n_sub * dt - control_dt) > 1e-6:
            raise ValueError(f"--dt {dt} must divide the control step {control_dt}")
        self.robot, self.model, self.data, self.delay = robot, model, data, delay
        self.act = act = meta["action"]
        self.kp, self.kd, self.eff = meta["kp"], meta["kd"], meta["effort"]
        lo, hi = act["target_range"][:, 0], act["target_range"][:, 1]
        if act["mode"] == "low_high":
            lo, hi = np.maximum(lo, act["low"]), np.minimum(hi, act["high"])
        self.lo, self.hi = lo, hi
        self.queue = None

    def reset(self):
        self.queue = None

    def command(self, a):
        """Apply the policy's output ``a`` for one control step, then compute the kinematics."""
        import mujoco
        r, d, J = self.robot, self.data, len(self.robot.joint_names)
        target = np.clip(self.act["offset"] + self.act["scale"] * a, self.lo, self.hi)
        if self.queue is None:   # before the first command arrives the servos hold the first one
            self.queue = collections.deque([target] * (self.delay + 1), maxlen=self.delay + 1)
        for _ in range(self.n_sub):
            self.queue.append(target)
            q, dq = d.qpos[r.qpos_idx], d.qvel[r.qvel_idx]
            d.ctrl[:J] = np.clip(self.kp * (self.queue[0] - q) - self.kd * dq, -self.eff, self.eff)
            mujoco.mj_step(self.model, d)
        mujoco.mj_kinematics(self.model, d)


def history(meta: dict) -> int:
    """Observation frames the policy reads (policy.json ``observation.history``; 1 before it existed)."""
    return int(meta["observation"].get("history", 1))


class ObsStack:
    """The actor input of a policy trained with ``obs_history`` H: its last H (noisy) frames,
    newest first; an episode starts with its first frame repeated, as the env's reset does."""

    def __init__(self, frames: int):
        self.n, self.frames = int(frames), None

    def reset(self):
        self.frames = None

    def __call__(self, frame):
        self.frames = [frame] * self.n if self.frames is None else [frame] + self.frames[:-1]
        return np.concatenate(self.frames)


def _obs_noise(meta: dict, obs_noise: float) -> np.ndarray:
    layout = meta["observation"]["layout"]
    return np.concatenate([np.full(t["size"], t["noise"], np.float32) for t in layout]) * obs_noise


def policy_action(session, meta: dict, obs, noise, rng, stack: Optional[ObsStack] = None):
    """The ONNX policy's action for one observation frame, with uniform ±``noise`` added as the
    robot's sensors would (``noise`` per observation number, zero for none); ``stack`` keeps the
    frames of a policy with an observation history."""
    o = obs + noise * rng.uniform(-1.0, 1.0, noise.shape).astype(np.float32)
    if stack is not None:
        o = stack(o)
    io = meta["onnx"]
    return session.run([io["output"]], {io["input"]: o[None].astype(np.float32)})[0][0]


def run_episodes(meta: dict, session, episodes: int = 1, seconds=None, dt: Optional[float] = None, delay: int = 0,
                 start_noise: float = 0.0, obs_noise: float = 0.0, seed: int = 0, record: bool = False,
                 delay_ms: Optional[float] = None):
    """Run ``episodes`` -> (metrics, :class:`Recording` of episode 0 or None): tracking runs (clip
    i % clips) or kick runs (:func:`run_kick_episodes`).

    ``dt``: the physics step (None: :func:`physics_timestep`'s stable default); ``delay``: actuator
    delay in physics steps, or ``delay_ms`` in milliseconds (rounded to steps of ``dt``).
    ``obs_noise`` scales policy.json's uniform noise per term (0: none). Tracking metrics:
    ``survival`` (episodes without a tracking failure), ``joint_pos_err`` (mean |wrap(q_ref − q)|,
    rad), and ``episode_length_s``; an episode without a failure ran to the clip's end or the
    episode length."""
    import mujoco

    from mjxmimic import math as rmath
    from mjxmimic.envs.tracking import compute_terminations
    from mjxmimic.robots import load_robot
    if "reference" not in meta:  # it checks the policy against the robot itself
        return run_kick_episodes(meta, session, episodes, seconds, dt, delay, start_noise, obs_noise, seed, record,
                                 delay_ms)
    robot = load_robot(meta["robot"])
    _check(meta, robot)
    dt, delay = _step_and_delay(robot, meta, dt, delay, delay_ms)
    model = torque_model(robot, meta, dt)
    data = mujoco.MjData(model)
    servos = _Servos(robot, model, data, meta, dt, delay)
    control_dt = 1.0 / meta["control_freq"]
    ref = meta["reference"]
    anchor = robot.body_id(ref["anchor_body"])
    ee = np.array([robot.body_id(n) for n in ref["ee_bodies"]])
    term = ref["termination"]
    obs_fn = make_observation_fn(meta)
    noise = _obs_noise(meta, obs_noise)
    stack = ObsStack(history(meta))
    priv = [t["name"] for t in meta["observation"]["layout"] if t["name"] in PRIVILEGED_TERMS]
    if priv:
        print(f"warning: the policy reads {priv}, which the robot does not measure; sim2sim takes them from the "
              f"simulator", file=sys.stderr)
    max_steps = int(meta["max_episode_steps"]) if seconds is None else int(round(seconds / control_dt))
    rng = np.random.default_rng(seed)
    J = len(robot.joint_names)
    fails, errs, lengths, rec = 0, [], [], None
    for ep in range(episodes):
        ci = ep % len(ref["clips"])
        c = ref["clips"][ci]
        mujoco.mj_resetData(model, data)
        data.qpos[:robot.model.nq] = c["qpos0"]
        data.qvel[:robot.model.nv] = c["qvel0"]
        data.qpos[robot.qpos_idx] += rng.uniform(-start_noise, start_noise, J)
        mujoco.mj_forward(model, data)
        a = np.zeros(J, np.float32)
        servos.reset()
        stack.reset()
        qs = [data.qpos.copy()] if record and ep == 0 else None
        end = max_steps if c["end_step"] is None else min(max_steps, int(c["end_step"]))
        failed, k = False, 0
        while k < end:
            s = read_sensors(robot, data, anchor)
            a = policy_action(session, meta, obs_fn(s, ci, k, observed_action(meta["action"], a)), noise, rng, stack)
            servos.command(a)
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
            rec = Recording(np.asarray(qs), None)
    metrics = {"episodes": episodes, "survival": 1.0 - fails / episodes,
               "joint_pos_err": float(np.mean(errs)) if errs else 0.0, "episode_length_s": float(np.mean(lengths)),
               "dt": dt, "delay_steps": delay, "delay_s": delay * dt}
    return metrics, rec


def run_kick_episodes(meta: dict, session, episodes: int = 1, seconds=None, dt: Optional[float] = None, delay: int = 0,
                      start_noise: float = 0.0, obs_noise: float = 0.0, seed: int = 0, record: bool = False,
                      delay_ms: Optional[float] = None):
    """Ball-kick episodes in the env's ball scene -> (metrics, :class:`Recording` of episode 0 or None).

    Each starts with the robot at rest in policy.json's ``init_qpos`` (``start_noise``: uniform
    joint noise) and the ball and target placed as the env's reset places them
    (:func:`mjxmimic.envs.kick.place_ball_and_target` with draws from the run's layout, a numpy
    RNG seeded by ``seed``). It ends as the env's episode does: a fall
    (:func:`mjxmimic.envs.char.fallen`), the ball in the target area (a success when the robot has
    not fallen: :func:`mjxmimic.envs.kick.kick_success`) or the episode length. Metrics, as
    :func:`mjxmimic.envs.kick.kick_episode_stats` gives them for the env: ``success_rate``,
    ``fall_rate``, ``timeout_rate``, ``time_to_success`` (s, mean over successes),
    ``final_ball_target_dist`` (m, mean over episodes), and ``episode_length_s``."""
    import jax
    import jax.numpy as jnp
    import mujoco

    from mjxmimic import math as rmath
    from mjxmimic.envs.char import fallen
    from mjxmimic.envs.kick import kick_episode_stats, kick_success, place_ball_and_target
    from mjxmimic.robots import load_robot
    from mjxmimic.robots.geometry import geom_min_z
    robot = load_robot(meta["robot"])
    _check(meta, robot)
    base, scene = sim_model(meta, robot)
    dt, delay = _step_and_delay(robot, meta, dt, delay, delay_ms, base)
    model = torque_model(robot, meta, dt, base)
    data = mujoco.MjData(model)
    servos = _Servos(robot, model, data, meta, dt, delay)
    control_dt = 1.0 / meta["control_freq"]
    task, fall = meta["task"], meta["fall"]
    ids = np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in fall["geoms"]], np.int32)
    gtype, gsize = model.geom_type[ids].copy(), model.geom_size[ids].astype(np.float32)
    check_fall = bool(fall["enabled"]) and ids.size > 0
    radius, ball_r = float(task["target_radius"]), float(scene.config.radius)

    @jax.jit
    def outcome(xpos, xmat, ball_pos, tar_pos, step):
        fell = (fallen(geom_min_z(gtype, gsize, xpos, xmat), fall["ground_contact_height"], step) if check_fall
                else jnp.zeros((), bool))
        return (fell, *kick_success(ball_pos, tar_pos, radius, fell))
    place = jax.jit(place_ball_and_target)
    obs_fn = make_observation_fn(meta)
    noise = _obs_noise(meta, obs_noise)
    stack = ObsStack(history(meta))
    max_steps = int(meta["max_episode_steps"]) if seconds is None else int(round(seconds / control_dt))
    rng = np.random.default_rng(seed)
    J, nq = len(robot.joint_names), robot.model.nq
    ba, bv = scene.ball_qpos_adr, scene.ball_qvel_adr
    ends = {"term_success": 0.0, "term_fail": 0.0, "term_timeout": 0.0, "time_to_success": 0.0,
            "final_ball_target_dist": 0.0}
    lengths, rec = [], None
    for ep in range(episodes):
        mujoco.mj_resetData(model, data)
        data.qpos[:nq] = meta["init_qpos"]
        data.qpos[robot.qpos_idx] += rng.uniform(-start_noise, start_noise, J)
        draws = [np.float32(rng.uniform(lo, hi)) for lo, hi in task["layout"].values()]
        root_rot = rmath.normalize(jnp.asarray(data.qpos[3:7], jnp.float32))
        ball, tar = (np.asarray(x, np.float64) for x in place(jnp.asarray(data.qpos[0:3], jnp.float32), root_rot,
                                                               *draws))
        data.qpos[ba:ba + 7] = [ball[0], ball[1], ball_r, 1.0, 0.0, 0.0, 0.0]
        data.qvel[bv:bv + 6] = 0.0
        tar_pos = np.array([tar[0], tar[1], 0.0])
        mujoco.mj_forward(model, data)
        a = np.zeros(J, np.float32)
        servos.reset()
        stack.reset()
        qs = [data.qpos.copy()] if record and ep == 0 else None
        k, how, d_bt = 0, "term_timeout", float("nan")
        while k < max_steps:
            s = {**read_sensors(robot, data), **read_kick_inputs(scene, data, tar_pos)}
            a = policy_action(session, meta, obs_fn(s, None, k, observed_action(meta["action"], a)), noise, rng, stack)
            servos.command(a)
            k += 1
            if qs is not None:
                qs.append(data.qpos.copy())
            xmat = np.asarray(data.geom_xmat[ids], np.float32).reshape(-1, 3, 3)
            fell, d, inside, success = (np.asarray(x) for x in outcome(
                np.asarray(data.geom_xpos[ids], np.float32), xmat, np.asarray(data.qpos[ba:ba + 3], np.float32),
                np.asarray(tar_pos, np.float32), np.int32(k)))
            d_bt = float(d)
            if fell or inside:
                how = "term_success" if success else "term_fail"
                break
        ends[how] += 1
        ends["final_ball_target_dist"] += d_bt
        if how == "term_success":
            ends["time_to_success"] += k * control_dt
        lengths.append(k * control_dt)
        if qs is not None:
            rec = Recording(np.asarray(qs), np.tile(tar_pos, (len(qs), 1)))
    # kick_episode_stats takes per-step means; the totals over episodes have the same ratios
    metrics = {"episodes": episodes, **kick_episode_stats(ends), "episode_length_s": float(np.mean(lengths)),
               "dt": dt, "delay_steps": delay, "delay_s": delay * dt}
    return metrics, rec


def default_delay_ms(meta: dict) -> float:
    """The middle of the actuator delay range the policy was trained with (policy.json
    ``randomize.delay_s``), in ms; 0 for a policy trained without one. A policy trained on
    10-40 ms has never acted with none, so 0 is not its nominal condition."""
    lo, hi = meta.get("randomize", {}).get("delay_s", (0.0, 0.0))
    return 1000.0 * 0.5 * (lo + hi)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mjxmimic.sim2sim", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy_dir", help="a folder with policy.onnx and policy.json (python -m mjxmimic.export)")
    ap.add_argument("--episodes", type=int, default=10, help="episodes (tracking: clip i %% number of clips)")
    ap.add_argument("--seconds", type=float, default=None, help="episode length (default: policy.json's)")
    ap.add_argument("--dt", type=float, default=None,
                    help="physics timestep (s); default: the largest at which the explicit PD is stable, <= 2 ms")
    delay = ap.add_mutually_exclusive_group()
    delay.add_argument("--delay", type=int, default=None, help="actuator delay in physics steps")
    delay.add_argument("--delay-ms", type=float, default=None,
                       help="actuator delay in milliseconds (rounded to steps); default: the middle of the delay "
                            "range the policy was trained with (policy.json randomize.delay_s), else 0")
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
    if args.episodes < 1 or (args.delay or 0) < 0 or (args.delay_ms or 0) < 0 or (args.dt is not None and args.dt <= 0):
        print("error: --episodes must be >= 1, --delay and --delay-ms >= 0, --dt > 0", file=sys.stderr)
        return 2
    try:
        meta, sess = load_policy(args.policy_dir)
        if args.delay is None and args.delay_ms is None:
            args.delay_ms = default_delay_ms(meta)
            why = "the middle of the trained range" if "delay_s" in meta.get("randomize", {}) else "none trained"
            print(f"actuator delay: {args.delay_ms:g} ms ({why}; --delay-ms sets it)")
        m, rec = run_episodes(meta, sess, args.episodes, args.seconds, args.dt, args.delay or 0, args.start_noise,
                              args.obs_noise, args.seed, record=bool(args.video), delay_ms=args.delay_ms)
    except (FileNotFoundError, ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("| metric | value |\n|---|---|")
    for k in sorted(m):
        print(f"| {k} | {m[k]:.4g} |")
    if args.json:
        import json
        import math
        # a rate of no episodes (e.g. time to success without a success) is NaN: null in the JSON
        clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()}
        from mjxmimic.io_util import atomic_write
        atomic_write(args.json, json.dumps(clean, indent=1))
    if args.video:
        from mjxmimic.robots import load_robot
        from mjxmimic.view import render_rollout
        robot = load_robot(meta["robot"])
        model, _ = sim_model(meta, robot)
        radius = meta.get("task", {}).get("target_radius", 0.2)
        out = render_rollout(model, robot, rec.qpos, Path(args.video), meta["control_freq"], stills=0,
                             target=rec.target, target_radius=radius)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Domain randomisation: per-env physical parameters sampled at reset, applied in step.

    cfg = RandomizeConfig(friction=(0.3, 0.6), delay=(2, 8))     # config: env.randomize: {...}
    lay = make_layout(cfg, robot, model, num_substeps, control_dt)   # static indices (numpy)
    dr = sample(cfg, lay, key, init_target)                      # state.info["dr"] of one env
    m = env_model(params.model, lay, dr)                         # that env's mjx.Model (under vmap)
    qvel, dr = push(cfg, lay, key, qvel, dr)                      # velocity pushes at random intervals
    o = dr_obs(cfg, lay, dr)                                     # [dr_obs_size(cfg, lay)]: privileged critic input

Everything is off by default; an env with nothing on has no ``info["dr"]`` and draws no
extra random keys, so it is today's env bit for bit. Ranges (``[lo, hi]``, uniform) after
Booster's K1 and BeyondMimic's G1 training (shared/docs/deployment_notes.md):

* ``friction``: the sliding friction of the floor and the feet (one value per env, set on
  both: MuJoCo combines a pair by the max). The ball's contacts are explicit pairs, untouched.
* ``restitution``: e of the floor–foot contacts, through the contact's damping ratio
  ζ = −ln e / √(π² + ln² e) (solref's second number; e = 0 → ζ = 1), set on the floor and
  feet geoms (MuJoCo averages the two solrefs). Soft contacts bounce only approximately.
* ``joint_offset``: rad per joint added to the PD target: a calibration error of the joint
  encoders, which the observation does not see.
* ``com_offset``: ± half widths (x, y, z) in metres of a shift of ``com_body``'s centre of
  mass (body_ipos); default body: the robot's root. (MJX always places the inertial frame at
  body_ipos; MuJoCo C skips it for bodies compiled with ipos = 0 unless body_sameframe is 0.)
* ``mass_scale``: per robot link, a factor on its mass and inertia (constants MuJoCo derives
  from masses at compile time, e.g. body_invweight0, keep their nominal values).
* ``kp_scale``/``kd_scale``: per joint, factors on the actuators' PD gains.
* ``delay``: actuator delay in physics steps [lo, hi] (integers, inclusive); it may exceed a
  control step: the previous targets it needs are kept in ``info["dr"]["prev_targets"]``.
* ``push_interval``: seconds between velocity pushes [lo, hi]; each push adds U(±push_vel)
  to the root's (world linear x y z, body-frame angular roll pitch yaw) velocity.
* ``ramp``: training iterations [start, end] over which the randomisation's strength s rises
  linearly from 0 to 1 (a curriculum: a policy first learns the task on the nominal robot).
  Every sampled value v becomes nominal + s·(v − nominal) (nominal: no offset, scale 1, no
  delay, the model's floor–foot friction, restitution 0), pushes are s·U(±push_vel). The
  trainer sets s from its iteration (:meth:`CharEnv.schedule_apply`); evaluation (``play``,
  export, sim2sim) always uses the full ranges. None: full strength from the start.
* ``ramp_adaptive``: [threshold, step] instead of ``ramp``: s starts at 0 and rises by ``step``
  after each training iteration whose ended episodes reached the threshold rate of
  ``ramp_signal`` (``success``, or ``survival``: not failed), and holds otherwise
  (:func:`adaptive_strength`; the trainer keeps s through the env's curriculum hooks). A
  task learned at low strength is then not lost to a ramp that outruns it.

``dr_obs`` flattens one env's sampled values (not the delay line or the push countdown) into
numbers of about [-1, 1], each over its configured full range, for an asymmetric critic
(``env.critic_dr_obs``): the actor never sees them.

Not done: rough floors (MJX collides height fields only with convex geoms and would
replace the plane the robots' contacts are tuned on).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["RandomizeConfig", "Layout", "make_layout", "sample", "env_model", "pd_target", "push",
           "shift_targets", "restitution_dampratio", "ramp_strength", "adaptive_strength", "dr_obs_size", "dr_obs",
           "RAMP_SIGNALS", "TERMS"]

RAMP_SIGNALS = ("success", "survival")
_RANGES = ("friction", "restitution", "joint_offset", "mass_scale", "kp_scale", "kd_scale", "push_interval")
TERMS = _RANGES + ("com_offset", "delay")   # every randomised term of RandomizeConfig (None: off)


@dataclasses.dataclass(frozen=True)
class RandomizeConfig:
    """Per-env randomisation ranges; None = off (see the module docstring for each)."""

    friction: Optional[tuple[float, float]] = None
    restitution: Optional[tuple[float, float]] = None
    joint_offset: Optional[tuple[float, float]] = None          # rad
    com_offset: Optional[tuple[float, float, float]] = None      # ± m (x, y, z)
    com_body: Optional[str] = None                               # None: the robot's root body
    mass_scale: Optional[tuple[float, float]] = None
    kp_scale: Optional[tuple[float, float]] = None
    kd_scale: Optional[tuple[float, float]] = None
    delay: Optional[tuple[int, int]] = None                      # physics steps
    push_interval: Optional[tuple[float, float]] = None          # s
    push_vel: tuple[float, float, float, float, float, float] = (0.5, 0.5, 0.2, 0.5, 0.5, 0.8)  # ± m/s, rad/s
    ramp: Optional[tuple[int, int]] = None                       # training iterations [start, end]
    ramp_adaptive: Optional[tuple[float, float]] = None          # [rate threshold, strength step per iteration]
    ramp_signal: str = "success"                                 # success | survival: the rate ramp_adaptive reads

    def __post_init__(self):
        for k in _RANGES + ("delay",):
            v = getattr(self, k)
            if v is not None and (len(v) != 2 or not v[0] <= v[1]):
                raise ValueError(f"randomize.{k} must be [lo, hi] with lo <= hi, got {list(v)}")
        for k in ("friction", "mass_scale", "kp_scale", "kd_scale"):
            v = getattr(self, k)
            if v is not None and v[0] <= 0:
                raise ValueError(f"randomize.{k} must be positive, got {list(v)}")
        if self.restitution is not None and not (0 <= self.restitution[0] and self.restitution[1] < 1):
            raise ValueError(f"randomize.restitution must lie in [0, 1), got {list(self.restitution)}")
        if self.delay is not None and self.delay[0] < 0:
            raise ValueError(f"randomize.delay must be >= 0 physics steps, got {list(self.delay)}")
        if self.push_interval is not None and self.push_interval[0] <= 0:
            raise ValueError(f"randomize.push_interval must be positive seconds, got {list(self.push_interval)}")
        if self.com_offset is not None and (len(self.com_offset) != 3 or min(self.com_offset) < 0):
            raise ValueError(f"randomize.com_offset must be 3 half widths >= 0 (m), got {list(self.com_offset)}")
        if self.ramp is not None and (len(self.ramp) != 2 or not 0 <= self.ramp[0] <= self.ramp[1]):
            raise ValueError(f"randomize.ramp must be training iterations [start, end] with 0 <= start <= end, "
                             f"got {list(self.ramp)}")
        if self.ramp_adaptive is not None:
            if self.ramp is not None:
                raise ValueError("randomize.ramp and randomize.ramp_adaptive exclude each other: set one")
            if len(self.ramp_adaptive) != 2 or not (0 <= self.ramp_adaptive[0] <= 1 and 0 < self.ramp_adaptive[1] <= 1):
                raise ValueError(f"randomize.ramp_adaptive must be [rate threshold in [0, 1], strength step in (0, 1]], "
                                 f"got {list(self.ramp_adaptive)}")
        if self.ramp_signal not in RAMP_SIGNALS:
            raise ValueError(f"randomize.ramp_signal must be one of {list(RAMP_SIGNALS)}, got {self.ramp_signal!r}")
        if len(self.push_vel) != 6 or min(self.push_vel) < 0:
            raise ValueError(f"randomize.push_vel must be 6 half widths >= 0, got {list(self.push_vel)}")

    @property
    def active(self) -> bool:
        return any(getattr(self, k) is not None for k in TERMS)


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """Static (numpy) facts randomisation needs about an env's model."""

    contact_geom_ids: np.ndarray   # floor plane + the robot's foot geoms
    link_body_ids: np.ndarray      # the robot's bodies (world excluded)
    com_body_id: int
    num_joints: int
    num_substeps: int
    history: int                   # previous control-step targets kept for the delay
    push_steps: tuple[float, float]  # push interval in control steps
    friction0: float               # the nominal floor-foot pair friction (MuJoCo takes the max)


def make_layout(cfg: RandomizeConfig, robot, model, num_substeps: int, control_dt: float) -> Layout:
    """``model``: the env's MjModel (the robot first, maybe a scene)."""
    floor = [g for g in range(model.ngeom) if model.geom_bodyid[g] == 0 and model.geom_type[g] == 0]
    if cfg.friction is not None or cfg.restitution is not None:
        if len(floor) != 1:
            raise ValueError(f"randomize: expected one floor plane in the world body, found {len(floor)}")
    com = robot.spec.root_body if cfg.com_body is None else cfg.com_body
    hist = 0 if cfg.delay is None else max(1, math.ceil(cfg.delay[1] / num_substeps))
    push = (0.0, 0.0) if cfg.push_interval is None else tuple(t / control_dt for t in cfg.push_interval)
    contact = np.asarray(floor + [int(g) for g in robot.foot_geom_ids], np.int32)
    return Layout(contact_geom_ids=contact,
                  link_body_ids=np.arange(1, robot.model.nbody, dtype=np.int32), com_body_id=robot.body_id(com),
                  num_joints=robot.num_joints, num_substeps=int(num_substeps), history=hist, push_steps=push,
                  friction0=float(np.max(model.geom_friction[contact, 0])))


def restitution_dampratio(e):
    """Damping ratio of a mass-spring-damper whose bounce keeps the fraction e of the speed."""
    le = jnp.log(jnp.maximum(e, 1e-6))
    return jnp.where(e > 0, -le / jnp.sqrt(jnp.pi ** 2 + le * le), 1.0)


def _uniform(key, rng, shape=()):
    return jax.random.uniform(key, shape, jnp.float32, rng[0], rng[1])


def _push_countdown(lay: Layout, key):
    lo, hi = lay.push_steps
    return jnp.maximum(jnp.round(jax.random.uniform(key, (), jnp.float32, lo, hi)), 1.0).astype(jnp.int32)


def ramp_strength(ramp, iteration):
    """The randomisation strength at a training iteration: 0 before ``ramp[0]``, 1 from
    ``ramp[1]`` on, linear between (a step at ``ramp[0]`` when the two are equal)."""
    a, b = ramp
    it = jnp.asarray(iteration, jnp.float32)
    if b == a:
        return (it >= a).astype(jnp.float32)
    return jnp.clip((it - a) / (b - a), 0.0, 1.0)


def adaptive_strength(strength, success, fail, timeout, cfg: RandomizeConfig):
    """One training iteration of ``ramp_adaptive``: the strength rises by its step when the
    iteration's episodes reached the threshold rate, and holds otherwise (never falls), so the
    randomisation grows only as fast as the policy keeps its task. ``success``/``fail``/
    ``timeout``: the iteration's per-step ending indicators (any shape). The rate is the share of
    ended episodes that succeeded (``ramp_signal: success``) or did not fail (``survival``), 0
    when none ended (no evidence: it holds unless the threshold is 0). -> (strength, rate)"""
    thr, step = cfg.ramp_adaptive
    s, f, t = (jnp.sum(x.astype(jnp.float32)) for x in (success, fail, timeout))
    ended = s + f + t
    good = s if cfg.ramp_signal == "success" else s + t
    rate = good / jnp.maximum(ended, 1.0)
    return jnp.minimum(strength + jnp.where(rate >= thr, step, 0.0), 1.0), rate


def sample(cfg: RandomizeConfig, lay: Layout, key, init_target, strength=None) -> dict:
    """One env's randomisation values (``info["dr"]``); ``init_target``: the PD target held
    before the first step (the reset pose), which the delay line starts from. ``strength``
    (the ramp's s, traced; None = 1 exactly) pulls every value toward its nominal one."""
    lerp = (lambda v, v0: v) if strength is None else (lambda v, v0: v0 + strength * (v - v0))  # noqa: E731
    k = dict(zip(("friction", "restitution", "joint_offset", "com", "mass", "kp", "kd", "delay", "push"),
                 jax.random.split(key, 9)))
    J, L = lay.num_joints, len(lay.link_body_ids)
    dr = {}
    if cfg.friction is not None:
        dr["friction"] = lerp(_uniform(k["friction"], cfg.friction), lay.friction0)
    if cfg.restitution is not None:
        dr["restitution"] = lerp(_uniform(k["restitution"], cfg.restitution), 0.0)
    if cfg.joint_offset is not None:
        dr["joint_offset"] = lerp(_uniform(k["joint_offset"], cfg.joint_offset, (J,)), 0.0)
    if cfg.com_offset is not None:
        h = jnp.asarray(cfg.com_offset, jnp.float32)
        dr["com_offset"] = lerp(h * jax.random.uniform(k["com"], (3,), jnp.float32, -1.0, 1.0), 0.0)
    if cfg.mass_scale is not None:
        dr["mass_scale"] = lerp(_uniform(k["mass"], cfg.mass_scale, (L,)), 1.0)
    if cfg.kp_scale is not None:
        dr["kp_scale"] = lerp(_uniform(k["kp"], cfg.kp_scale, (J,)), 1.0)
    if cfg.kd_scale is not None:
        dr["kd_scale"] = lerp(_uniform(k["kd"], cfg.kd_scale, (J,)), 1.0)
    if cfg.delay is not None:
        d = jax.random.randint(k["delay"], (), cfg.delay[0], cfg.delay[1] + 1, jnp.int32)
        dr["delay"] = d if strength is None else jnp.round(strength * d).astype(jnp.int32)
        t0 = pd_target(jnp.asarray(init_target, jnp.float32), dr)
        dr["prev_targets"] = jnp.broadcast_to(t0, (lay.history, J))
    if cfg.push_interval is not None:
        dr["push_countdown"] = _push_countdown(lay, k["push"])
    return dr


# The dr_obs terms in their fixed order: (dr key, number of values).
def _dr_obs_terms(cfg: RandomizeConfig, lay: Layout):
    J, L = lay.num_joints, len(lay.link_body_ids)
    terms = (("friction", 1), ("restitution", 1), ("joint_offset", J), ("com_offset", 3), ("mass_scale", L),
             ("kp_scale", J), ("kd_scale", J), ("delay", 1))
    return [(k, n) for k, n in terms if getattr(cfg, k) is not None]


def dr_obs_size(cfg: RandomizeConfig, lay: Layout) -> int:
    """How many numbers :func:`dr_obs` gives for this config (0 when it samples none)."""
    return sum(n for _, n in _dr_obs_terms(cfg, lay))


def dr_obs(cfg: RandomizeConfig, lay: Layout, dr: dict) -> jax.Array:
    """One env's sampled values as [dr_obs_size] numbers in about [-1, 1]: each (v - mid) / half
    over its configured full range (a ramped value nearer nominal may fall outside it), 0 for a
    range of zero width; com_offset over its ± half widths. Order: friction, restitution,
    joint_offset, com_offset, mass_scale, kp_scale, kd_scale, delay (physics steps)."""
    out = []
    for k, n in _dr_obs_terms(cfg, lay):
        v = jnp.reshape(jnp.asarray(dr[k], jnp.float32), (n,))
        if k == "com_offset":
            mid, half = np.zeros(3), np.asarray(cfg.com_offset, np.float64)
        else:
            lo, hi = getattr(cfg, k)
            mid, half = np.full(n, 0.5 * (lo + hi)), np.full(n, 0.5 * (hi - lo))
        # Static per config: a zero width multiplies by 0 (no division by zero, no NaN).
        inv = np.where(half > 0, 1.0 / np.where(half > 0, half, 1.0), 0.0)
        out.append((v - mid.astype(np.float32)) * inv.astype(np.float32))
    return jnp.concatenate(out) if out else jnp.zeros((0,), jnp.float32)


def env_model(model, lay: Layout, dr: dict):
    """The env's mjx.Model with its randomised fields (inside vmap: batched fields)."""
    rep = {}
    g = lay.contact_geom_ids
    if "friction" in dr:
        rep["geom_friction"] = jnp.asarray(model.geom_friction).at[g, 0].set(dr["friction"])
    if "restitution" in dr:
        rep["geom_solref"] = jnp.asarray(model.geom_solref).at[g, 1].set(restitution_dampratio(dr["restitution"]))
    if "com_offset" in dr:
        rep["body_ipos"] = jnp.asarray(model.body_ipos).at[lay.com_body_id].add(dr["com_offset"])
    if "mass_scale" in dr:
        b, s = lay.link_body_ids, dr["mass_scale"]
        rep["body_mass"] = jnp.asarray(model.body_mass).at[b].multiply(s)
        rep["body_inertia"] = jnp.asarray(model.body_inertia).at[b].multiply(s[:, None])
    if "kp_scale" in dr or "kd_scale" in dr:
        J = lay.num_joints
        gain, bias = jnp.asarray(model.actuator_gainprm), jnp.asarray(model.actuator_biasprm)
        if "kp_scale" in dr:
            gain = gain.at[:J, 0].multiply(dr["kp_scale"])
            bias = bias.at[:J, 1].multiply(dr["kp_scale"])
        if "kd_scale" in dr:
            bias = bias.at[:J, 2].multiply(dr["kd_scale"])
        rep.update(actuator_gainprm=gain, actuator_biasprm=bias)
    return model.replace(**rep) if rep else model


def pd_target(target, dr: dict):
    """The PD target the actuators get: plus the joint calibration offset, if any."""
    return target + dr["joint_offset"] if "joint_offset" in dr else target


def shift_targets(dr: dict, target) -> dict:
    """After a control step: ``target`` becomes the latest of the delay line's previous targets."""
    if "prev_targets" not in dr:
        return dr
    prev = dr["prev_targets"]
    return {**dr, "prev_targets": jnp.concatenate([target[None].astype(prev.dtype), prev[:-1]], axis=0)}


def push(cfg: RandomizeConfig, lay: Layout, key, qvel, dr: dict, strength=None):
    """Count a control step down; at zero add a random velocity to the root (qvel[0:6]) and draw
    the next interval; ``strength`` (the ramp's s; None = 1) scales the push. -> (qvel, dr)"""
    if "push_countdown" not in dr:
        return qvel, dr
    k_v, k_t = jax.random.split(key)
    c = dr["push_countdown"] - 1
    now = c <= 0
    h = jnp.asarray(cfg.push_vel, qvel.dtype)
    dv = h * jax.random.uniform(k_v, (6,), qvel.dtype, -1.0, 1.0)
    if strength is not None:
        dv = strength * dv
    qvel = qvel.at[0:6].add(jnp.where(now, dv, 0.0))
    return qvel, {**dr, "push_countdown": jnp.where(now, _push_countdown(lay, k_t), c)}

"""Per-robot YAML spec (robots/<name>/robot.yaml), loaded and validated once."""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import yaml

from mjxmimic.paths import REPO_ROOT, ROBOTS_DIR

__all__ = ["RobotSpecError", "JointSpec", "GeomSpec", "SiteSpec", "ProfileSpec", "RobotSpec", "load_spec", "spec_path",
           "ACTION_SCALE_RULES", "PROFILE_SIM"]


class RobotSpecError(ValueError):
    """A robot spec or its source files are malformed or inconsistent."""


@dataclasses.dataclass(frozen=True)
class JointSpec:
    name: str
    armature: float
    kp: float
    kd: float


@dataclasses.dataclass(frozen=True)
class GeomSpec:
    body: str
    type: str
    size: tuple[float, ...]
    pos: tuple[float, ...] | None = None
    fromto: tuple[float, ...] | None = None
    floor: bool = False


@dataclasses.dataclass(frozen=True)
class SiteSpec:
    name: str
    body: str
    pos: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class ProfileSpec:
    """A named actuation profile (``profiles: {deploy: ...}``): per-joint tuples in the spec's joint order."""
    name: str
    source: str
    kp: tuple[float, ...]
    kd: tuple[float, ...]
    effort: tuple[float, ...]
    armature: tuple[float, ...]
    default_pos: tuple[float, ...]
    control_freq: float
    sim_timestep: float
    action_scale_rule: str
    action_scale_factor: float


PROFILE_SIM = "sim"   # reserved: the simulation model itself (robot.yaml's joints/gain_rule)
# target = default + s·a; effort_over_kp: s_j = factor·effort_j/kp_j (Booster, BeyondMimic).
ACTION_SCALE_RULES = ("effort_over_kp",)
_PROFILE_KEYS = ("source", "joints", "default_pos", "control_freq", "sim_timestep", "action_scale")
_PROFILE_JOINT_KEYS = ("kp", "kd", "effort", "armature")


@dataclasses.dataclass(frozen=True)
class RobotSpec:
    name: str
    path: Path
    urdf: Path
    license: Path | None
    vendor: str
    root_body: str
    fuse_static: bool
    timestep: float
    iterations: int
    ls_iterations: int
    integrator: str
    floor_friction: float
    joints: tuple[JointSpec, ...]
    collision: tuple[GeomSpec, ...]
    sites: tuple[SiteSpec, ...]
    key_bodies: tuple[str, ...]
    contact_bodies: tuple[str, ...]
    feet: tuple[str, ...]
    default_pose: dict
    inertial_overrides: dict
    profiles: dict = dataclasses.field(default_factory=dict)   # name -> ProfileSpec

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def xml_path(self) -> Path:
        return self.path.parent / f"{self.name}.xml"


_GEOM_SIZES = {"sphere": 1, "capsule": 1, "box": 3}
_INTEGRATORS = ("euler", "implicitfast", "implicit", "rk4")


def _req(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise RobotSpecError(f"{where}: missing required key '{key}'")
    return d[key]


def _floats(v, n, where) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise RobotSpecError(f"{where}: expected a list of {n} numbers, got {v!r}")
    try:
        return tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise RobotSpecError(f"{where}: expected numbers, got {v!r}") from None


def _gain(v, which: str, arm: float, rule: dict, w: str, jw: str) -> float:
    """A kp/kd entry: a number, or 'rule': kp = I·ω², kd = 2ζ·I·ω (ω = 2π·natural_freq_hz, I the armature)."""
    if v == "rule":
        wn = 2.0 * math.pi * float(_req(rule, "natural_freq_hz", f"{w}: gain_rule"))
        zeta = float(_req(rule, "damping_ratio", f"{w}: gain_rule"))
        return arm * wn * wn if which == "kp" else 2.0 * zeta * arm * wn
    return _num(v, f"{jw}: {which}", "a number or 'rule'")


def _num(v, where: str, what: str = "a number") -> float:
    if isinstance(v, bool):
        raise RobotSpecError(f"{where} must be {what}, got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise RobotSpecError(f"{where} must be {what}, got {v!r}") from None


def _profile(name, raw, joint_names: list[str], rule: dict, w: str) -> ProfileSpec:
    """Validate one profile. ``joints`` maps regular expressions (matched against whole joint
    names) to {kp, kd, effort, armature}; every joint must match exactly one of them."""
    pw = f"{w}: profiles.{name}"
    if name == PROFILE_SIM:
        raise RobotSpecError(f"{pw}: '{PROFILE_SIM}' is reserved for the simulation model itself; "
                             "name the profile otherwise")
    if not isinstance(raw, dict):
        raise RobotSpecError(f"{pw}: expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - set(_PROFILE_KEYS))
    if unknown:
        raise RobotSpecError(f"{pw}: unknown key(s) {unknown}; valid keys: {list(_PROFILE_KEYS)}")
    source = _req(raw, "source", pw)
    if not isinstance(source, str) or not source.strip():
        raise RobotSpecError(f"{pw}.source must say where the numbers come from, got {source!r}")
    groups = _req(raw, "joints", pw)
    if not isinstance(groups, dict) or not groups:
        raise RobotSpecError(f"{pw}.joints must map joint-name patterns to {{kp, kd, effort, armature}}")
    vals: dict[str, dict] = {}
    for pat, g in groups.items():
        gw = f"{pw}.joints['{pat}']"
        try:
            rx = re.compile(str(pat))
        except re.error as e:
            raise RobotSpecError(f"{gw}: bad regular expression: {e}") from None
        if not isinstance(g, dict):
            raise RobotSpecError(f"{gw}: expected a mapping of {list(_PROFILE_JOINT_KEYS)}, got {g!r}")
        bad = sorted(set(g) - set(_PROFILE_JOINT_KEYS))
        missing = [k for k in _PROFILE_JOINT_KEYS if k not in g]
        if bad or missing:
            raise RobotSpecError(f"{gw}: unknown key(s) {bad}, missing {missing}; needs {list(_PROFILE_JOINT_KEYS)}")
        hits = [j for j in joint_names if rx.fullmatch(j)]
        if not hits:
            raise RobotSpecError(f"{gw}: matches no joint; joints: {joint_names}")
        arm = _num(g["armature"], f"{gw}.armature")
        v = {"armature": arm, "effort": _num(g["effort"], f"{gw}.effort"),
             "kp": _gain(g["kp"], "kp", arm, rule, w, gw), "kd": _gain(g["kd"], "kd", arm, rule, w, gw)}
        if v["kp"] <= 0 or v["kd"] < 0 or v["effort"] <= 0 or arm < 0:
            raise RobotSpecError(f"{gw}: needs kp > 0, kd >= 0, effort > 0, armature >= 0, got {v}")
        for j in hits:
            if j in vals:
                raise RobotSpecError(f"{gw}: joint '{j}' is matched by two patterns")
            vals[j] = v
    missing = [j for j in joint_names if j not in vals]
    if missing:
        raise RobotSpecError(f"{pw}.joints: no pattern matches joint(s) {missing}")
    pose = raw.get("default_pos") or {}
    if not isinstance(pose, dict):
        raise RobotSpecError(f"{pw}.default_pos must map joint names to angles (unlisted joints: 0)")
    unknown = [j for j in pose if j not in joint_names]
    if unknown:
        raise RobotSpecError(f"{pw}.default_pos: unknown joint(s) {unknown}; joints: {joint_names}")
    act = _req(raw, "action_scale", pw)
    if not isinstance(act, dict) or act.get("rule") not in ACTION_SCALE_RULES or set(act) != {"rule", "factor"}:
        raise RobotSpecError(f"{pw}.action_scale must be {{rule: one of {list(ACTION_SCALE_RULES)}, factor: number}}, "
                             f"got {act!r}")
    freq, dt = _num(_req(raw, "control_freq", pw), f"{pw}.control_freq"), _num(_req(raw, "sim_timestep", pw),
                                                                                 f"{pw}.sim_timestep")
    factor = _num(act["factor"], f"{pw}.action_scale.factor")
    if freq <= 0 or dt <= 0 or factor <= 0:
        raise RobotSpecError(f"{pw}: control_freq, sim_timestep and action_scale.factor must be positive")
    col = lambda k: tuple(vals[j][k] for j in joint_names)  # noqa: E731
    return ProfileSpec(name=str(name), source=source.strip(), kp=col("kp"), kd=col("kd"), effort=col("effort"),
                       armature=col("armature"),
                       default_pos=tuple(_num(pose.get(j, 0.0), f"{pw}.default_pos.{j}") for j in joint_names),
                       control_freq=freq, sim_timestep=dt, action_scale_rule=act["rule"], action_scale_factor=factor)


def load_spec(path: str | Path) -> RobotSpec:
    """Load and validate a robot spec; paths in it are relative to the repo root."""
    path = Path(path)
    if path.is_dir():
        path = path / "robot.yaml"
    if not path.exists():
        raise RobotSpecError(f"robot spec not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RobotSpecError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(raw, dict):
        raise RobotSpecError(f"{path}: expected a mapping at top level, got {type(raw).__name__}")
    w = str(path)
    src = _req(raw, "source", w)
    sim = _req(raw, "sim", w)
    rule = raw.get("gain_rule", {})

    joints_raw = _req(raw, "joints", w)
    if not isinstance(joints_raw, dict) or not joints_raw:
        raise RobotSpecError(f"{w}: 'joints' must be a non-empty mapping name -> {{armature, kp, kd}}")
    joints = []
    for name, j in joints_raw.items():
        jw = f"{w}: joints.{name}"
        arm = float(_req(j, "armature", jw))
        joints.append(JointSpec(name, arm, _gain(_req(j, "kp", jw), "kp", arm, rule, w, jw),
                                _gain(_req(j, "kd", jw), "kd", arm, rule, w, jw)))

    geoms = []
    for i, g in enumerate(_req(raw, "collision", w)):
        gw = f"{w}: collision[{i}]"
        t = _req(g, "type", gw)
        if t not in _GEOM_SIZES:
            raise RobotSpecError(f"{gw}: type must be one of {sorted(_GEOM_SIZES)}, got {t!r}")
        size = _floats(_req(g, "size", gw), _GEOM_SIZES[t], gw + ".size")
        pos = _floats(g["pos"], 3, gw + ".pos") if "pos" in g else None
        fromto = _floats(g["fromto"], 6, gw + ".fromto") if "fromto" in g else None
        if t == "capsule" and fromto is None:
            raise RobotSpecError(f"{gw}: a capsule needs 'fromto'")
        geoms.append(GeomSpec(_req(g, "body", gw), t, size, pos, fromto, bool(g.get("floor", False))))

    sites = tuple(SiteSpec(n, _req(s, "body", f"{w}: sites.{n}"), _floats(_req(s, "pos", f"{w}: sites.{n}"), 3, f"{w}: sites.{n}.pos"))
                  for n, s in (raw.get("sites") or {}).items())
    integrator = sim.get("integrator", "implicitfast")
    if integrator not in _INTEGRATORS:
        raise RobotSpecError(f"{w}: sim.integrator must be one of {_INTEGRATORS}, got {integrator!r}")
    pose = raw.get("default_pose") or {}
    names = [j.name for j in joints]
    for n in pose:
        if n not in names:
            raise RobotSpecError(f"{w}: default_pose names joint '{n}', which is not in 'joints'")
    lic = src.get("license")
    return RobotSpec(
        name=str(_req(raw, "name", w)), path=path.resolve(),
        urdf=(REPO_ROOT / _req(src, "urdf", w + ": source")).resolve(),
        license=(REPO_ROOT / lic).resolve() if lic else None,
        vendor=str(src.get("vendor", "")),
        root_body=str(_req(raw, "root_body", w)), fuse_static=bool(raw.get("fuse_static", True)),
        timestep=float(_req(sim, "timestep", w + ": sim")), iterations=int(sim.get("iterations", 4)),
        ls_iterations=int(sim.get("ls_iterations", 8)), integrator=integrator,
        floor_friction=float(sim.get("floor_friction", 1.0)),
        joints=tuple(joints), collision=tuple(geoms), sites=sites,
        key_bodies=tuple(_req(raw, "key_bodies", w)), contact_bodies=tuple(_req(raw, "contact_bodies", w)),
        feet=tuple(_req(raw, "feet", w)), default_pose={k: float(v) for k, v in pose.items()},
        inertial_overrides=_inertials(raw.get("inertial_overrides") or {}, w),
        profiles=_profiles(raw.get("profiles"), names, rule, w),
    )


def _profiles(raw, names: list[str], rule: dict, w: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RobotSpecError(f"{w}: 'profiles' must map profile names to mappings, got {raw!r}")
    return {str(n): _profile(n, p, names, rule, w) for n, p in raw.items()}


def _inertials(raw: dict, w: str) -> dict:
    out = {}
    for body, d in raw.items():
        iw = f"{w}: inertial_overrides.{body}"
        out[body] = dict(mass=float(_req(d, "mass", iw)), pos=_floats(_req(d, "pos", iw), 3, iw + ".pos"),
                         quat=_floats(_req(d, "quat", iw), 4, iw + ".quat"),
                         diaginertia=_floats(_req(d, "diaginertia", iw), 3, iw + ".diaginertia"))
    return out


def spec_path(name: str) -> Path:
    p = ROBOTS_DIR / name / "robot.yaml"
    if not p.exists():
        known = sorted(d.name for d in ROBOTS_DIR.iterdir() if (d / "robot.yaml").exists()) if ROBOTS_DIR.exists() else []
        raise RobotSpecError(f"unknown robot '{name}'; known robots: {known}")
    return p

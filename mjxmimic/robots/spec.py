"""Per-robot YAML spec (robots/<name>/robot.yaml), loaded and validated once."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import yaml

from mjxmimic.paths import REPO_ROOT, ROBOTS_DIR

__all__ = ["RobotSpecError", "JointSpec", "GeomSpec", "SiteSpec", "RobotSpec", "load_spec", "spec_path"]


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

    def gain(v, which, arm, jw):
        if v == "rule":
            wn = 2.0 * math.pi * float(_req(rule, "natural_freq_hz", f"{w}: gain_rule"))
            zeta = float(_req(rule, "damping_ratio", f"{w}: gain_rule"))
            return arm * wn * wn if which == "kp" else 2.0 * zeta * arm * wn
        try:
            return float(v)
        except (TypeError, ValueError):
            raise RobotSpecError(f"{jw}: {which} must be a number or 'rule', got {v!r}") from None

    joints_raw = _req(raw, "joints", w)
    if not isinstance(joints_raw, dict) or not joints_raw:
        raise RobotSpecError(f"{w}: 'joints' must be a non-empty mapping name -> {{armature, kp, kd}}")
    joints = []
    for name, j in joints_raw.items():
        jw = f"{w}: joints.{name}"
        arm = float(_req(j, "armature", jw))
        joints.append(JointSpec(name, arm, gain(_req(j, "kp", jw), "kp", arm, jw),
                                gain(_req(j, "kd", jw), "kd", arm, jw)))

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
    )


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

"""MimicKit's static-objects env (``static_objects_env.py``): DeepMimic tracking in a scene with
fixed rigid props (a vault box, a step, a pillar).

    env, params, _ = make_env("k1_vault")
    env.model                 # the robot's model plus one static body ``props`` holding the props

Props come from the config (``env.objects``, a list of :class:`ObjectConfig`) and are added with
``mujoco.MjSpec`` as geoms of one joint-less body appended after the robot's bodies, so every
robot index (qpos/qvel, body and geom ids) is that of the robot-alone model and a MotionLib
indexes both. The props are welded to the world: they never move and are not tested against
the floor (MuJoCo skips pairs of static bodies); their collision bits make them collide with
every robot collision geom (feet and body, :mod:`mjxmimic.robots.convert`).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import mujoco
import numpy as np

from mjxmimic.envs.deepmimic import DeepMimicConfig, DeepMimicEnv
from mjxmimic.robots.convert import CONTYPE_BODY, CONTYPE_FOOT, CONTYPE_OBJECT

__all__ = ["ObjectConfig", "StaticObjectsConfig", "StaticObjectsEnv", "build_props_model", "PROPS_BODY",
           "OBJECT_SIZES"]

PROPS_BODY = "props"
# Size values per geom type (MuJoCo's meaning): box half-extents; sphere radius; capsule and
# cylinder radius and half-length.
OBJECT_SIZES = {"box": 3, "sphere": 1, "capsule": 2, "cylinder": 2}
_GEOM = {"box": mujoco.mjtGeom.mjGEOM_BOX, "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
         "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER}
# A prop touches the robot's feet and body geoms (not the floor: both are static).
PROP_CONTYPE = CONTYPE_OBJECT
PROP_CONAFFINITY = CONTYPE_FOOT | CONTYPE_BODY


@dataclasses.dataclass(frozen=True)
class ObjectConfig:
    """One static prop. ``pos`` (m, world) is the geom's centre; ``quat`` wxyz; ``friction``: the
    sliding friction (MuJoCo's default 1 when None)."""

    name: str
    type: str
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    friction: Optional[float] = None

    def __post_init__(self):
        if not self.name:
            raise ValueError("an object needs a non-empty name")
        if self.type not in OBJECT_SIZES:
            raise ValueError(f"object '{self.name}': type must be one of {list(OBJECT_SIZES)}, got {self.type!r}")
        n = OBJECT_SIZES[self.type]
        if len(self.size) != n or any(not s > 0 for s in self.size):
            raise ValueError(f"object '{self.name}': a {self.type} needs {n} positive size value(s), got {list(self.size)}")
        if not np.linalg.norm(self.quat) > 0:
            raise ValueError(f"object '{self.name}': quat must be non-zero")
        if self.friction is not None and not self.friction >= 0:
            raise ValueError(f"object '{self.name}': friction must be >= 0, got {self.friction}")


def build_props_model(robot, objects) -> mujoco.MjModel:
    """The robot's MJCF with the props as geoms of one static body appended after the robot."""
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        raise ValueError(f"object names must be unique, got {names}")
    spec = mujoco.MjSpec.from_file(str(robot.spec.xml_path))
    body = spec.worldbody.add_body(name=PROPS_BODY)
    for o in objects:
        g = body.add_geom(name=o.name, type=_GEOM[o.type], size=list(o.size) + [0.0] * (3 - len(o.size)),
                          pos=list(o.pos), quat=list(np.asarray(o.quat) / np.linalg.norm(o.quat)),
                          contype=PROP_CONTYPE, conaffinity=PROP_CONAFFINITY, condim=3,
                          rgba=[0.55, 0.45, 0.35, 1.0])
        if o.friction is not None:
            g.friction = [o.friction, 0.005, 0.0001]
    model = spec.compile()
    rm = robot.model
    if (model.nq, model.nv, model.nu, model.nbody) != (rm.nq, rm.nv, rm.nu, rm.nbody + 1) or \
            model.ngeom != rm.ngeom + len(objects):
        raise AssertionError("static props must be appended after the robot")
    return model


@dataclasses.dataclass(frozen=True)
class StaticObjectsConfig(DeepMimicConfig):
    objects: tuple[ObjectConfig, ...] = ()


class StaticObjectsEnv(DeepMimicEnv):
    """DeepMimic on the robot + static props model (everything else is DeepMimic's)."""

    def __init__(self, cfg: StaticObjectsConfig, robot=None):
        if robot is None:
            from mjxmimic.robots import load_robot
            robot = load_robot(cfg.robot)
        try:
            super().__init__(cfg, robot, model=build_props_model(robot, cfg.objects))
        except NotImplementedError as e:   # MJX lacks some pairs, e.g. cylinder-box (the feet are boxes)
            raise ValueError(f"objects: MJX cannot collide them with {robot.name}'s geoms ({e}); "
                             "use box, sphere or capsule props") from None

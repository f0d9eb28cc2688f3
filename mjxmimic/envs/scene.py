"""Scenes: a robot model plus objects (a soccer ball), built with ``mujoco.MjSpec``.

    scene = build_ball_scene(load_robot("k1"), BallConfig())
    scene.model            # mujoco.MjModel: the robot's MJCF + one free ball body, appended
    scene.mjx_model()      # cached mjx.Model
    scene.ball_qpos_adr    # ball free joint: qpos[adr:adr+3] position, [adr+3:adr+7] quaternion
    scene.ball_qvel_adr    # qvel[adr:adr+3] linear (world), [adr+3:adr+6] angular (body frame)

The ball is appended after every robot element, so all robot indices (qpos/qvel
addresses, body ids, key bodies, actuators) are those of the robot-alone model and the
motion library's arrays index both models alike.

Contacts are explicit ``<pair>``s only (the ball geom's contype/conaffinity are 0), so
MJX tests exactly these extra pairs: ball-floor (condim 6: sliding, torsional and
rolling friction) and ball vs the robot's leg geoms (feet, optionally shins/thighs or
every collision geom). The robot's own floor contacts are left untouched.

Ball defaults (``BallConfig``) -- sources:
  * Size and mass: the RoboCup Humanoid League KidSize ball is a FIFA size-1 ("mini")
    ball: the league's official virtual-competition simulator (RoboCup-Humanoid-TC/
    hlvs_webots, referee.py: ``ball_size = 1 if field_size == 'kid' else 5``) models it
    in RobocupTexturedSoccerBall.proto as radius 0.07 m, mass 0.205 kg; the 2026
    Humanoid Soccer League rules draft (RoboCup-HumanoidSoccerLeague/HSL-Rules,
    competitions_divisions.tex) lists "FIFA mini ball size 1 (14 cm)" for the small
    division (former KidSize). FIFA itself only specifies size 5 (Law 2: 68-70 cm,
    410-450 g); size-1 mass is a manufacturer value, hence configurable.
  * Inertia: a thin inflated shell, I = 2/3 m r^2.
  * Rolling: artificial turf. FIFA's turf ball-roll test (ball released down a 1 m ramp,
    leaving it at about 3 m/s) accepts 4-10 m of roll, i.e. a deceleration of roughly
    0.5-1 m/s^2. We target about 0.75 m/s^2, i.e. a ball rolling at 2 m/s stops after a
    few metres (tests/test_kick.py checks 1.5-4.5 m). MuJoCo's rolling friction is a
    length (torque = mu_roll * normal force); for a shell rolling without slipping the
    deceleration is mu_roll*g / (r*(1 + 2/3)), so mu_roll = 0.75*0.07*(5/3)/9.81 = 0.009 m.
    Measured (MuJoCo, 120 Hz): a ball rolling at 2 m/s stops after 3.2 m and 3.1 s (MuJoCo's
    soft rolling constraint decelerates it at ~0.62 m/s^2); given 2 m/s without spin it first
    slides (friction 0.5), rolls on at 0.6x the speed and stops after 1.4 m and 2.0 s.

Cost (benchmarks/ball_scene.py, K1, physics step vs the robot alone): 1.45x on one H100
at 4096 envs (feet-only contacts: 1.39x); 1.56x on CPU at 16 envs (feet only: ~1.0x).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import mujoco
import numpy as np

from mjxmimic.robots.convert import CONTYPE_OBJECT  # noqa: F401  (documented alternative to pairs)

__all__ = ["BallConfig", "BallScene", "build_ball_scene", "leg_contact_geoms"]

BALL_BODY = "ball"
BALL_GEOM = "ball"
BALL_JOINT = "ball_root"


@dataclasses.dataclass(frozen=True)
class BallConfig:
    radius: float = 0.07            # m, FIFA size 1 (HLVS; HSL rules draft: 14 cm diameter)
    mass: float = 0.205             # kg, HLVS size-1 ball
    # ball-floor pair: [slide, slide, torsional, rolling, rolling] (rolling/torsional in m)
    floor_friction: tuple = (0.5, 0.5, 0.005, 0.009, 0.009)
    # ball-robot pairs (condim 3: sliding friction only)
    robot_friction: float = 0.5
    # contact softness (MuJoCo solref timeconst, dampratio). 0.02 s = default; >= 2 timesteps.
    solref: tuple = (0.02, 1.0)
    # Which robot geoms the ball touches: "feet", "shins" (feet + lower-leg geoms),
    # "legs" (+ thighs) or "all" (every robot collision geom).
    robot_contacts: str = "shins"
    rgba: tuple = (1.0, 1.0, 1.0, 1.0)

    def __post_init__(self):
        if self.radius <= 0 or self.mass <= 0:
            raise ValueError(f"BallConfig: radius and mass must be positive, got {self.radius}, {self.mass}")
        if len(self.floor_friction) != 5:
            raise ValueError("BallConfig.floor_friction needs 5 values [slide, slide, torsion, roll, roll]")
        if self.robot_contacts not in _DEPTH:
            raise ValueError(f"BallConfig.robot_contacts must be one of {list(_DEPTH)}, got {self.robot_contacts!r}")

    @property
    def inertia(self) -> float:
        return 2.0 / 3.0 * self.mass * self.radius ** 2


_DEPTH = {"feet": 1, "shins": 2, "legs": 3, "all": None}


def leg_contact_geoms(model: mujoco.MjModel, foot_body_ids: Sequence[int], collision_geom_ids: Sequence[int],
                      which: str = "shins") -> list[int]:
    """Robot collision geoms the ball may touch.

    Walking up from each foot body, take the geoms of the first ``depth`` bodies that carry
    a collision geom (feet: 1; shins: 2 -> foot + lower leg; legs: 3 -> + thigh), so bodies
    without geoms (ankle crosses, ankle-pitch links) are skipped. ``"all"``: every one.
    """
    collision_geom_ids = [int(g) for g in collision_geom_ids]
    depth = _DEPTH[which]
    if depth is None:
        return sorted(collision_geom_ids)
    by_body: dict[int, list[int]] = {}
    for g in collision_geom_ids:
        by_body.setdefault(int(model.geom_bodyid[g]), []).append(g)
    out: list[int] = []
    for b in foot_body_ids:
        b, found = int(b), 0
        while b > 0 and found < depth:
            if b in by_body:
                out += by_body[b]
                found += 1
            b = int(model.body_parentid[b])
    return sorted(set(out))


@dataclasses.dataclass(frozen=True, eq=False)
class BallScene:
    robot: object               # mjxmimic.robots.Robot
    config: BallConfig
    model: mujoco.MjModel
    ball_body_id: int
    ball_geom_id: int
    ball_qpos_adr: int
    ball_qvel_adr: int
    robot_contact_geom_ids: np.ndarray  # geoms (same ids in both models) paired with the ball
    floor_geom_id: int

    def mjx_model(self):
        return _put(self)

    @property
    def default_qpos(self) -> np.ndarray:
        """Robot standing pose with the ball resting at (1, 0) m on the floor."""
        q = self.model.qpos0.copy()
        q[: self.robot.model.nq] = self.robot.default_qpos
        a = self.ball_qpos_adr
        q[a:a + 7] = [1.0, 0.0, self.config.radius, 1.0, 0.0, 0.0, 0.0]
        return q


@functools.lru_cache(maxsize=16)
def _put(scene: BallScene):
    from mjxmimic.robots import put_model
    return put_model(scene.model)


def build_ball_spec(robot, cfg: BallConfig = BallConfig()) -> tuple[mujoco.MjSpec, list[int]]:
    """MjSpec of the robot's MJCF with the ball and its contact pairs added."""
    spec = mujoco.MjSpec.from_file(str(robot.spec.xml_path))
    m = robot.model
    floor = [g for g in range(m.ngeom) if m.geom_bodyid[g] == 0 and m.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE]
    if len(floor) != 1:
        raise ValueError(f"robot {robot.name}: expected one floor plane in the world body, found {len(floor)}")
    names = {}
    for g in range(m.ngeom):
        if not m.geom(g).name:
            raise ValueError(f"robot {robot.name}: geom {g} has no name; contact pairs need named geoms")
        names[g] = m.geom(g).name
    robot_geoms = leg_contact_geoms(m, robot.foot_body_ids, robot.collision_geom_ids, cfg.robot_contacts)

    body = spec.worldbody.add_body(name=BALL_BODY, pos=[1.0, 0.0, cfg.radius])
    body.add_freejoint(name=BALL_JOINT)
    body.mass = cfg.mass
    body.ipos = [0.0, 0.0, 0.0]
    body.inertia = [cfg.inertia] * 3
    body.explicitinertial = True
    body.add_geom(name=BALL_GEOM, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[cfg.radius, 0, 0],
                  contype=0, conaffinity=0, condim=6, density=0.0, rgba=list(cfg.rgba))
    p = spec.add_pair(name="ball_floor", geomname1=BALL_GEOM, geomname2=names[floor[0]], condim=6)
    p.friction = list(cfg.floor_friction)
    p.solref = list(cfg.solref)
    for g in robot_geoms:
        p = spec.add_pair(name=f"ball_{names[g]}", geomname1=BALL_GEOM, geomname2=names[g], condim=3)
        f = cfg.robot_friction
        p.friction = [f, f, 0.005, 0.0001, 0.0001]
        p.solref = list(cfg.solref)
    return spec, robot_geoms


def build_ball_scene(robot, cfg: BallConfig = BallConfig()) -> BallScene:
    if isinstance(robot, str):
        from mjxmimic.robots import load_robot
        robot = load_robot(robot)
    spec, robot_geoms = build_ball_spec(robot, cfg)
    model = spec.compile()
    rm = robot.model
    if model.nq != rm.nq + 7 or model.nbody != rm.nbody + 1 or model.nu != rm.nu:
        raise AssertionError("ball scene: the ball must be appended after the robot")
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, BALL_BODY)
    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, BALL_JOINT)
    floor = [g for g in range(model.ngeom) if model.geom_bodyid[g] == 0
             and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE][0]
    return BallScene(robot=robot, config=cfg, model=model, ball_body_id=bid,
                     ball_geom_id=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, BALL_GEOM),
                     ball_qpos_adr=int(model.jnt_qposadr[jid]), ball_qvel_adr=int(model.jnt_dofadr[jid]),
                     robot_contact_geom_ids=np.asarray(robot_geoms, np.int32), floor_geom_id=int(floor))

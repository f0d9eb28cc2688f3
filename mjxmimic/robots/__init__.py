"""Robot registry: one source of truth per robot.

    robot = load_robot("k1")
    robot.model          # mujoco.MjModel of robots/k1/k1.xml
    robot.mjx_model()    # cached mjx.Model
    robot.joint_names    # actuated joints, in actuator order (the order of every action/motion)

All index arrays are numpy, so a Robot can sit in a static (jit-closed-over) env.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import mujoco
import numpy as np

from mjxmimic.robots.geometry import geom_min_z
from mjxmimic.paths import ROBOTS_DIR
from mjxmimic.robots.spec import RobotSpec, RobotSpecError, load_spec, spec_path

__all__ = ["Robot", "load_robot", "available_robots", "RobotSpecError", "put_model"]


@dataclasses.dataclass(frozen=True, eq=False)
class Robot:
    name: str
    spec: RobotSpec
    model: mujoco.MjModel
    joint_names: tuple[str, ...]
    body_names: tuple[str, ...]
    qpos_idx: np.ndarray      # [nj] qpos address of each actuated joint
    qvel_idx: np.ndarray      # [nj] dof address of each actuated joint
    joint_axis_body: np.ndarray  # [nj] body each joint moves
    joint_range: np.ndarray   # [nj, 2]
    kp: np.ndarray
    kd: np.ndarray
    effort: np.ndarray
    key_body_ids: np.ndarray
    contact_body_ids: np.ndarray
    foot_body_ids: np.ndarray
    foot_geom_ids: np.ndarray
    collision_geom_ids: np.ndarray
    root_body_id: int
    default_qpos: np.ndarray  # [nq]: standing pose with the soles on the floor

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def key_bodies(self) -> tuple[str, ...]:
        return self.spec.key_bodies

    @property
    def default_joint_pos(self) -> np.ndarray:
        return self.default_qpos[self.qpos_idx]

    def body_id(self, name: str) -> int:
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if i < 0:
            raise KeyError(f"robot {self.name} has no body '{name}'; bodies: {list(self.body_names)}")
        return i

    def mjx_model(self):
        return _mjx_model(self.name)

    def kinematics(self, qpos: np.ndarray) -> mujoco.MjData:
        """MuJoCo C forward kinematics at qpos (for tools and tests, not the hot path)."""
        d = mujoco.MjData(self.model)
        d.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, d)
        return d

    def fall_geom_ids(self, contact_body_ids=None) -> np.ndarray:
        """Collision geoms whose touching the ground counts as a fall: all but those of the
        bodies allowed to touch it (``contact_body_ids``, default the robot's)."""
        allowed = set((self.contact_body_ids if contact_body_ids is None else contact_body_ids).tolist())
        return np.array([g for g in self.collision_geom_ids if self.model.geom_bodyid[g] not in allowed], np.int32)

    def lowest_point(self, qpos: np.ndarray, geom_ids=None) -> float:
        d = self.kinematics(qpos)
        g = self.collision_geom_ids if geom_ids is None else np.asarray(geom_ids)
        z = geom_min_z(self.model.geom_type[g], self.model.geom_size[g], d.geom_xpos[g],
                       d.geom_xmat[g].reshape(-1, 3, 3))
        return float(np.min(np.asarray(z)))


def available_robots() -> list[str]:
    return sorted(d.name for d in ROBOTS_DIR.iterdir() if (d / "robot.yaml").exists())


@functools.cache
def load_robot(name: str) -> Robot:
    spec = load_spec(spec_path(name))
    return robot_from_spec(spec, spec.xml_path)


def robot_from_spec(spec: RobotSpec, xml_path: Path) -> Robot:
    if not Path(xml_path).exists():
        raise RobotSpecError(f"{xml_path} is missing; generate it with "
                             f"`python -m mjxmimic.robots.convert --robot {spec.name}`")
    m = mujoco.MjModel.from_xml_path(str(xml_path))
    names = spec.joint_names
    act_joints = [m.joint(int(m.actuator_trnid[a, 0])).name for a in range(m.nu)]
    if tuple(act_joints) != names:
        raise RobotSpecError(f"{xml_path}: actuator order {act_joints} differs from the spec's joints {list(names)}; regenerate it")
    jid = np.array([m.joint(n).id for n in names])

    def bid(n):
        i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)
        if i < 0:
            raise RobotSpecError(f"{spec.path}: body '{n}' not in {xml_path}")
        return i

    feet = np.array([bid(n) for n in spec.feet])
    col = np.array([g for g in range(m.ngeom) if m.geom_bodyid[g] > 0 and m.geom_contype[g] != 0])
    foot_geoms = np.array([g for g in col if m.geom_bodyid[g] in set(feet.tolist())])
    qpos = m.qpos0.copy()
    qpos[3:7] = [1, 0, 0, 0]
    for n, v in spec.default_pose.items():
        qpos[m.jnt_qposadr[m.joint(n).id]] = v
    robot = Robot(
        name=spec.name, spec=spec, model=m, joint_names=names,
        body_names=tuple(m.body(i).name for i in range(m.nbody)),
        qpos_idx=m.jnt_qposadr[jid].astype(np.int32), qvel_idx=m.jnt_dofadr[jid].astype(np.int32),
        joint_axis_body=m.jnt_bodyid[jid].astype(np.int32), joint_range=m.jnt_range[jid].copy(),
        kp=np.array([j.kp for j in spec.joints]), kd=np.array([j.kd for j in spec.joints]),
        effort=m.actuator_forcerange[:, 1].copy(),
        key_body_ids=np.array([bid(n) for n in spec.key_bodies], np.int32),
        contact_body_ids=np.array([bid(n) for n in spec.contact_bodies], np.int32),
        foot_body_ids=feet.astype(np.int32), foot_geom_ids=foot_geoms.astype(np.int32),
        collision_geom_ids=col.astype(np.int32), root_body_id=bid(spec.root_body), default_qpos=qpos)
    # Derive the standing height: lift the root until the lowest sole point is on the floor.
    qpos[2] = 0.0
    qpos[2] = -robot.lowest_point(qpos, foot_geoms)
    return robot


def put_model(model: mujoco.MjModel):
    """``model`` as an mjx.Model on this process's first device. MJX's own default,
    ``jax.devices()[0]``, is process 0's device in a multi-process run: another process would
    hold a handle without data."""
    import jax
    from mujoco import mjx
    return mjx.put_model(model, device=jax.local_devices()[0])


@functools.cache
def _mjx_model(name: str):
    return put_model(load_robot(name).model)

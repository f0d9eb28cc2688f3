"""Motion file formats: hand-built files with known content, round trips, real MimicKit
clips, joint-name mapping, dataset YAMLs and clear errors on bad input."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.motions.clip import Clip, MotionError
from mjxmimic.motions.io import (BOOSTER_K1_JOINTS, detect_format, load_clip, load_dataset, map_joints,
                                 mjcf_joint_order, save_clip)
from mjxmimic.tools.synthetic import synthetic_clip

SHARED = Path(__file__).resolve().parents[2] / "shared"
MK_G1 = SHARED / "motions" / "mimickit_g1"
needs_mk = pytest.mark.skipif(not MK_G1.exists(), reason=f"{MK_G1} not present (../shared beside the repo)")


@pytest.fixture(scope="module")
def g1_clip(g1):
    return synthetic_clip(g1, frames=20, fps=30.0, loop="wrap", speed=0.4, yaw_rate=0.5, name="g1syn")


def _dump(path, obj):
    path.write_bytes(pickle.dumps(obj))
    return path


def _quat_close(a, b, atol=1e-6):
    a, b = np.asarray(a), np.asarray(b)
    sign = np.where(np.sum(a * b, -1, keepdims=True) < 0, -1.0, 1.0)
    np.testing.assert_allclose(a, sign * b, atol=atol)


# ----------------------------------------------------------------------------- MimicKit
def test_mimickit_reader_hand_built(g1, tmp_path):
    J = g1.num_joints
    joints = np.arange(2 * J, dtype=float).reshape(2, J) * 0.01
    frames = [[0.1, 0.2, 0.7, 0.0, 0.0, np.pi / 2] + list(joints[0]),
              [0.3, 0.2, 0.7, np.pi / 3, 0.0, 0.0] + list(joints[1])]
    f = _dump(tmp_path / "hand.pkl", {"loop_mode": 0, "fps": 50, "frames": frames})
    assert detect_format(f) == "mimickit"
    c = load_clip(f, g1)
    assert (c.fps, c.loop, c.num_frames, c.name) == (50.0, "clamp", 2, "hand")
    np.testing.assert_allclose(c.root_pos, [[0.1, 0.2, 0.7], [0.3, 0.2, 0.7]])
    # exp map (0, 0, pi/2): 90 deg about z; (pi/3, 0, 0): 60 deg about x
    _quat_close(c.root_rot[0], [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    _quat_close(c.root_rot[1], [np.cos(np.pi / 6), np.sin(np.pi / 6), 0, 0])
    # columns are the MJCF joint order = robot order for G1
    assert mjcf_joint_order(g1) == g1.joint_names
    np.testing.assert_allclose(c.joint_pos, joints, atol=1e-12)
    # loop_mode 1 -> wrap
    f2 = _dump(tmp_path / "wrap.pkl", {"loop_mode": 1, "fps": 50.0, "frames": frames})
    assert load_clip(f2, g1).loop == "wrap"


def test_mimickit_round_trip(g1, g1_clip, tmp_path):
    p = save_clip(g1_clip, tmp_path / "rt.pkl", g1)
    raw = pickle.loads(p.read_bytes())
    assert set(raw) == {"loop_mode", "fps", "frames"} and raw["loop_mode"] == 1 and raw["fps"] == 30
    assert isinstance(raw["frames"], list) and all(isinstance(v, float) for v in raw["frames"][0])
    assert len(raw["frames"]) == g1_clip.num_frames and len(raw["frames"][0]) == 6 + 29
    np.testing.assert_allclose(np.array(raw["frames"])[:, 3:6], rmath.quat_to_exp_map(g1_clip.root_rot), atol=1e-6)
    c = load_clip(p, g1)
    assert (c.fps, c.loop) == (g1_clip.fps, g1_clip.loop)
    np.testing.assert_allclose(c.root_pos, g1_clip.root_pos, atol=1e-9)
    np.testing.assert_allclose(c.joint_pos, g1_clip.joint_pos, atol=1e-9)
    _quat_close(c.root_rot, g1_clip.root_rot, atol=1e-6)


def test_npz_round_trip(k1, tmp_path):
    clip = synthetic_clip(k1, frames=9, fps=25.0, loop="clamp", speed=0.3, yaw_rate=-1.0)
    p = save_clip(clip, tmp_path / "c.npz")
    c = load_clip(p, k1)
    assert (c.fps, c.loop, c.joint_names) == (25.0, "clamp", k1.joint_names)
    for k in ("root_pos", "root_rot", "joint_pos"):
        np.testing.assert_array_equal(getattr(c, k), getattr(clip, k))


# ----------------------------------------------------------------------------- GMR
def test_gmr_reader_hand_built(g1, tmp_path):
    T, J = 3, g1.num_joints
    yaw = np.array([0.0, 0.5, 1.0])
    xyzw = np.stack([0 * yaw, 0 * yaw, np.sin(yaw / 2), np.cos(yaw / 2)], 1)
    dof = np.linspace(-0.5, 0.5, T * J).reshape(T, J)
    d = {"fps": np.float64(30.0), "root_pos": np.array([[0, 0, 0.75], [0.1, 0, 0.75], [0.2, 0, 0.75]]),
         "root_rot": xyzw, "dof_pos": dof, "local_body_pos": np.zeros((T, 5, 3)),
         "link_body_list": ["pelvis", "a", "b", "c", "d"]}
    f = _dump(tmp_path / "gmr.pkl", d)
    assert detect_format(f) == "gmr"
    c = load_clip(f, g1)
    assert (c.fps, c.loop, c.num_frames) == (30.0, "clamp", 3)
    _quat_close(c.root_rot, np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], 1))
    np.testing.assert_allclose(c.joint_pos, dof)
    assert load_clip(f, g1, loop="wrap").loop == "wrap"
    # GMR's own scripts save local_body_pos / link_body_list as None
    f2 = _dump(tmp_path / "gmr2.pkl", {**d, "local_body_pos": None, "link_body_list": None})
    np.testing.assert_allclose(load_clip(f2, g1).root_pos, d["root_pos"])
    # and a writer that produces that schema
    p = save_clip(c, tmp_path / "out.pkl", g1, fmt="gmr")
    raw = pickle.loads(p.read_bytes())
    np.testing.assert_allclose(raw["root_rot"], xyzw, atol=1e-7)
    assert raw["dof_pos"].shape == (3, J) and raw["local_body_pos"] is None


# ----------------------------------------------------------------------------- Booster CSV
def _k1_csv(path, header=False, rows=3):
    vals = []
    for i in range(rows):
        yaw = 0.2 * i
        q = [0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)]  # x y z w
        joints = [0.01 * j + 0.1 * i for j in range(len(BOOSTER_K1_JOINTS))]
        vals.append([0.05 * i, 0.0, 0.55] + q + joints)
    text = ("x,y,z,qx,qy,qz,qw," + ",".join(BOOSTER_K1_JOINTS) + "\n") if header else ""
    text += "\n".join(",".join(f"{v:.10g}" for v in r) for r in vals) + "\n"
    path.write_text(text)
    return path, np.array(vals)


@pytest.mark.parametrize("header", [False, True])
def test_booster_csv_reader_hand_built(k1, tmp_path, header):
    f, vals = _k1_csv(tmp_path / "k1.csv", header)
    c = load_clip(f, k1, fps=50)
    assert (c.fps, c.num_frames, c.loop) == (50.0, 3, "clamp")
    np.testing.assert_allclose(c.root_pos, vals[:, :3])
    _quat_close(c.root_rot, rmath.quat_xyzw_to_wxyz(vals[:, 3:7]))
    # each vendor column lands on the robot joint of the same name
    for j, n in enumerate(BOOSTER_K1_JOINTS):
        np.testing.assert_allclose(c.joint_pos[:, k1.joint_names.index(n)], vals[:, 7 + j])
    # writer reproduces the layout
    p = save_clip(c, tmp_path / "out.csv", k1)
    np.testing.assert_allclose(np.loadtxt(p, delimiter=","), vals, atol=1e-7)


def test_booster_csv_needs_fps(k1, tmp_path):
    f, _ = _k1_csv(tmp_path / "k1.csv")
    with pytest.raises(MotionError, match=r"k1\.csv.*fps"):
        load_clip(f, k1)
    with pytest.raises(MotionError, match="fps"):
        load_clip(f, k1, fps=0)


# ----------------------------------------------------------------------------- real files
@needs_mk
def test_real_mimickit_g1_clips(g1, tmp_path):
    expect = {"g1_walk": (120, 125), "g1_run": (30, 25), "g1_spinkick": (60, 78)}
    for name, (fps, n) in expect.items():
        f = MK_G1 / f"{name}.pkl"
        c = load_clip(f, "g1")
        assert (c.fps, c.num_frames, c.loop, c.joint_names) == (fps, n, "wrap", g1.joint_names)
        qpos = c.qpos(g1)
        # the clips were made for this robot: the soles touch the floor (within a few cm)
        low = min(g1.lowest_point(q, g1.foot_geom_ids) for q in qpos)
        assert -0.03 < low < 0.02, (name, low)
        assert np.all(np.abs(c.joint_pos) < np.pi)
        # our writer reproduces MimicKit's file to float precision
        raw = pickle.loads(f.read_bytes())
        out = pickle.loads(save_clip(c, tmp_path / f"{name}.pkl", g1).read_bytes())
        assert out["loop_mode"] == raw["loop_mode"] and out["fps"] == raw["fps"]
        a, b = np.array(out["frames"]), np.array(raw["frames"])
        np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-12)
        np.testing.assert_allclose(a[:, 6:], b[:, 6:], atol=1e-12)
        _quat_close(rmath.exp_map_to_quat(a[:, 3:6]), rmath.exp_map_to_quat(b[:, 3:6]), atol=1e-6)


# ----------------------------------------------------------------------------- mapping
def test_name_map_and_missing_extra(k1, tmp_path):
    src = tuple(f"src_{n}" for n in k1.joint_names)
    clip = synthetic_clip(k1, frames=4).replace(joint_names=src)
    m = {s: n for s, n in zip(src, k1.joint_names)}
    out = map_joints(clip, k1, m)
    np.testing.assert_array_equal(out.joint_pos, clip.joint_pos)
    assert out.joint_names == k1.joint_names
    # without the map every robot joint is missing
    with pytest.raises(MotionError, match="lacks joint"):
        map_joints(clip, k1)
    # a partial clip: error, or fill with the default pose
    part = synthetic_clip(k1, frames=4).for_robot(k1.joint_names[2:])
    with pytest.raises(MotionError, match=r"AAHead_yaw.*Head_pitch"):
        map_joints(part, k1)
    filled = map_joints(part, k1, allow_missing=True)
    np.testing.assert_allclose(filled.joint_pos[:, :2], np.tile(k1.default_joint_pos[:2], (4, 1)))
    # an extra joint: error, or dropped
    extra = clip.replace(joint_names=k1.joint_names[:-1] + ("tail",))
    with pytest.raises(MotionError, match="tail"):
        map_joints(extra, k1, allow_missing=True)
    assert "tail" not in map_joints(extra, k1, allow_missing=True, allow_extra=True).joint_names
    with pytest.raises(MotionError, match="nope"):
        map_joints(clip, k1, {"nope": "AAHead_yaw"})
    # through load_clip, with joint_names naming a CSV's columns in a different order
    f, vals = _k1_csv(tmp_path / "k1.csv")
    rev = tuple(reversed(BOOSTER_K1_JOINTS))
    c = load_clip(f, k1, fps=30, joint_names=[f"x_{n}" for n in rev], name_map={f"x_{n}": n for n in rev})
    np.testing.assert_allclose(c.joint_pos[:, k1.joint_names.index(rev[0])], vals[:, 7])


# ----------------------------------------------------------------------------- dataset
def test_dataset_yaml(k1, tmp_path):
    sub = tmp_path / "clips"
    sub.mkdir()
    save_clip(synthetic_clip(k1, frames=5, name="a"), sub / "a.npz")
    _k1_csv(sub / "b.csv")
    y = tmp_path / "ds.yaml"
    y.write_text("motions:\n  - {file: clips/a.npz, weight: 3}\n  - {file: clips/b.csv, weight: 1, fps: 60, loop: wrap}\n")
    ds = load_dataset(y, k1)
    assert [c.name for c in ds.clips] == ["a", "b"]
    np.testing.assert_allclose(ds.weights, [3, 1])
    assert ds.clips[1].fps == 60 and ds.clips[1].loop == "wrap"
    y.write_text("motions:\n  - {file: clips/a.npz, weight: -1}\n")
    with pytest.raises(MotionError, match=r"motions\[0\].*weight"):
        load_dataset(y, k1)
    y.write_text("motions:\n  - {file: clips/missing.npz, weight: 1}\n")
    with pytest.raises(MotionError, match="missing.npz"):
        load_dataset(y, k1)
    with pytest.raises(MotionError, match="dataset"):
        load_clip(y, k1)


# ----------------------------------------------------------------------------- bad input
def test_bad_files_raise_clear_errors(g1, g1_clip, tmp_path):
    good = save_clip(g1_clip, tmp_path / "good.pkl", g1).read_bytes()
    (tmp_path / "trunc.pkl").write_bytes(good[: len(good) // 2])
    with pytest.raises(MotionError, match=r"trunc\.pkl.*truncated"):
        load_clip(tmp_path / "trunc.pkl", g1)
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(MotionError, match=r"empty\.pkl.*empty"):
        load_clip(tmp_path / "empty.pkl", g1)
    frames = pickle.loads(good)["frames"]
    frames[3][10] = float("nan")
    _dump(tmp_path / "nan.pkl", {"loop_mode": 1, "fps": 30, "frames": frames})
    with pytest.raises(MotionError, match=r"nan\.pkl.*NaN.*\[3\]"):
        load_clip(tmp_path / "nan.pkl", g1)
    _dump(tmp_path / "short.pkl", {"loop_mode": 1, "fps": 30, "frames": [f[:-2] for f in pickle.loads(good)["frames"]]})
    with pytest.raises(MotionError, match=r"short\.pkl.*27 joint columns, expected 29"):
        load_clip(tmp_path / "short.pkl", g1)
    for fps in (0, -30, float("nan")):
        _dump(tmp_path / "fps.pkl", {"loop_mode": 1, "fps": fps, "frames": pickle.loads(good)["frames"]})
        with pytest.raises(MotionError, match=r"fps\.pkl.*fps must be a positive"):
            load_clip(tmp_path / "fps.pkl", g1)
    ragged = pickle.loads(good)["frames"]
    ragged[5] = ragged[5][:20]
    _dump(tmp_path / "ragged.pkl", {"loop_mode": 1, "fps": 30, "frames": ragged})
    with pytest.raises(MotionError, match=r"ragged\.pkl.*row 5"):
        load_clip(tmp_path / "ragged.pkl", g1)
    _dump(tmp_path / "other.pkl", {"foo": 1})
    with pytest.raises(MotionError, match=r"unknown pickle layout"):
        load_clip(tmp_path / "other.pkl", g1)
    # a pickle that would run code is refused, not executed
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"x": Path("/")}))
    with pytest.raises(MotionError, match="refusing"):
        load_clip(tmp_path / "evil.pkl", g1)
    (tmp_path / "bad.csv").write_text("0,0,0.5,0,0,0,1" + ",0" * 22 + "\n0,0,0.5,0,0\n")
    with pytest.raises(MotionError, match=r"bad\.csv: line 2"):
        load_clip(tmp_path / "bad.csv", "k1", fps=30)
    with pytest.raises(MotionError, match="unknown motion format"):
        load_clip(tmp_path / "x.bvh", g1)


def test_writers_write_nothing_on_error(k1, g1, tmp_path):
    clip = synthetic_clip(k1, frames=4)
    with pytest.raises(MotionError, match="robot"):
        save_clip(clip, tmp_path / "a.pkl")  # MimicKit needs the robot's dof order
    with pytest.raises(MotionError, match="lacks joint"):
        save_clip(clip, tmp_path / "b.pkl", g1)  # K1 clip for G1
    with pytest.raises(MotionError, match="output format"):
        save_clip(clip, tmp_path / "c.bvh", k1)
    assert list(tmp_path.iterdir()) == []


def test_clip_validation_names_the_problem():
    z = np.zeros((2, 3))
    q = np.tile([1.0, 0, 0, 0], (2, 1))
    with pytest.raises(MotionError, match="fps"):
        Clip(fps=0.0, loop="wrap", root_pos=z, root_rot=q, joint_pos=np.zeros((2, 1)), joint_names=("a",))
    with pytest.raises(MotionError, match="joint_pos"):
        Clip(fps=30.0, loop="wrap", root_pos=z, root_rot=q, joint_pos=np.zeros((2, 2)), joint_names=("a",))

"""Retargeting: the BVH reader on hand-written files, the AMASS/SMPL path on a synthetic body
model, the retarget CLI, and robot-to-robot retargeting of MimicKit's real G1 clips."""
import subprocess
import sys

import numpy as np
import pytest

from mjxmimic.motions.clip import Clip, MotionError
from mjxmimic.paths import REPO_ROOT
from mjxmimic.tools import bvh, retarget, smpl

SHARED_G1 = REPO_ROOT.parent / "shared" / "motions" / "mimickit_g1"

# A two-joint chain: root at (0, 90, 0) cm, a child 10 cm up its y axis, an end 5 cm along z.
TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 0 5
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.5
0 90 0 0 0 0 0 0 0
1 90 2 0 0 90 0 0 0
0 90 0 90 0 0 0 90 0
"""


def test_bvh_reader_hand_computed():
    b = bvh.parse_bvh(TINY)
    assert b.names == ("Hips", "Spine", "Spine_end")
    assert list(b.parents) == [-1, 0, 1] and b.fps == 2.0 and b.num_frames == 3
    _, P = b.global_transforms()
    # frame 0: rest
    np.testing.assert_allclose(P[0], [[0, 90, 0], [0, 100, 0], [0, 100, 5]], atol=1e-12)
    # frame 1: root moved by (1, 0, 2) and turned 90 deg about y: the child's +z offset becomes +x
    np.testing.assert_allclose(P[1], [[1, 90, 2], [1, 100, 2], [6, 100, 2]], atol=1e-12)
    # frame 2: root 90 deg about z (y -> -x), spine 90 deg about its x (z -> -y, then the root's turn: -y -> +x)
    np.testing.assert_allclose(P[2], [[0, 90, 0], [-10, 90, 0], [-5, 90, 0]], atol=1e-12)
    # z-up conversion, metres: the file's y (up) becomes z, the file's z (forward) becomes x
    Pz = b.positions(up="y", scale=0.01)
    np.testing.assert_allclose(Pz[1, 2], [0.02, 0.06, 1.0], atol=1e-12)


def test_bvh_euler_order_is_intrinsic():
    R = bvh.euler_to_mat(np.array([90.0, 90.0]), "zx")
    # Rz(90) @ Rx(90): x -> y, y -> z, z -> x
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [0, 1, 0], [0, 0, 1], atol=1e-12)


@pytest.mark.parametrize("text, msg", [
    (TINY.replace("0 90 0 90 0 0 0 90 0\n", "0 90 0 90\n"), "truncated"),
    (TINY.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation"), "unknown channel"),
    (TINY.replace("HIERARCHY", "HEIRARCHY"), "HIERARCHY"),
    (TINY.replace("Frame Time: 0.5", "Frame Time: 0"), "positive"),
])
def test_bvh_reader_errors(text, msg):
    with pytest.raises(MotionError, match=msg):
        bvh.parse_bvh(text)


# ---------------------------------------------------------------------------------------
# a hand-made human BVH: a squat with the feet planted, arms waving (cm, y up, facing +z)
# ---------------------------------------------------------------------------------------
def _human_bvh(frames=61, fps=30.0):
    L = 42.0    # thigh = shank (cm)
    hier = f"""HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT LeftUpLeg
  {{
    OFFSET 9 -6 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT LeftLeg
    {{
      OFFSET 0 -{L} 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT LeftFoot
      {{
        OFFSET 0 -{L} 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        JOINT LeftToeBase
        {{
          OFFSET 0 -6 12
          CHANNELS 3 Zrotation Xrotation Yrotation
          End Site
          {{
            OFFSET 0 0 4
          }}
        }}
      }}
    }}
  }}
  JOINT RightUpLeg
  {{
    OFFSET -9 -6 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT RightLeg
    {{
      OFFSET 0 -{L} 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT RightFoot
      {{
        OFFSET 0 -{L} 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        JOINT RightToeBase
        {{
          OFFSET 0 -6 12
          CHANNELS 3 Zrotation Xrotation Yrotation
          End Site
          {{
            OFFSET 0 0 4
          }}
        }}
      }}
    }}
  }}
  JOINT Spine
  {{
    OFFSET 0 12 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Neck
    {{
      OFFSET 0 40 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT Head
      {{
        OFFSET 0 10 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        End Site
        {{
          OFFSET 0 10 0
        }}
      }}
    }}
    JOINT LeftArm
    {{
      OFFSET 18 36 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT LeftForeArm
      {{
        OFFSET 0 -28 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        JOINT LeftHand
        {{
          OFFSET 0 -25 0
          CHANNELS 3 Zrotation Xrotation Yrotation
          End Site
          {{
            OFFSET 0 -8 0
          }}
        }}
      }}
    }}
    JOINT RightArm
    {{
      OFFSET -18 36 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT RightForeArm
      {{
        OFFSET 0 -28 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        JOINT RightHand
        {{
          OFFSET 0 -25 0
          CHANNELS 3 Zrotation Xrotation Yrotation
          End Site
          {{
            OFFSET 0 -8 0
          }}
        }}
      }}
    }}
  }}
}}
MOTION
Frames: {frames}
Frame Time: {1.0 / fps:.8f}
"""
    rows = []
    for i in range(frames):
        th = 25.0 * (1 - np.cos(2 * np.pi * i / (frames - 1))) / 2          # 0 -> 25 deg -> 0
        y = 6 + 2 * L * np.cos(np.radians(th)) + 6 + 2                        # ankle 8 cm above the floor
        arm = 30.0 * np.sin(2 * np.pi * i / (frames - 1))
        leg = [0, -th, 0, 0, 2 * th, 0, 0, -th, 0, 0, 0, 0]                 # hip flex, knee, ankle, toe
        body = [0, 0, 0, 0, 0, 0, 0, 0, 0]                                  # spine, neck, head
        arms = [0, arm, 0, 0, -20, 0, 0, 0, 0, 0, -arm, 0, 0, -20, 0, 0, 0, 0]
        vals = [0, y, 0, 0, 0, 0] + leg + leg + body + arms
        rows.append(" ".join(f"{v:.6f}" for v in vals))
    return hier + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def squat_bvh(tmp_path_factory):
    p = tmp_path_factory.mktemp("bvh") / "squat.bvh"
    p.write_text(_human_bvh())
    return p


def test_bvh_source_canonical_joints(squat_bvh):
    s = retarget.source_from_bvh(squat_bvh)
    assert s.fps == pytest.approx(30.0) and s.num_frames == 61
    for k in ("pelvis", "left_hip", "right_ankle", "left_toe", "head", "left_wrist"):
        assert k in s.pos
    # cm -> m guessed from the leg length; z up; the planted feet do not move
    assert s.pos["left_hip"][0, 1] == pytest.approx(0.09) and s.pos["left_hip"][0, 2] > 0.8
    assert np.ptp(s.pos["left_ankle"], axis=0).max() < 1e-6          # (6-decimal angles in the file)


def test_retarget_cli_on_bvh(squat_bvh, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "mjxmimic.tools.retarget", str(squat_bvh), "--robot", "k1",
                        "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "kp err cm" in r.stdout and "squat" in r.stdout
    clip = Clip.load_npz(out / "squat.npz")
    assert clip.num_frames == 61 and clip.fps == 30.0
    row = next(line for line in r.stdout.splitlines() if line.startswith("squat"))
    err_cm, pen_mm, skate_mm = float(row.split()[2]), float(row.split()[4]), float(row.split()[5])
    assert err_cm < 5.0 and pen_mm <= 2.0 and skate_mm <= 5.0
    # the squat came through: the root goes down and back up
    z = clip.root_pos[:, 2]
    assert z[30] < z[0] - 0.03 and abs(z[-1] - z[0]) < 0.01


def test_retarget_report_numbers(squat_bvh):
    clip, rep = retarget.retarget(retarget.source_from_bvh(squat_bvh), "k1")
    p = rep["plausibility"]
    assert p["penetration_mm"] <= 2.0 and p["skate_mm"] <= 5.0 and p["joint_limit_rad"] <= 1e-4
    assert rep["contact_frames"] == [61, 61]
    assert rep["kp_err_by_point_cm"]["left_sole"] < 0.5, "planted feet are held on their targets"
    assert 0.3 < rep["scale_leg"] < 0.7


# ---------------------------------------------------------------------------------------
# AMASS / SMPL
# ---------------------------------------------------------------------------------------
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPL_REST = np.array([  # an SMPL-like rest skeleton: y up, facing +z, left = +x, pelvis at the origin
    [0, 0, 0], [0.09, -0.09, 0], [-0.09, -0.09, 0], [0, 0.1, 0], [0.1, -0.47, 0], [-0.1, -0.47, 0],
    [0, 0.23, 0], [0.1, -0.87, -0.02], [-0.1, -0.87, -0.02], [0, 0.28, 0], [0.11, -0.93, 0.1],
    [-0.11, -0.93, 0.1], [0, 0.5, 0], [0.07, 0.43, 0], [-0.07, 0.43, 0], [0, 0.65, 0.02], [0.18, 0.43, 0],
    [-0.18, 0.43, 0], [0.45, 0.43, 0], [-0.45, 0.43, 0], [0.7, 0.43, 0], [-0.7, 0.43, 0], [0.78, 0.43, 0],
    [-0.78, 0.43, 0]], np.float64)


@pytest.fixture(scope="module")
def body_model(tmp_path_factory):
    """A synthetic SMPL-family model file: 24 joints, J_regressor = identity over 24 'vertices'."""
    d = tmp_path_factory.mktemp("bm")
    kt = np.array([[4294967295] + SMPL_PARENTS[1:], list(range(24))], np.int64)
    rng = np.random.default_rng(0)
    np.savez(d / "model.npz", v_template=SMPL_REST, shapedirs=rng.normal(0, 0.01, (24, 3, 10)),
             J_regressor=np.eye(24), kintree_table=kt, f=np.zeros((1, 3), np.int64))
    return d / "model.npz"


@pytest.fixture(scope="module")
def amass_file(tmp_path_factory):
    T = 60
    poses = np.zeros((T, 156))
    poses[:, 0] = np.pi / 2                                   # root: y-up body into AMASS's z-up world
    ph = np.linspace(0, 2 * np.pi, T)
    poses[:, 16 * 3 + 2] = -1.2                               # arms down (left shoulder about z)
    poses[:, 17 * 3 + 2] = 1.2
    poses[:, 18 * 3 + 1] = -0.5 * (1 - np.cos(ph))            # left elbow bends
    trans = np.zeros((T, 3))
    trans[:, 2] = 0.95
    p = tmp_path_factory.mktemp("amass") / "wave_poses.npz"
    np.savez(p, poses=poses, trans=trans, betas=np.zeros(16), mocap_framerate=np.float64(60), gender=np.array("neutral"))
    return p


def test_smpl_joint_positions(body_model):
    bm = smpl.BodyModel.load(body_model)
    assert list(bm.parents) == SMPL_PARENTS
    T = 2
    poses = np.zeros((T, 72))
    poses[1, 0] = np.pi / 2                    # 90 deg about x: y (up) -> z
    P = smpl.joint_positions(bm, poses, np.zeros((T, 3)))
    np.testing.assert_allclose(P[0], SMPL_REST, atol=1e-12)
    np.testing.assert_allclose(P[1, 15], [0, -0.02, 0.65], atol=1e-12)       # head: up is now z
    poses[0, 4 * 3] = np.pi / 2                                              # left knee 90 deg about x
    P = smpl.joint_positions(bm, poses, np.zeros((T, 3)))
    np.testing.assert_allclose(P[0, 7], SMPL_REST[4] + [0, 0.02, -0.4], atol=1e-12)


def test_amass_needs_a_body_model(amass_file, tmp_path):
    with pytest.raises(MotionError, match="body model"):
        smpl.load_amass(amass_file, None)
    with pytest.raises(MotionError, match="licensed"):
        smpl.load_amass(amass_file, tmp_path / "nope" / "model.npz")
    r = subprocess.run([sys.executable, "-m", "mjxmimic.tools.retarget", str(amass_file), "--robot", "k1",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--body-model" in r.stderr and "Traceback" not in r.stderr


def test_amass_retarget_with_synthetic_model(amass_file, body_model):
    src = smpl.load_amass(amass_file, body_model)
    assert src.fps == 60.0 and src.num_frames == 60
    assert src.pos["head"][0, 2] > src.pos["pelvis"][0, 2] > src.pos["left_ankle"][0, 2]
    assert src.pos["left_hip"][0, 0] == pytest.approx(0.09)                  # left stays +x... (facing -y)
    clip, rep = retarget.retarget(src, "k1")
    assert clip.num_frames == 30 and rep["plausibility"]["penetration_mm"] <= 2.0
    assert rep["plausibility"]["skate_mm"] <= 5.0 and rep["kp_err_mean_cm"] < 5.0
    # the robot faces where the body faces (-y): its heading is about -90 deg
    w, z = clip.root_rot[0, 0], clip.root_rot[0, 3]
    assert abs(np.degrees(2 * np.arctan2(z, w)) + 90) < 10


# ---------------------------------------------------------------------------------------
# real data nobody here made: MimicKit's G1 clips, G1 -> K1 and G1 -> G1
# ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not SHARED_G1.exists(), reason="../shared/motions not present")
def test_mimickit_g1_walk_retargets_to_k1():
    from mjxmimic.motions.io import load_clip
    from mjxmimic.robots import load_robot
    g1 = load_robot("g1")
    src = retarget.source_from_robot_clip(load_clip(SHARED_G1 / "g1_walk.pkl", g1), g1)
    clip, rep = retarget.retarget(src, "k1")
    p = rep["plausibility"]
    assert p["penetration_mm"] <= 2.0 and p["skate_mm"] <= 5.0 and p["joint_limit_rad"] <= 1e-4
    assert rep["kp_err_mean_cm"] < 4.0
    # it still walks forward about as far (scaled by the leg-length ratio)
    assert 0.5 < (clip.root_pos[-1, 0] - clip.root_pos[0, 0]) < 1.0


@pytest.mark.skipif(not SHARED_G1.exists(), reason="../shared/motions not present")
def test_froude_retiming_keeps_the_spin_kicks_flight_a_free_fall():
    """G1's spin kick on the smaller K1: with the source's timing its jump would fall at
    ~s_leg·g (0.68 g measured); retimed by √s_leg it falls at g again, and it lasts √s_leg as long."""
    from mjxmimic.motions.io import load_clip
    from mjxmimic.robots import load_robot
    g1 = load_robot("g1")
    src_clip = load_clip(SHARED_G1 / "g1_spinkick.pkl", g1)
    src = retarget.source_from_robot_clip(src_clip, g1)
    clip, rep = retarget.retarget(src, "k1", retarget.RetargetConfig(fps=60.0, time_scale="froude"), loop="wrap")
    s = rep["scale_leg"]
    assert 0.6 < s < 0.9 and rep["time_scale"] == "froude"
    assert abs(clip.duration - src_clip.duration * np.sqrt(s)) < 1.5 / 60
    assert abs(rep["plausibility"]["flight_gravity"] - 1.0) < 0.2
    # the IK ends the cycle in another solution than it began: the seam is flagged, and the
    # cleaning tool closes it (this seam kept K1 from tracking the clip, benchmarks/RESULTS.md)
    assert rep["plausibility"]["seam_rad"] > 0.3 and any("seam" in f for f in rep["plausibility"]["failures"])
    from mjxmimic.tools.clean import clean_clip
    from mjxmimic.tools.plausibility import check_clip
    closed, _ = clean_clip(clip, "k1")
    after = check_clip(closed, "k1")
    assert after.seam_rad < 0.05 and after.penetration_mm <= 2.0 and after.joint_limit_rad <= 1e-4
    assert after.zmp_margin_mm > rep["plausibility"]["zmp_margin_mm"] + 300      # -1.29 m -> -0.54 m
    with pytest.raises(ValueError, match="time_scale"):
        retarget.RetargetConfig(time_scale="slow")

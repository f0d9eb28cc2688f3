"""Cleaning tool: planted penetration and foot skate removed, limits clamped, resampling,
smoothing, metrics on the robot's real collision geometry, nothing written on error."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mjxmimic import math as rmath
from mjxmimic.motions.clip import Clip, resample
from mjxmimic.motions.io import load_clip, save_clip
from mjxmimic.tools import clean
from mjxmimic.tools.synthetic import synthetic_clip

T, FPS = 61, 30.0
PEN, SKATE = 0.03, 0.05


def _planted(k1) -> Clip:
    """K1 standing and waving an arm; the root drifts 5 cm forward (both planted feet skate
    5 cm) and dips 3 cm mid-clip (the soles go 3 cm into the floor)."""
    t = np.arange(T) / FPS
    pos = np.tile(k1.default_qpos[:3], (T, 1)).astype(float)
    pos[:, 0] += SKATE * t / t[-1]
    pos[:, 2] -= PEN * np.sin(np.pi * t / t[-1]) ** 2
    jp = np.tile(k1.default_joint_pos, (T, 1))
    jp[:, k1.joint_names.index("ALeft_Shoulder_Pitch")] += 0.4 * np.sin(2 * np.pi * t)
    return Clip(fps=FPS, loop="clamp", root_pos=pos, root_rot=np.tile([1.0, 0, 0, 0], (T, 1)), joint_pos=jp,
                joint_names=k1.joint_names, name="planted")


@pytest.fixture(scope="module")
def cleaned(k1, tmp_path_factory):
    d = tmp_path_factory.mktemp("clean")
    src = save_clip(_planted(k1), d / "in.npz")
    out, rep = d / "out.npz", d / "rep.json"
    rc = clean.main([str(src), str(out), "--robot", "k1", "--report", "--report-json", str(rep)])
    assert rc == 0
    return load_clip(out, k1), json.loads(rep.read_text())


def test_planted_penetration_and_skate_removed(k1, cleaned):
    out, rep = cleaned
    b, a = rep["before"], rep["after"]
    assert b["penetration_max_mm"] == pytest.approx(PEN * 1e3, abs=0.5)
    assert b["skate_worst_run_cm"] == pytest.approx(SKATE * 100, abs=0.3)
    assert rep["contacts_per_foot"] == [T, T]
    assert a["penetration_max_mm"] < 2.0 and a["skate_worst_run_cm"] < 0.5 and a["slide_worst_run_cm"] < 0.5
    # check the written clip independently of the report
    q = out.qpos(k1)
    assert min(k1.lowest_point(x) for x in q) > -0.002
    for foot in k1.foot_body_ids:
        xy = np.array([k1.kinematics(x).xpos[foot, :2] for x in q])
        assert np.linalg.norm(xy - xy.mean(0), axis=1).max() < 0.0025
    # the motion is otherwise kept: the root still drifts, the arm still waves, legs change little
    np.testing.assert_allclose(out.root_pos[:, :2], _planted(k1).root_pos[:, :2], atol=1e-9)
    arm = k1.joint_names.index("ALeft_Shoulder_Pitch")
    np.testing.assert_allclose(out.joint_pos[:, arm], _planted(k1).joint_pos[:, arm], atol=1e-6)
    assert a["joint_change_mean_rad"] < 0.02
    assert a["limit_violations"] == 0


def test_report_is_printed(k1, tmp_path, capsys):
    src = save_clip(synthetic_clip(k1, frames=12, amp=0.05), tmp_path / "s.npz")
    assert clean.main([str(src), str(tmp_path / "o.pkl"), "--robot", "k1", "--report", "--no-skate"]) == 0
    txt = capsys.readouterr().out
    for label in ("max penetration (mm)", "skating during contact", "joint-limit violations", "mean joint jerk",
                  "mean joint change (rad)"):
        assert label in txt
    assert load_clip(tmp_path / "o.pkl", k1).num_frames == 12  # MimicKit output


def test_penetration_uses_collision_geometry(k1):
    # tilt the root so the foot boxes' edges dig in: the penetration is the lowest geom
    # point, not a fixed offset from the root or the foot origin
    c = _planted(k1)
    roll = np.linspace(0.0, 0.25, T)
    c = c.replace(root_rot=np.asarray(rmath.quat_from_axis_angle(np.array([1.0, 0, 0]), roll), float))
    m = clean.clip_metrics(c, k1, contacts=np.zeros((T, 2), bool))
    exact = max(0.0, -min(k1.lowest_point(x) for x in c.qpos(k1)))
    assert exact > PEN
    assert m["penetration_max_mm"] == pytest.approx(exact * 1e3, abs=0.05)
    fixed = clean.fix_penetration(c, k1)
    assert min(k1.lowest_point(x) for x in fixed.qpos(k1)) > -1e-4


def test_joint_limits_clamped(k1):
    c = synthetic_clip(k1, frames=10, amp=0.05)
    j = k1.joint_names.index("Left_Knee_Pitch")
    hi = k1.joint_range[j, 1]
    jp = c.joint_pos.copy()
    jp[3:6, j] = hi + 0.2
    c = c.replace(joint_pos=jp)
    assert clean.clip_metrics(c, k1)["limit_violations"] == 3
    out, rep = clean.clean_clip(c, k1, clean.CleanConfig(fix_skate=False))
    assert rep["before"]["limit_violation_max_rad"] == pytest.approx(0.2)
    assert rep["after"]["limit_violations"] == 0
    np.testing.assert_allclose(out.joint_pos[3:6, j], hi)


def test_resample(k1):
    c = synthetic_clip(k1, frames=31, fps=30.0, loop="clamp", speed=0.5, yaw_rate=1.0)
    r = resample(c, 60.0)
    assert r.fps == 60.0 and r.num_frames == 61 and r.duration == pytest.approx(c.duration)
    np.testing.assert_allclose(r.joint_pos[::2], c.joint_pos, atol=1e-9)
    np.testing.assert_allclose(r.root_pos[1::2], 0.5 * (c.root_pos[:-1] + c.root_pos[1:]), atol=1e-9)
    d = resample(c, 15.0)
    np.testing.assert_allclose(d.joint_pos, c.joint_pos[::2], atol=1e-6)
    # a looping clip keeps its exact length (rate adjusted to a whole number of frames)
    w = resample(c.replace(loop="wrap"), 29.0)
    assert w.duration == pytest.approx(c.duration) and abs(w.fps - 29.0) < 0.5
    np.testing.assert_allclose(w.root_pos[-1], c.root_pos[-1], atol=1e-9)


def test_smoothing_removes_noise(k1):
    c = synthetic_clip(k1, frames=90, fps=30.0, amp=0.2, freq=0.5)
    rng = np.random.default_rng(0)
    noisy = c.replace(joint_pos=c.joint_pos + rng.normal(0, 0.02, c.joint_pos.shape))
    s = clean.smooth(noisy, 2.0)
    jerk = lambda x: np.abs(np.diff(x.joint_pos, 3, 0)).mean()  # noqa: E731
    assert jerk(s) < 0.2 * jerk(noisy)
    assert np.abs(s.joint_pos - c.joint_pos)[5:-5].mean() < 0.6 * np.abs(noisy.joint_pos - c.joint_pos).mean()
    # looping clips are filtered circularly: the seam stays continuous
    sw = clean.smooth(noisy.replace(loop="wrap"), 4.0)
    np.testing.assert_allclose(sw.joint_pos[-1], sw.joint_pos[0], atol=1e-9)


def test_close_loop_removes_a_planted_seam(k1):
    """A looping clip whose last frame is not its first (as a per-frame retarget can end a cycle
    in another IK solution): the knee jumps 0.4 rad, the root 2 cm and 0.1 rad at the seam.
    close_loop takes half of each gap off each side, ramped over 0.25 s, and touches nothing else."""
    from mjxmimic.tools.plausibility import check_clip
    c = synthetic_clip(k1, frames=61, fps=30.0, loop="wrap", speed=0.3, amp=0.1, freq=0.5)
    knee = k1.joint_names.index("Left_Knee_Pitch")
    assert abs(c.joint_pos[-1, knee] - c.joint_pos[0, knee]) < 1e-9      # one whole period: no seam yet
    jp, pos, rot = c.joint_pos.copy(), c.root_pos.copy(), c.root_rot.copy()
    ramp = np.clip((np.arange(61) - 45) / 15, 0, 1)[:, None]                # the gap builds up over the last 0.5 s
    jp[:, knee] += 0.4 * ramp[:, 0]
    pos[:, 2] += 0.02 * ramp[:, 0]
    rot = np.asarray(rmath.quat_mul(rot, rmath.exp_map_to_quat(ramp * np.array([0.1, 0.0, 0.0]))), np.float64)
    bad = c.replace(joint_pos=jp, root_pos=pos, root_rot=rot)
    rep = check_clip(bad, k1)
    assert rep.seam_rad == pytest.approx(0.4, abs=1e-6) and rep.seam_joint == "Left_Knee_Pitch"
    assert any("seam" in f for f in rep.failures)

    out = clean.close_loop(bad, 0.25)
    np.testing.assert_allclose(out.joint_pos[-1], out.joint_pos[0], atol=1e-6)
    assert out.root_pos[-1, 2] == pytest.approx(out.root_pos[0, 2], abs=1e-6)
    assert float(rmath.quat_diff_angle(out.root_rot[-1], out.root_rot[0])) < 1e-5
    np.testing.assert_allclose(out.root_pos[:, :2], bad.root_pos[:, :2])     # the cycle's shift is kept
    assert out.joint_pos[0, knee] - bad.joint_pos[0, knee] == pytest.approx(0.2, abs=1e-6)   # half each side
    assert out.joint_pos[-1, knee] - bad.joint_pos[-1, knee] == pytest.approx(-0.2, abs=1e-6)
    n = round(0.25 * 30)
    np.testing.assert_allclose(out.joint_pos[n:-n], bad.joint_pos[n:-n], atol=1e-12)    # outside the ramps
    # smoothstep ramps: no step larger than the clip's own plus 1.5x the ramp's mean slope
    steps = np.abs(np.diff(out.joint_pos[:, knee]))
    assert steps.max() < np.abs(np.diff(bad.joint_pos[:-1, knee])).max() + 1.5 * 0.2 / n
    assert not [f for f in check_clip(out, k1).failures if "seam" in f]
    # clamped clips have no seam; the cleaning pipeline closes a loop by default
    clamped = bad.replace(loop="clamp")
    assert clean.close_loop(clamped, 0.25) is clamped
    piped, _ = clean.clean_clip(bad, k1)
    np.testing.assert_allclose(piped.joint_pos[-1], piped.joint_pos[0], atol=1e-6)
    with pytest.raises(Exception, match="blend"):
        clean.close_loop(bad, 0.0)


def test_stance_across_the_loop_seam_is_one_pinned_run():
    """A looping clip's foot on the floor at its end and at its start stands on one spot across
    the seam: both runs are pinned to the same point (less the cycle's shift), not to two."""
    T, shift = 20, np.array([0.5, 0.1])
    p = np.zeros((T, 1, 3))
    p[:, 0, 0] = np.linspace(0.0, 0.5, T) + 0.01 * np.sin(np.arange(T))      # drifts while in contact
    contacts = np.zeros((T, 1), bool)
    contacts[:4] = contacts[-5:] = True
    t = clean._skate_targets(p, contacts, 2, wrap_shift=shift)[:, 0]
    np.testing.assert_allclose(t[-1], t[0] + shift, atol=1e-12)                # the seam stays closed
    np.testing.assert_allclose(t[-5:], np.broadcast_to(t[-1], (5, 2)), atol=1e-12)
    np.testing.assert_allclose(t[:4], np.broadcast_to(t[0], (4, 2)), atol=1e-12)
    # one anchor: the mean over the stance's frames, frame T-1 (= frame 0 shifted) counted once
    pts = np.concatenate([p[-5:, 0, :2], p[1:4, 0, :2] + shift])
    np.testing.assert_allclose(t[-1], pts.mean(0), atol=1e-12)
    # without the shift (a clamped clip) the two runs are pinned separately
    u = clean._skate_targets(p, contacts, 2)[:, 0]
    np.testing.assert_allclose(u[:4], np.broadcast_to(p[:4, 0, :2].mean(0), (4, 2)), atol=1e-12)


def test_bad_input_reports_and_writes_nothing(k1, tmp_path, capsys):
    good = save_clip(_planted(k1), tmp_path / "good.pkl", k1).read_bytes()
    (tmp_path / "trunc.pkl").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out.npz"
    assert clean.main([str(tmp_path / "trunc.pkl"), str(out), "--robot", "k1"]) == 2
    err = capsys.readouterr().err
    assert "trunc.pkl" in err and "truncated" in err
    assert clean.main([str(tmp_path / "good.pkl"), str(out), "--robot", "k1", "--fps", "0"]) == 2
    assert "fps" in capsys.readouterr().err
    assert clean.main([str(tmp_path / "missing.pkl"), str(out), "--robot", "k1"]) == 2
    assert "missing.pkl" in capsys.readouterr().err
    assert clean.main([str(tmp_path / "good.pkl"), str(tmp_path / "out.bvh"), "--robot", "k1"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pkl", "trunc.pkl"]

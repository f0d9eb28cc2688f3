"""tools.record: a tiny K1 tracking run's simulated motion saved as clips and a dataset YAML."""
import numpy as np
import pytest

from export_runs import TINY, exported_run
from mjxmimic.motions.io import load_clip, load_dataset
from mjxmimic.tools import record

pytest.importorskip("jax2onnx")   # exported_run exports too


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    run_dir, _, (env, params, *_) = exported_run(tmp_path_factory.mktemp("run"), "k1_track",
                                                 {**TINY, "env.motion_file": "motions/k1/kick.yaml"})
    out = tmp_path_factory.mktemp("rec") / "sim"
    assert record.main([str(run_dir), "--out", str(out), "--seconds", "0.3"]) == 0
    return run_dir, out, env, params


def test_clips_and_dataset_yaml(recorded):
    run_dir, out, env, params = recorded
    ds = load_dataset(out / "kick.yaml", env.robot)
    assert [f.name for f in ds.files] == ["kick_right.npz", "kick_left.npz"]
    np.testing.assert_allclose(ds.weights, [1.0, 1.0])
    for clip in ds.clips:
        assert clip.fps == pytest.approx(50.0) and clip.loop == "clamp" and clip.num_frames == 15
        assert clip.joint_names == tuple(env.robot.joint_names)


def test_recorded_motion_starts_on_the_clip_and_is_simulated(recorded):
    _, out, env, _ = recorded
    for name in ("kick_right", "kick_left"):
        src = load_clip(f"motions/k1/{name}.npz", env.robot)
        rec = load_clip(out / f"{name}.npz", env.robot)
        # frame 0: the clip's first frame (no reset noise; joints inside the env's soft limits, as its
        # reset puts them); later frames: the physics, near the clip
        start = np.clip(src.joint_pos[0], env.soft_low, env.soft_high)
        assert np.abs(start - src.joint_pos[0]).max() > 0.1     # the K1 kicks start outside them (elbow yaw)
        np.testing.assert_allclose(rec.joint_pos[0], start, atol=1e-5)
        np.testing.assert_allclose(rec.root_pos[0], src.root_pos[0], atol=1e-5)
        assert np.abs(rec.joint_pos[1:] - rec.joint_pos[:1]).max() > 1e-4      # it moved
        assert np.abs(rec.root_pos[-1] - src.root_pos[0]).max() < 0.1          # and did not fall away


def test_frames_are_the_env_states_of_the_rollout(recorded):
    """The recorded frames equal play's own rollout of the same clip (an independent path)."""
    import jax
    import jax.numpy as jnp
    from mjxmimic.play import load_policy, rollout_qpos
    run_dir, out, _, _ = recorded
    env, params, _, _, policy_fn = load_policy(run_dir)
    one_hot = params.replace(motion=params.motion.replace(weights=jnp.asarray([0.0, 1.0], jnp.float32)))
    q, _, _ = rollout_qpos(env, one_hot, policy_fn, jax.random.PRNGKey(0), 14)
    rec = load_clip(out / "kick_left.npz", env.robot)
    np.testing.assert_allclose(rec.qpos(env.robot), q, atol=1e-5)


def test_refuses_bad_input(recorded, tmp_path, capsys):
    run_dir, out, *_ = recorded
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert record.main([str(run_dir), "--out", str(out)]) == 1      # a folder holding this recording
    assert "already holds" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert record.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 1
    with pytest.raises(SystemExit):
        record.main([str(run_dir), "--out", str(tmp_path / "o"), "--seconds", "0"])
    assert not (tmp_path / "o").exists()


def test_looping_clips_record_loop_seconds(recorded):
    """A looping clip is recorded for --loop-seconds, a clamped one for its length (both capped)."""
    import jax.numpy as jnp
    from mjxmimic.play import load_policy
    run_dir, *_ = recorded
    env, params, _, _, policy_fn = load_policy(run_dir)
    looped = params.replace(motion=params.motion.replace(wrap=jnp.asarray([True, False])))
    clips, skipped = record.record_clips(env, looped, policy_fn, ["a", "b"], loop_seconds=0.2, seconds=0.3)
    assert not skipped and clips["a"].num_frames == 10 and clips["b"].num_frames == 15


def test_episodes_from_perturbed_starts(recorded, tmp_path):
    """--episodes 2 --perturbed: two different episodes per clip, named <clip>_<k>, half the weight each."""
    run_dir, _, env, _ = recorded
    out = tmp_path / "sim2"
    assert record.main([str(run_dir), "--out", str(out), "--seconds", "0.1", "--episodes", "2", "--perturbed"]) == 0
    ds = load_dataset(out / "kick.yaml", env.robot)
    assert [f.stem for f in ds.files] == ["kick_right_0", "kick_right_1", "kick_left_0", "kick_left_1"]
    np.testing.assert_allclose(ds.weights, 0.5)
    a, b = ds.clips[0], ds.clips[1]
    assert np.abs(a.joint_pos[0] - b.joint_pos[0]).max() > 1e-3    # different perturbed starts
    assert "--episodes 2 --perturbed" in (out / "kick.yaml").read_text()

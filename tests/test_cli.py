"""Command-line tools end to end on a tiny config: train, resume, evaluate, config errors,
run directories that cannot be mixed, checkpoint retention and size, quiet output."""
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mjxmimic import play, train
from mjxmimic.paths import CONFIGS_DIR
from mjxmimic.view import video_writer

TINY = ["--num-envs", "4", "--set", "agent.steps_per_iter=4", "--set", "agent.actor_hidden=[16]",
        "--set", "agent.critic_hidden=[16]", "--set", "env.episode_length=1.0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    assert train.main(["--env", "k1_walk", *TINY, "--iterations", "2", "--save-every", "1", "--keep-best",
                       "--best-metric", "eval/episode_return", "--eval-episodes", "4", "--out", str(d)]) == 0
    return d


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _ckpt_steps(d: Path) -> list:
    return sorted(int(p.name) for p in (d / "checkpoints").iterdir() if p.name.isdigit())


def test_train_writes_config_logs_and_checkpoints(run_dir):
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["env"]["num_envs"] == 4 and cfg["agent"]["steps_per_iter"] == 4
    assert cfg["agent"]["actor_hidden"] == [16]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2]
    assert lines[-1]["env_steps"] == 2 * 4 * 4 and "episode_return" in lines[-1] and "env/joint_pos_err" in lines[-1]
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())[-1] == 2
    assert any((run_dir / "tb").iterdir())
    # --best-metric eval/...: the deterministic policy was evaluated after every save (--save-every 1),
    # one 1 s episode (30 control steps) per env, and the best checkpoint is the best evaluated one
    assert all(x["eval/episodes"] == 4 and 0 < x["eval/episode_length"] <= 30 for x in lines)
    best = json.loads((run_dir / "checkpoints" / "best" / "best.json").read_text())
    scores = {x["iteration"]: x["eval/episode_return"] for x in lines}
    assert best["metric"] == "eval/episode_return" and best["step"] == max(scores, key=scores.get)


def test_out_onto_an_existing_run_is_refused_and_changes_nothing(run_dir, capsys):
    before = _snapshot(run_dir)
    for env in ("k1_walk", "k1_kick"):
        assert train.main(["--env", env, *TINY, "--iterations", "1", "--out", str(run_dir)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "already holds a run" in err and "--resume" in err
    assert _snapshot(run_dir) == before


def test_resume_continues_from_the_last_checkpoint_and_compiles_once(run_dir, capsys, caplog):
    import jax
    # run 1 kept the last 2 checkpoints (--keep 2) and the best by eval/episode_return
    assert _ckpt_steps(run_dir) == [1, 2]
    best = json.loads((run_dir / "checkpoints" / "best" / "best.json").read_text())
    assert best["metric"] == "eval/episode_return" and best["step"] in (1, 2)
    fp = json.loads((run_dir / "fingerprint.json").read_text())
    assert "mjxmimic/learning/ppo.py" in fp["files"] and "robots/k1/robot.yaml" in fp["files"]
    assert "motions/k1/walk.npz" in fp["files"]
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            assert train.main(["--resume", str(run_dir), "--iterations", "4", "--eval-every", "1",
                               "--eval-episodes", "4"]) == 0
    finally:
        jax.config.update("jax_log_compiles", False)
    out = capsys.readouterr().out
    assert "resumed from iteration 2" in out
    assert f"python -m mjxmimic.play {run_dir}" in out and f"tensorboard --logdir {run_dir / 'tb'}" in out
    # two iterations after the resume, one compilation: restored leaves match what the jit saw
    compiles = [r for r in caplog.records if "Finished XLA compilation of jit(_iteration)" in r.getMessage()]
    assert len(compiles) == 1, [r.getMessage()[:120] for r in compiles]
    # the evaluation, compiled in a thread beside the iteration, is compiled once and reused
    compiles = [r for r in caplog.records if "Finished XLA compilation of jit(_evaluate)" in r.getMessage()]
    assert len(compiles) == 1, [r.getMessage()[:120] for r in compiles]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 3, 4]
    assert [x["eval/episodes"] for x in lines[2:]] == [4, 4]
    assert _ckpt_steps(run_dir) == [2, 4]  # saved at exit (--save-every is 50 here); step 1 dropped: keep 2


def test_resume_refuses_a_changed_config_or_code_unless_forced(run_dir, tmp_path, capsys):
    d = tmp_path / "copy"
    shutil.copytree(run_dir, d)
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["env"]["episode_length"] = 2.0
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    before = _snapshot(d)
    assert train.main(["--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "config" in err and "--force" in err
    assert _snapshot(d) == before
    # code: a training source file that differs from when the run began is named
    fp = json.loads((d / "fingerprint.json").read_text())
    (d / "config.yaml").write_bytes((run_dir / "config.yaml").read_bytes())
    fp["files"]["mjxmimic/learning/ppo.py"] = "0" * 64
    fp["code_sha256"] = "0" * 64
    (d / "fingerprint.json").write_text(json.dumps(fp))
    assert train.main(["--resume", str(d)]) == 2
    err = capsys.readouterr().err
    assert "code: mjxmimic/learning/ppo.py changed" in err
    # --force resumes (at its last step already: nothing to train) and records why
    assert train.main(["--resume", str(d), "--force", "--iterations", str(_ckpt_steps(d)[-1])]) == 0
    (rec,) = json.loads((d / "fingerprint.json").read_text())["forced_resumes"]
    assert any("ppo.py" in x for x in rec["differences"])


def test_play_reports_metrics(run_dir, tmp_path):
    out = tmp_path / "m.json"
    assert play.main([str(run_dir), "--no-video", "--episodes", "4", "--num-envs", "4", "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["episodes"] >= 4 and 0.0 <= m["full_length"] <= 1.0 and m["iteration"] == 4
    assert 0 < m["episode_length_s"] <= 1.0 + 1e-6  # episodes are capped at 1 s
    # --set evaluates the same policy in a changed env; only env.* keys
    short = tmp_path / "short.json"
    assert play.main([str(run_dir), "--no-video", "--episodes", "4", "--num-envs", "4", "--json", str(short),
                      "--set", "env.episode_length=0.5"]) == 0
    assert 0 < json.loads(short.read_text())["episode_length_s"] <= 0.5 + 1e-6
    # an override that changes the env state (pushes add a timer) still restores the checkpoint
    assert play.main([str(run_dir), "--no-video", "--episodes", "4", "--num-envs", "4", "--set",
                      "env.randomize.push_interval=[0.1,0.2]", "--set", "env.randomize.push_vel=[1,1,0,0,0,0]"]) == 0
    assert play.main([str(run_dir), "--no-video", "--set", "agent.actor_hidden=[8]"]) == 2
    assert play.main([str(run_dir), "--no-video", "--set", "env.episode_length"]) == 2
    # the best checkpoint (--keep-best) restores as the step best.json names
    from mjxmimic.learning import restore_train_state
    best = json.loads((run_dir / "checkpoints" / "best" / "best.json").read_text())
    trainer = train.build(run_dir)[3]
    ts = restore_train_state(str(run_dir / "checkpoints"), trainer.abstract_state(), best=True)
    assert int(ts.iteration) == best["step"]
    # ... and is the state that was evaluated: the same episodes (seed + 1) give the logged score
    import jax
    again = float(trainer.evaluate(ts, jax.random.PRNGKey(1), 4, 10**7)["episode_return"])
    assert abs(again - best["value"]) <= 1e-4 * abs(best["value"])


def test_config_errors_are_clear(tmp_path, capsys):
    assert train.main(["--env", "k1_wlak", "--out", str(tmp_path / "x")]) == 2
    assert "k1_wlak" in capsys.readouterr().err
    assert train.main(["--env", "k1_walk", "--set", "env.no_such_key=1", "--out", str(tmp_path / "y")]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert train.main(["--env", "k1_walk", "--devices", "64", "--out", str(tmp_path / "z")]) == 2
    assert "this machine has" in capsys.readouterr().err
    # a best checkpoint chosen by an evaluation must be an evaluated state
    assert train.main(["--env", "k1_walk", "--keep-best", "--best-metric", "eval/end/success", "--save-every", "10",
                       "--eval-every", "3", "--out", str(tmp_path / "e")]) == 2
    assert "must equal --save-every 10" in capsys.readouterr().err and not (tmp_path / "e").exists()
    assert train.main(["--env", "k1_walk", "--keep-best", "--best-metric", "eval/end/success", "--save-every", "10",
                       "--eval-every", "5", "--out", str(tmp_path / "e")]) == 2  # two evaluations per save
    assert "must equal --save-every 10" in capsys.readouterr().err and not (tmp_path / "e").exists()
    assert train.main(["--env", "k1_walk", "--devices", "two", "--out", str(tmp_path / "w")]) == 2
    assert "--devices" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "xyzw")
    assert play.main([str(tmp_path / "missing")]) == 2


def test_k1_kick_cli_smoke(tmp_path):
    """The headline command on a tiny config: AMP + ball kick trains, logs, checkpoints and plays (the AMP
    learner's env contract on the kick env end to end: disc obs, demo samples, replay, task metrics)."""
    d = tmp_path / "kick"
    # 17 envs: more than one CPU chunk of the kick scene (15), so the padded chunked path runs.
    # a 48-sample replay buffer: 17 envs x 4 steps fill it in the first iteration
    tiny = TINY + ["--num-envs", "17", "--set", "agent.disc_hidden=[16]", "--set", "agent.disc_buffer_size=48",
                   "--set", "agent.disc_replay_samples=8"]
    assert train.main(["--env", "k1_kick", *tiny, "--iterations", "1", "--out", str(d)]) == 0
    # The checkpoint holds every state array but the (full) replay buffer's [48, disc_obs] data.
    import orbax.checkpoint as ocp
    mgr = ocp.CheckpointManager(d / "checkpoints", item_handlers=ocp.StandardCheckpointHandler())
    shapes = [tuple(x.shape) for x in mgr.item_metadata(1).values()]
    assert shapes and not any(len(s) == 2 and s[0] == 48 for s in shapes), shapes
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["env"]["name"] == "kick" and cfg["agent"]["name"] == "amp" and cfg["agent"]["disc_hidden"] == [16]
    (line,) = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    for k in ("disc_loss", "disc_agent_acc", "style_reward_mean", "task_reward_mean", "env/ball_target_dist",
              "env/term_success", "env/term_fail"):
        assert k in line and line[k] == line[k], k  # present and not NaN
    assert (d / "checkpoints" / "1").exists()
    out = tmp_path / "m.json"
    assert play.main([str(d), "--no-video", "--episodes", "4", "--num-envs", "4", "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["episodes"] >= 4
    for k in ("end/success", "end/term_fail", "end/ball_target_dist"):
        assert k in m, k
    assert 0.0 <= m["end/success"] <= 1.0 and m["end/ball_target_dist"] >= 0.0


def test_sigterm_saves_the_last_iteration(tmp_path):
    """A scheduler's SIGTERM ends the run like Ctrl-C: the last completed iteration is checkpointed.
    SLURM's SIGUSR1 (its time-limit warning, which cluster/job.sh forwards) takes the same handler
    (``train.STOP_SIGNALS``); tests/test_slurm.py sends it through a real job."""
    import os
    import signal
    import subprocess
    import sys
    import time

    assert signal.SIGUSR1 in train.STOP_SIGNALS

    d = tmp_path / "term"
    p = subprocess.Popen([sys.executable, "-m", "mjxmimic.train", "--env", "k1_walk", *TINY, "--iterations", "100000",
                          "--save-every", "100000", "--out", str(d)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    jsonl = d / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 3:
            break
        time.sleep(0.5)
    assert p.poll() is None, p.communicate()[0][-2000:]
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=120)[0]
    assert p.returncode == 0, out[-2000:]
    logged = len(jsonl.read_text().splitlines())
    saved = max(int(x.name) for x in (d / "checkpoints").iterdir() if x.name.isdigit())
    assert saved >= 3 and saved in (logged, logged + 1), (saved, logged)  # not the save-every schedule


def test_k1_kick_quick_start_checkpoints_fit_the_size_bound():
    """The CPU quick start (64 envs, default config): its checkpoints leave out the AMP replay
    buffer, so the last 2 plus a best fit in 200 MB while one buffer alone would not."""
    from mjxmimic.envs.registry import make_env
    from mjxmimic.learning import saved_nbytes

    env, params, agent_cfg = make_env("k1_kick", {"env.num_envs": train.CPU_NUM_ENVS})
    abstract = train.build_trainer(env, params, agent_cfg).abstract_state()
    buffer = agent_cfg.disc_buffer_size * env.disc_obs_size * 4
    assert saved_nbytes(abstract, exact=True) - saved_nbytes(abstract) == buffer
    assert buffer > 200e6 and 3 * saved_nbytes(abstract) < 200e6


def test_list_envs_and_help(capsys):
    names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml") if not p.name.startswith("_"))
    assert train.main(["--list-envs"]) == 0
    listed = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert sorted(listed) == names
    with pytest.raises(SystemExit) as e:
        train.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "(default: 2)" in out and "(default: 50)" in out and all(n in out for n in names)
    with pytest.raises(SystemExit):
        play.main(["--help"])
    out = capsys.readouterr().out
    assert "(default: 256)" in out and "PRNG seed" in out and "--best" in out


def test_cli_output_has_no_warp_or_fork_lines(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(train.PACKAGE.parent)}
    for cmd in (["mjxmimic.train", "--list-envs"], ["mjxmimic.play", str(tmp_path / "missing"), "--no-video"]):
        r = subprocess.run([sys.executable, "-m", *cmd], capture_output=True, text=True, env=env, timeout=300)
        out = r.stdout + r.stderr
        assert r.returncode in (0, 2) and "import warp" not in out and "mujoco_warp" not in out, out[-2000:]
        assert "os.fork" not in out, out[-2000:]


def test_video_writer_does_not_fork(tmp_path, monkeypatch):
    """imageio-ffmpeg's preexec_fn made subprocess fork() JAX's threaded process (JAX warns);
    the video writer (play's and view's) spawns ffmpeg instead."""
    import warnings

    import jax
    import numpy as np
    pytest.importorskip("imageio_ffmpeg")
    monkeypatch.delenv("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", raising=False)
    jax.numpy.zeros(1).block_until_ready()  # JAX's threads and at-fork hook are up
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, w = video_writer(tmp_path / "x.mp4", 10.0)
        with w:
            for _ in range(2):
                w.append_data(np.zeros((64, 64, 3), np.uint8))
    assert out.exists() and out.stat().st_size > 0
    assert not [x for x in caught if "fork" in str(x.message)]


def test_play_evaluates_tracking_runs_from_the_first_frame(tmp_path):
    """play rebuilds a tracking run's env with the kind's evaluation overrides (first frame, no
    observation or start noise, the clip's end a success); --perturbed keeps the run's start noise;
    other env kinds are evaluated as trained."""
    from mjxmimic.envs.registry import make_env, read_config

    run = tmp_path / "track"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(read_config("k1_track")))
    env, _, _ = make_env(run / "config.yaml")
    assert (env.cfg.start, env.cfg.motion_end, env.cfg.obs_noise_scale) == ("adaptive", "resample", 1.0)
    ev, _, _ = make_env(run / "config.yaml", play.eval_overrides(run))
    assert (ev.cfg.start, ev.cfg.motion_end, ev.cfg.obs_noise_scale, ev.cfg.reset_noise_scale) == (
        "first_frame", "success", 0.0, 0.0)
    pert, _, _ = make_env(run / "config.yaml", play.eval_overrides(run, perturbed=True))
    assert (pert.cfg.start, pert.cfg.obs_noise_scale, pert.cfg.reset_noise_scale) == ("first_frame", 0.0, 1.0)
    walk = tmp_path / "walk"
    walk.mkdir()
    (walk / "config.yaml").write_text(yaml.safe_dump(read_config("k1_walk")))
    assert play.eval_overrides(walk) == {} and play.eval_overrides(walk, perturbed=True) == {}


def test_play_nominal_evaluates_in_sim2sims_default_conditions(tmp_path):
    """play --nominal: every randomised term off, no observation noise, and the actuator delay
    fixed at the middle of its trained range, the delay sim2sim gives the run's export by
    default; everything else is the trained env."""
    import dataclasses

    from mjxmimic.envs.randomize import TERMS
    from mjxmimic.envs.registry import load_config, make_env, read_config
    from mjxmimic.sim2sim import default_delay_ms

    run = tmp_path / "kick"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(read_config("k1_kick_deploy")))
    cfg = load_config(run / "config.yaml")["env_cfg"]
    r = cfg.randomize
    assert all(getattr(r, k) is not None for k in ("friction", "push_interval", "delay", "com_offset"))
    assert cfg.obs_noise_scale > 0 and r.delay[0] < r.delay[1]
    nom, _, _ = make_env(run / "config.yaml", play.eval_overrides(run, nominal=True))
    rn = nom.cfg.randomize
    assert [k for k in TERMS if getattr(rn, k) is not None] == ["delay"] and nom.cfg.obs_noise_scale == 0.0
    dt = float(nom.model.opt.timestep)
    assert rn.delay[0] == rn.delay[1] and 1000 * rn.delay[0] * dt == pytest.approx(
        default_delay_ms({"randomize": {"delay_s": [d * dt for d in r.delay]}}))
    assert dataclasses.replace(nom.cfg, randomize=r, obs_noise_scale=cfg.obs_noise_scale) == cfg
    # a config without randomisation or noise: nothing to switch off
    walk = tmp_path / "walk"
    walk.mkdir()
    (walk / "config.yaml").write_text(yaml.safe_dump(read_config("k1_walk")))
    assert play.nominal_overrides(load_config(walk / "config.yaml")["env_cfg"]) == {}

"""Command-line tools end to end on a tiny config: train, resume, evaluate, config errors."""
import json

import pytest
import yaml

from mjxmimic import play, train

TINY = ["--num-envs", "4", "--set", "agent.steps_per_iter=4", "--set", "agent.actor_hidden=[16]",
        "--set", "agent.critic_hidden=[16]", "--set", "env.episode_length=1.0"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    assert train.main(["--env", "k1_walk", *TINY, "--iterations", "2", "--save-every", "1", "--out", str(d)]) == 0
    return d


def test_train_writes_config_logs_and_checkpoints(run_dir):
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["env"]["num_envs"] == 4 and cfg["agent"]["steps_per_iter"] == 4
    assert cfg["agent"]["actor_hidden"] == [16]
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2]
    assert lines[-1]["env_steps"] == 2 * 4 * 4 and "episode_return" in lines[-1] and "env/joint_pos_err" in lines[-1]
    assert sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())[-1] == 2
    assert any((run_dir / "tb").iterdir())


def test_resume_continues_from_the_last_checkpoint(run_dir, capsys):
    assert train.main(["--resume", str(run_dir), "--iterations", "3"]) == 0
    assert "resumed from iteration 2" in capsys.readouterr().out
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 3]
    assert (run_dir / "checkpoints" / "3").exists()


def test_play_reports_metrics(run_dir, tmp_path):
    out = tmp_path / "m.json"
    assert play.main([str(run_dir), "--no-video", "--episodes", "4", "--num-envs", "4", "--json", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["episodes"] >= 4 and 0.0 <= m["full_length"] <= 1.0 and m["iteration"] == 3
    assert 0 < m["episode_length_s"] <= 1.0 + 1e-6  # episodes are capped at 1 s


def test_config_errors_are_clear(tmp_path, capsys):
    assert train.main(["--env", "k1_wlak", "--out", str(tmp_path / "x")]) == 2
    assert "k1_wlak" in capsys.readouterr().err
    assert train.main(["--env", "k1_walk", "--set", "env.no_such_key=1", "--out", str(tmp_path / "y")]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert train.main(["--env", "k1_walk", "--devices", "64", "--out", str(tmp_path / "z")]) == 2
    assert "this machine has" in capsys.readouterr().err
    assert train.main(["--env", "k1_walk", "--devices", "two", "--out", str(tmp_path / "w")]) == 2
    assert "--devices" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "xyzw")
    assert play.main([str(tmp_path / "missing")]) == 2


def test_k1_kick_cli_smoke(tmp_path):
    """The headline command on a tiny config: AMP + ball kick trains, logs, checkpoints and plays."""
    d = tmp_path / "kick"
    # 17 envs: more than one CPU chunk of the kick scene (15), so the padded chunked path runs.
    tiny = TINY + ["--num-envs", "17", "--set", "agent.disc_hidden=[16]", "--set", "agent.disc_buffer_size=64",
                   "--set", "agent.disc_replay_samples=8"]
    assert train.main(["--env", "k1_kick", *tiny, "--iterations", "1", "--out", str(d)]) == 0
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
    """A scheduler's SIGTERM ends the run like Ctrl-C: the last completed iteration is checkpointed."""
    import os
    import signal
    import subprocess
    import sys
    import time

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

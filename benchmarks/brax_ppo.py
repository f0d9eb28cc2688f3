"""Training throughput: our PPO learner vs Brax's PPO (``brax.training.agents.ppo.train``)
on OUR DeepMimic env, beside the bare vmapped ``env.step``, in one process on one device.

    python benchmarks/brax_ppo.py --env g1_walk --num-envs 4096 --seconds 60 \\
        [--set env.motion_file=...] [--set agent.steps_per_iter=32] [--parts bare,ours,brax]

Three measurements, each an env-steps-per-wall-second figure (one env step = one
control step of one env = ``num_substeps`` physics steps):

1. **bare env.step**: ``jit(lax.scan(vmap(env.step)))`` over ``steps_per_iter`` steps with
   uniform random actions in [-1, 1] mapped onto the env's action bounds; repeated for
   ~0.75·seconds. Upper bound for any learner on this env.
2. **ours**: ``make_trainer(env, params, agent_cfg)`` (no donation, as ``mjxmimic.train``
   builds it); one ``trainer.iteration`` per loop turn, blocked on its metrics, for
   ``--seconds``. Compile ≈ first iteration - median steady iteration.
3. **brax PPO**: ``ppo.train(wrap_env=False, ...)`` on an adapter of our env (below) for
   ~1.25·seconds. ``run_evals=False`` so no eval rollouts are timed; ``progress_fn`` is
   called after each training epoch; the rate is steps between the 1st and last call over
   the time between them (the 1st epoch carries the compile and is excluded). Brax's own
   per-epoch ``training/sps`` (median of epochs 2..) is printed beside it. Its "compile s"
   is ``ppo.train`` start to the 1st progress call minus one steady epoch, so it also holds
   the env-reset and eval-env-reset compiles and network init.

Adapter. ``MimicBraxEnv`` is a ``brax.envs.base.Env`` over ONE env (``env``, ``params`` closed
over); ``State.pipeline_state`` is our ``EnvState``. Brax actions (tanh-normal, in [-1, 1])
go through the same affine map onto ``[env.action_low, env.action_high]`` as our learner
(``ppo.resolve_action_map``). Our env auto-resets inside ``step``, so no
``EpisodeWrapper``/``AutoResetWrapper``: we pass ``wrap_env=False`` and apply
``VmapWrapper`` ourselves (brax 0.14.2 then calls ``env.reset(keys[num_envs])`` under
``pmap`` over one device and ``env.step`` on the batch). ``info`` carries what brax's
rollout reads: ``truncation`` (our ``truncated``), ``episode_done`` and
``episode_metrics`` (running return/length). ``episode_length`` (our
``max_episode_steps``) is only passed because brax's Evaluator needs it.

Size mapping (one brax "training step" == one of our iterations):

* ``num_envs`` = N, ``unroll_length`` = T = ``agent.steps_per_iter``.
* ``batch_size * num_minibatches = N``: each training step collects exactly one unroll of
  N envs x T steps, the N·T samples of our iteration (brax's env_steps per training step
  = batch_size·unroll_length·num_minibatches).
* ``num_minibatches`` = round(T / ``actor_batch_size``) (largest divisor of N not above
  it), so a brax minibatch holds N·T/num_minibatches ≈ ``actor_batch_size``·N samples, our
  actor minibatch; ``num_updates_per_batch`` = ``actor_epochs``. With the g1 defaults
  (N=4096, T=32, 4·N, 5 epochs): batch_size 512, 8 minibatches x 5 = 40 SGD steps of
  16,384 samples, against our 40 actor steps of 16,384 + 32 critic steps of 8,192.
  Brax's steps update actor and critic together (one joint loss), ours separately.
* Networks: ``make_ppo_networks(policy_hidden_layer_sizes=actor_hidden,
  value_hidden_layer_sizes=critic_hidden, activation=relu)`` (ours are ReLU MLPs);
  observation normalisation on. Brax's policy head is 2·action_size (mean + std),
  optimiser Adam; other PPO numbers (gamma, lambda, clip) from our agent config.
  ``bootstrap_on_timeout`` is left off (brax default): brax masks truncated steps.

Brax 0.14.2 calls ``jax.device_put_replicated``, which JAX >= 0.10 removed; a shim
stacks the state on a new leading device axis through an identity ``pmap`` (so its
sharding matches pmap outputs and the training epoch compiles once). Brax runs on one
device (``max_devices_per_host=1``), as our learner does.
"""
from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _install_replicated_shim():
    import jax
    import jax.numpy as jnp
    from brax.training.agents.ppo import train as ppo_train

    if hasattr(jax, "device_put_replicated"):
        return
    axis = getattr(ppo_train, "_PMAP_AXIS_NAME", "i")

    def device_put_replicated(x, devices):
        # Stack copies on a new leading device axis and pass them through an identity pmap
        # with brax's axis name, so the result has exactly the sharding of brax's pmap outputs.
        # Otherwise (a plain device_put, or a pmap under another axis name) jax's pmap cache
        # misses on the 2nd training epoch, whose inputs are the 1st epoch's outputs, and the
        # whole training epoch compiles a second time (verified with JAX_LOG_COMPILES on CPU).
        stacked = jax.tree_util.tree_map(lambda a: jnp.stack([jnp.asarray(a)] * len(devices)), x)
        return jax.pmap(lambda t: t, axis_name=axis, devices=devices)(stacked)

    jax.device_put_replicated = device_put_replicated


def make_brax_env(env, params, action_offset, action_scale):
    """Single-env ``brax.envs.base.Env`` over our env; ``VmapWrapper`` it for training."""
    import jax.numpy as jnp
    from brax.envs.base import Env as BraxEnv, State

    offset, scale = jnp.asarray(action_offset), jnp.asarray(action_scale)

    class MimicBraxEnv(BraxEnv):
        @property
        def observation_size(self):
            return env.obs_size

        @property
        def action_size(self):
            return env.action_size

        @property
        def backend(self):
            return "mjx"

        def _state(self, s, ep_ret, ep_len, done):
            info = {"truncation": s.truncated.astype(jnp.float32), "episode_done": done,
                    "episode_metrics": {"sum_reward": ep_ret, "length": ep_len}}
            return State(pipeline_state=s, obs=s.obs, reward=s.reward.astype(jnp.float32), done=done,
                         metrics=dict(s.metrics), info=info)

        def reset(self, rng):
            s = env.reset(params, rng)
            z = jnp.zeros((), jnp.float32)
            return self._state(s, z, z, z)

        def step(self, state, action):
            s = env.step(params, state.pipeline_state, offset + scale * action)
            done = s.done.astype(jnp.float32)
            prev = state.info["episode_done"]
            em = state.info["episode_metrics"]
            ep_ret = em["sum_reward"] * (1.0 - prev) + s.reward
            ep_len = em["length"] * (1.0 - prev) + 1.0
            return self._state(s, ep_ret, ep_len, done)

    return MimicBraxEnv()


def brax_sizes(num_envs: int, T: int, actor_batch_mult: float):
    """(batch_size, num_minibatches) with batch_size*num_minibatches == num_envs."""
    target = max(1, int(round(T / actor_batch_mult)))
    nmb = max(d for d in range(1, min(target, num_envs) + 1) if num_envs % d == 0)
    return num_envs // nmb, nmb


def bench_bare(env, params, N, T, offset, scale, seconds, seed):
    import jax
    import jax.numpy as jnp

    v_reset = jax.jit(jax.vmap(env.reset, in_axes=(None, 0)))
    v_step = jax.vmap(env.step, in_axes=(None, 0, 0))
    off, sc = jnp.asarray(offset), jnp.asarray(scale)

    @jax.jit
    def roll(params, state, key):
        def body(st, k):
            a = jax.random.uniform(k, (N, env.action_size), minval=-1.0, maxval=1.0)
            return v_step(params, st, off + sc * a), None
        st, _ = jax.lax.scan(body, state, jax.random.split(key, T))
        return st

    state = v_reset(params, jax.random.split(jax.random.PRNGKey(seed), N))
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    state = roll(params, state, jax.random.PRNGKey(seed + 1))
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    times, i = [], 0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        state = roll(params, state, jax.random.PRNGKey(seed + 2 + i))
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
        i += 1
    med = statistics.median(times)
    done_frac = float(jnp.mean(state.done.astype(jnp.float32)))
    return {"sps": N * T / med, "compile_s": max(first - med, 0.0), "calls": len(times),
            "total_sps": N * T * len(times) / sum(times), "done_frac_last": done_frac}


def bench_ours(env, params, cfg, seconds, seed):
    import jax

    from mjxmimic.learning.ppo import make_trainer

    N, T = cfg.num_envs, cfg.steps_per_iter
    trainer = make_trainer(env, params, cfg)
    t0 = time.perf_counter()
    ts = trainer.init(jax.random.PRNGKey(seed))
    jax.block_until_ready(ts)
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts, m = trainer.iteration(ts)
    jax.block_until_ready(m)
    first = time.perf_counter() - t0
    times = []
    t_start = time.perf_counter()
    t_end = t_start + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        ts, m = trainer.iteration(ts)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start
    med = statistics.median(times)
    out = {"sps": N * T * len(times) / wall, "median_sps": N * T / med, "iter_s": med,
           "compile_s": max(first - med, 0.0), "init_s": init_s, "iters": len(times),
           "episode_length": float(m["episode_length"]), "reward_mean": float(m["reward_mean"])}
    del ts, m, trainer
    return out


def bench_brax(env, params, cfg, seconds, seed, est_iter_s, epochs=4):
    import jax
    from brax.envs.wrappers.training import VmapWrapper
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo

    from mjxmimic.learning.ppo import resolve_action_map

    _install_replicated_shim()
    N, T = cfg.num_envs, cfg.steps_per_iter
    offset, scale = resolve_action_map(env, cfg)
    benv = VmapWrapper(make_brax_env(env, params, offset, scale))
    batch_size, nmb = brax_sizes(N, T, cfg.actor_batch_size)
    # `epochs` timed epochs after one compile epoch, together ~seconds of training.
    steps_per_epoch = max(1, int(round(seconds / max(est_iter_s, 1e-6) / epochs)))
    num_evals = epochs + 2  # progress_fn after each of (num_evals - 1) epochs
    num_timesteps = (num_evals - 1) * steps_per_epoch * N * T
    factory = functools.partial(ppo_networks.make_ppo_networks,
                                policy_hidden_layer_sizes=tuple(cfg.actor_hidden),
                                value_hidden_layer_sizes=tuple(cfg.critic_hidden),
                                activation=jax.nn.relu)
    calls = []

    def progress(num_steps, metrics):
        calls.append((time.perf_counter(), int(num_steps), float(metrics.get("training/sps", float("nan")))))
        print(f"  brax: {num_steps:>12,d} env steps  t={calls[-1][0] - t_start:7.1f}s  "
              f"epoch sps={calls[-1][2]:,.0f}", flush=True)

    print(f"brax PPO: batch_size={batch_size} num_minibatches={nmb} num_updates_per_batch={cfg.actor_epochs} "
          f"unroll_length={T}; {num_evals - 1} epochs x {steps_per_epoch} training steps "
          f"(num_timesteps={num_timesteps:,})", flush=True)
    t_start = time.perf_counter()
    ppo.train(
        environment=benv, wrap_env=False, num_timesteps=num_timesteps, max_devices_per_host=1,
        num_envs=N, episode_length=int(env.max_episode_steps), action_repeat=1,
        unroll_length=T, batch_size=batch_size, num_minibatches=nmb, num_updates_per_batch=cfg.actor_epochs,
        learning_rate=float(cfg.actor_optimizer.learning_rate), entropy_cost=float(cfg.action_entropy_weight),
        discounting=cfg.gamma, gae_lambda=cfg.td_lambda, clipping_epsilon=cfg.ppo_clip_ratio,
        normalize_observations=True, reward_scaling=1.0, network_factory=factory, seed=seed,
        num_evals=num_evals, run_evals=False, num_eval_envs=1, progress_fn=progress)
    t_total = time.perf_counter() - t_start
    if len(calls) < 2:
        raise RuntimeError(f"brax progress_fn called {len(calls)} times; need >= 2")
    (t1, s1, _), (tn, sn, _) = calls[0], calls[-1]
    epoch_sps = [c[2] for c in calls[1:]]
    if len(epoch_sps) >= 2 and epoch_sps[0] < 0.5 * statistics.median(epoch_sps[1:]):
        print(f"WARNING: brax epoch 2 ran at {epoch_sps[0]:,.0f} steps/s against a median "
              f"{statistics.median(epoch_sps[1:]):,.0f} later: likely a recompile inside the timed window",
              flush=True)
    steady_epoch_s = steps_per_epoch * N * T / statistics.median(epoch_sps)
    return {"sps": (sn - s1) / (tn - t1), "median_epoch_sps": statistics.median(epoch_sps),
            "first_epoch_s": t1 - t_start, "compile_s": max(t1 - t_start - steady_epoch_s, 0.0),
            "total_s": t_total, "timed_steps": sn - s1, "timed_s": tn - t1,
            "batch_size": batch_size, "num_minibatches": nmb}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="g1_walk", help="config name or YAML path")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--num-envs", type=int, help="env.num_envs (default: the config's)")
    ap.add_argument("--seconds", type=float, default=60.0, help="timed seconds per learner")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="bare,ours,brax", help="comma list of bare,ours,brax")
    args = ap.parse_args(argv)

    import jax

    from mjxmimic.envs.registry import make_env, parse_overrides
    from mjxmimic.learning.ppo import PPOConfig, resolve_action_map

    overrides = parse_overrides(args.set)
    if args.num_envs is not None:
        overrides["env.num_envs"] = str(args.num_envs)
    env, params, cfg = make_env(args.env, overrides)
    if type(cfg) is not PPOConfig:
        print(f"error: agent config is {type(cfg).__name__}; this benchmark compares plain PPO", file=sys.stderr)
        return 2
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    N, T = cfg.num_envs, cfg.steps_per_iter
    import brax
    dev = jax.devices()[0]
    print(f"{dev.platform}: {getattr(dev, 'device_kind', dev)} | jax {jax.__version__} brax {brax.__version__} | "
          f"env {args.env}: obs {env.obs_size} act {env.action_size} substeps {env.num_substeps} | "
          f"N={N} T={T} actor {tuple(cfg.actor_hidden)} critic {tuple(cfg.critic_hidden)}", flush=True)

    res = {}
    t_all = time.perf_counter()
    if "bare" in parts:
        off, sc = resolve_action_map(env, cfg)
        res["bare"] = bench_bare(env, params, N, T, off, sc, 0.75 * args.seconds, args.seed)
        print(f"bare env.step: {res['bare']['sps']:,.0f} env steps/s (compile {res['bare']['compile_s']:.1f}s)",
              flush=True)
    if "ours" in parts:
        res["ours"] = bench_ours(env, params, cfg, args.seconds, args.seed)
        print(f"ours: {res['ours']['sps']:,.0f} env steps/s over {res['ours']['iters']} iterations "
              f"(compile {res['ours']['compile_s']:.1f}s)", flush=True)
    if "brax" in parts:
        est = res["ours"]["iter_s"] if "ours" in res else (N * T / res["bare"]["sps"] * 2 if "bare" in res else 1.0)
        res["brax"] = bench_brax(env, params, cfg, args.seconds, args.seed, est)
        print(f"brax: {res['brax']['sps']:,.0f} env steps/s (compile {res['brax']['compile_s']:.1f}s)", flush=True)

    ref = res.get("bare", {}).get("sps")
    pct = lambda s: f"{s / ref:.0%}" if ref else "-"
    print(f"\nTotal wall {time.perf_counter() - t_all:.0f}s. {dev.platform} ({getattr(dev, 'device_kind', '')}), "
          f"{args.env}, {N} envs x {T} steps per update.\n")
    print("| path | env steps/s | % of bare env.step | compile s | notes |")
    print("|---|---|---|---|---|")
    if "bare" in res:
        b = res["bare"]
        print(f"| bare vmapped env.step, random actions | {b['sps']:,.0f} | 100% | {b['compile_s']:.1f} | "
              f"median of {b['calls']} scans of {T} steps |")
    if "ours" in res:
        o = res["ours"]
        na = math.ceil(N * T / math.ceil(cfg.actor_batch_size * N)) * cfg.actor_epochs
        nc = math.ceil(N * T / math.ceil(cfg.critic_batch_size * N)) * cfg.critic_epochs
        print(f"| ours (mjxmimic PPO) | {o['sps']:,.0f} | {pct(o['sps'])} | {o['compile_s']:.1f} | "
              f"{o['iters']} iterations, {o['iter_s']:.3f} s median; {na} actor + {nc} critic SGD steps |")
    if "brax" in res:
        r = res["brax"]
        print(f"| brax PPO (ppo.train, wrap_env=False) | {r['sps']:,.0f} | {pct(r['sps'])} | {r['compile_s']:.1f} | "
              f"{r['timed_steps']:,} steps in {r['timed_s']:.1f}s after the 1st epoch; brax training/sps median "
              f"{r['median_epoch_sps']:,.0f}; batch {r['batch_size']} x {r['num_minibatches']} minibatches x "
              f"{cfg.actor_epochs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

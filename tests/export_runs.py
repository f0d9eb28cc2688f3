"""A tiny exported run for the export and sim2sim tests: config.yaml as train writes it, a freshly
initialised TrainState (with a non-trivial observation normaliser) saved by the Checkpointer,
exported with ``python -m mjxmimic.export`` -- faster than a training iteration, and the same
restore path."""
import jax
import jax.numpy as jnp
import yaml

from mjxmimic import export
from mjxmimic.envs.registry import apply_overrides, load_config, read_config

TINY = {"env.num_envs": "2", "agent.steps_per_iter": "2", "agent.actor_hidden": "[16, 8]",
        "agent.critic_hidden": "[8]", "env.episode_length": "1.0"}


def exported_run(d, config: str, overrides: dict, trainer_init: bool = True):
    """(run dir, export dir, (env, params, agent_cfg, trainer, train_state)) of a run of ``config``
    with ``overrides`` made in folder ``d``. ``trainer_init`` False: the TrainState is zeros of the
    trainer's state shapes with the actor initialised by its module (no env reset to compile)."""
    from mjxmimic.learning import Checkpointer
    from mjxmimic.learning import normalizer as nl
    from mjxmimic.train import build
    raw = apply_overrides(read_config(load_config(config, overrides)["path"]), overrides)
    (d / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env, params, agent_cfg, trainer = build(d)
    if trainer_init:
        ts = trainer.init(jax.random.PRNGKey(0))
    else:
        from mjxmimic.learning.ppo import actor_obs_size
        ts = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), trainer.abstract_state())
        ts = ts.replace(actor_params=trainer.actor.init(jax.random.PRNGKey(0),
                                                        jnp.zeros((1, actor_obs_size(env)), jnp.float32)))
    # a normaliser far from the identity, so that ONNX must carry it (and its clip) exactly
    x = jax.random.normal(jax.random.PRNGKey(1), (64, env.obs_size)) * 3.0 + 1.0
    ts = ts.replace(obs_norm=nl.update(ts.obs_norm, x), iteration=jnp.asarray(1, jnp.int32))
    with Checkpointer(str(d / "checkpoints")) as ck:
        ck.save(ts)
    out = d / "deploy"
    assert export.main([str(d), "--out", str(out)]) == 0
    return d, out, (env, params, agent_cfg, trainer, ts)

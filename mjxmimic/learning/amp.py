"""AMP (MimicKit ``AMPAgent``) = PPO + a discriminator reward hook and update.

Env requirements, beyond the core contract:
  * ``env.disc_obs_size``;
  * ``state.info["disc_obs"]`` on every state returned by ``step``: the agent's disc obs
    of the step just taken (pre-auto-reset, as MimicKit records it before resetting);
  * ``env.demo_disc_obs(env_params, key, n) -> [n, disc_obs_size]`` demo samples, in-graph.

Per iteration (all inside the PPO ``iteration`` jit), in MimicKit's order:
  prepare: draw T·N demo disc obs; push agent disc obs into the replay buffer; style
           reward from the *pre-update* discriminator/normaliser; mix with the task reward.
  (PPO critic + actor updates on the mixed reward)
  update:  discriminator minibatch SGD; then the disc-obs normaliser update from the
           agent and demo disc obs of this iteration (until ``normalizer_samples``).

ADD (``learning.add``) reuses all of it through :class:`AMPExtension`'s hooks (``norm_*``,
``normalize``, ``demo_samples``, ``demo_minibatch``); ASE (``learning.ase``) extends ``prepare``
and ``update`` with its encoder and adds PPO's ``actor_loss_term`` (the diversity loss).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from mjxmimic.learning import normalizer as normlib
from mjxmimic.learning.networks import Discriminator, disc_logit_weights
from mjxmimic.learning.optim import OptimizerConfig, make_optimizer
from mjxmimic.learning.ppo import (Minibatches, PPOConfig, Trainer, Transition, make_trainer, num_minibatch_steps,
                                   sgd_scan)


@dataclass(frozen=True)
class AMPConfig(PPOConfig):
    """PPO fields plus MimicKit's ``amp_*_agent.yaml`` discriminator settings."""

    disc_hidden: Sequence[int] = (1024, 512)
    disc_init_output_scale: float = 1.0
    disc_optimizer: OptimizerConfig = OptimizerConfig("sgd", 2.5e-4, weight_decay=1e-4)
    disc_epochs: int = 2
    disc_batch_size: float = 2.0  # × num_envs agent samples (+ as many replayed) per step
    disc_buffer_size: int = 200_000
    # Agent samples pushed into the replay buffer per iteration once it is full (before
    # that, all T·N samples are pushed); each disc minibatch also replays as many samples
    # as it has fresh agent samples, drawn uniformly from the filled buffer.
    disc_replay_samples: int = 1000
    disc_logit_reg: float = 0.01
    disc_grad_penalty: float = 10.0
    disc_reward_scale: float = 2.0
    task_reward_weight: float = 0.0
    disc_reward_weight: float = 1.0
    disc_obs_clip: float = 10.0
    # Not MimicKit's: Gaussian noise of this std (in normalised units) on both the agent and the
    # demo inputs of the discriminator's loss ("instance noise"), never on the style reward's
    # inputs. Two close distributions overlap under it, so the discriminator cannot separate them
    # by differences smaller than the noise (e.g. servo lag; benchmarks/RESULTS.md). 0: off.
    disc_input_noise: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.disc_input_noise < 0:
            raise ValueError("disc_input_noise must be >= 0")


# --------------------------------------------------------------------------- replay buffer
@struct.dataclass
class ReplayBuffer:
    """Fixed-size ring buffer of agent disc obs living in the TrainState."""

    data: jax.Array  # [capacity, dim]
    head: jax.Array  # int32 next write slot
    count: jax.Array  # int32 filled slots (saturates at capacity)

    def checkpoint_light(self) -> "ReplayBuffer":
        """An empty buffer for light checkpoints (see ``learning.checkpoint``): zero-size data
        (not saved) and count 0, so a resumed run refills it from its next rollouts."""
        return ReplayBuffer(np.zeros((0,) + tuple(self.data.shape[1:]), self.data.dtype),
                            np.zeros((), np.int32), np.zeros((), np.int32))


def replay_init(capacity: int, dim: int) -> ReplayBuffer:
    return ReplayBuffer(jnp.zeros((capacity, dim), jnp.float32), jnp.zeros((), jnp.int32),
                        jnp.zeros((), jnp.int32))


def replay_push(buf: ReplayBuffer, x: jax.Array, key, samples_when_full: int) -> ReplayBuffer:
    """Push a random subset of ``x`` ([n, dim]): all of it (up to capacity) while the buffer
    is not yet full, ``samples_when_full`` of it afterwards (MimicKit ``_store_disc_replay_data``).

    Static shapes: a fixed block of min(n, capacity) slots is rewritten, but only the first
    k of them take new rows; the others keep their old contents.
    """
    capacity = buf.data.shape[0]
    n = min(x.shape[0], capacity)
    x = jax.random.permutation(key, x)[:n]
    k = jnp.where(buf.count >= capacity, min(n, samples_when_full), n)
    slots = (buf.head + jnp.arange(n)) % capacity
    keep_new = (jnp.arange(n) < k)[:, None]
    data = buf.data.at[slots].set(jnp.where(keep_new, x, buf.data[slots]))
    return ReplayBuffer(data, (buf.head + k) % capacity, jnp.minimum(buf.count + k, capacity))


def replay_sample(buf: ReplayBuffer, key, shape) -> jax.Array:
    """Uniform indices into the filled part (call after at least one push)."""
    return jax.random.randint(key, shape, 0, jnp.maximum(buf.count, 1))


# --------------------------------------------------------------------------- losses
def style_reward(logits, scale: float = 2.0):
    """r = -log(max(1 - sigmoid(D), 1e-4)) · scale, written as min(softplus(D), log 1e4)
    (identical maths, but no 1 - sigmoid round-off for large logits)."""
    return jnp.minimum(jax.nn.softplus(logits), -jnp.log(1e-4)) * scale


def disc_loss(apply_fn, params, agent_obs, demo_obs, grad_penalty: float = 10.0, logit_reg: float = 0.01):
    """MimicKit ``_compute_disc_loss`` on already-normalised inputs; returns (loss, info).

    loss = ½(BCE(D(agent), 0) + BCE(D(demo), 1))
         + grad_penalty · ½(E‖∂D/∂x‖²_demo + E‖∂D/∂x‖²_agent)   # MimicKit penalises BOTH the
           # demo samples and the agent samples (fresh + replayed), each averaged separately
         + logit_reg · ‖w_logits‖²                              # output-layer kernel only
    (weight decay is in the disc optimiser). ``apply_fn(params, x) -> logits [B]``.
    """

    def logits_and_input_grads(x):
        # Samples are independent, so ∂ΣD/∂x gives every per-sample input gradient at once.
        logits, vjp = jax.vjp(lambda x_: apply_fn(params, x_), x)
        (grads,) = vjp(jnp.ones_like(logits))
        return logits, jnp.sum(jnp.square(grads), axis=-1)

    agent_logit, agent_g2 = logits_and_input_grads(agent_obs)
    demo_logit, demo_g2 = logits_and_input_grads(demo_obs)
    bce = 0.5 * (jnp.mean(jax.nn.softplus(agent_logit)) + jnp.mean(jax.nn.softplus(-demo_logit)))
    gp = 0.5 * (jnp.mean(demo_g2) + jnp.mean(agent_g2))
    logit_loss = jnp.sum(jnp.square(disc_logit_weights(params)))
    loss = bce + grad_penalty * gp + logit_reg * logit_loss
    info = {
        "disc_bce": bce,
        "disc_grad_penalty": gp,
        "disc_logit_loss": logit_loss,
        "disc_agent_acc": jnp.mean((agent_logit < 0).astype(jnp.float32)),
        "disc_demo_acc": jnp.mean((demo_logit > 0).astype(jnp.float32)),
        "disc_agent_logit": jnp.mean(agent_logit),
        "disc_demo_logit": jnp.mean(demo_logit),
    }
    return loss, info


# --------------------------------------------------------------------------- extension
@struct.dataclass
class AMPState:
    disc_params: Any
    disc_opt_state: Any
    disc_norm: Any  # normlib.Normalizer (AMP) or normlib.DiffNormalizer (ADD)
    replay: ReplayBuffer


@dataclass(frozen=True)
class AMPExtension:
    env: Any
    cfg: AMPConfig
    # The PPO update's minibatch layout (one block per device of the env mesh); None: one block.
    minibatches: Optional[Minibatches] = None

    @property
    def layout(self) -> Minibatches:
        return self.minibatches or Minibatches.of(self.cfg)

    @property
    def disc(self) -> Discriminator:
        return Discriminator(tuple(self.cfg.disc_hidden), self.cfg.disc_init_output_scale)

    @property
    def disc_opt(self):
        return make_optimizer(self.cfg.disc_optimizer)

    # ---- hooks (ADD, ``learning.add``, overrides them) ---------------------------------
    def norm_init(self, dim: int):
        return normlib.init(dim)

    def normalize(self, norm, x):
        return normlib.normalize(norm, x, self.cfg.disc_obs_clip)

    def norm_update(self, norm, agent, demo, enabled):
        """MimicKit records both the agent's and the demo's disc obs."""
        return normlib.update(norm, jnp.concatenate([agent, demo], axis=0), enabled)

    def demo_samples(self, env_params, key, n: int):
        """This iteration's positive samples: n demo disc obs from the env."""
        return self.env.demo_disc_obs(env_params, key, n)

    def demo_blocks(self, demo):
        """The demo samples in the minibatch layout (``Minibatches.layout``), once per update."""
        return self.layout.layout(demo)

    def demo_minibatch(self, demo, idx):
        """The positives of one disc minibatch (``idx``: its agent sample indices per block)."""
        return Minibatches.take(demo, idx)

    # ---- the extension contract (learning.ppo) -------------------------------------------
    def init(self, key, env_params) -> AMPState:
        dim = self.env.disc_obs_size
        params = self.disc.init(key, jnp.zeros((1, dim), jnp.float32))
        return AMPState(params, self.disc_opt.init(params), self.norm_init(dim),
                        replay_init(self.cfg.disc_buffer_size, dim))

    def collect(self, next_state):
        return next_state.info["disc_obs"]

    def prepare(self, ext: AMPState, traj: Transition, env_params, key):
        cfg = self.cfg
        T, N = traj.reward.shape
        k_demo, k_push = jax.random.split(key)
        agent = traj.extra.reshape(T * N, -1)
        demo = self.demo_samples(env_params, k_demo, T * N)
        replay = replay_push(ext.replay, agent, k_push, cfg.disc_replay_samples)
        logits = self.disc.apply(ext.disc_params, self.normalize(ext.disc_norm, agent))
        r_style = style_reward(logits, cfg.disc_reward_scale).reshape(T, N)
        rewards = cfg.task_reward_weight * traj.reward + cfg.disc_reward_weight * r_style
        # The discriminator as the style reward uses it: this iteration's agent samples, clean
        # inputs, before its update (disc_agent_acc is over the loss's minibatches, replay and
        # disc_input_noise included).
        metrics = {"style_reward_mean": jnp.mean(r_style), "style_reward_std": jnp.std(r_style),
                   "disc_agent_acc_fresh": jnp.mean((logits < 0).astype(jnp.float32))}
        return ext.replace(replay=replay), rewards, demo, metrics

    def update(self, ext: AMPState, traj: Transition, demo, norm_enabled, key):
        cfg = self.cfg
        T, N = traj.reward.shape
        agent = traj.extra.reshape(T * N, -1)
        mb = self.layout
        agent_blocks, demo_blocks = mb.layout(agent), self.demo_blocks(demo)
        batch, steps = num_minibatch_steps(T * N, N, cfg.disc_batch_size, cfg.disc_epochs)
        k_idx, k_rep = jax.random.split(key)
        idx = mb.indices(k_idx, batch, steps)
        rep_idx = replay_sample(ext.replay, k_rep, idx.shape)  # each device replays its share
        norm = lambda x: self.normalize(ext.disc_norm, x)
        noise = cfg.disc_input_noise
        xs = (idx, rep_idx)
        if noise > 0:  # a key per minibatch (fold_in: the other draws stay as without noise)
            xs = xs + (jax.random.split(jax.random.fold_in(key, 1), idx.shape[0]),)

        def loss_fn(params, ix):
            i, ri = ix[:2]
            replayed = ext.replay.data[ri.reshape(-1)]
            agent_b = norm(jnp.concatenate([Minibatches.take(agent_blocks, i), replayed], axis=0))
            demo_b = norm(self.demo_minibatch(demo_blocks, i))
            if noise > 0:
                ka, kd = jax.random.split(ix[2])
                agent_b = agent_b + noise * jax.random.normal(ka, agent_b.shape, agent_b.dtype)
                demo_b = demo_b + noise * jax.random.normal(kd, demo_b.shape, demo_b.dtype)
            return disc_loss(self.disc.apply, params, agent_b, demo_b, cfg.disc_grad_penalty, cfg.disc_logit_reg)

        params, opt_state, info = sgd_scan(self.disc_opt, loss_fn, ext.disc_params, ext.disc_opt_state, xs)
        info["disc_loss"] = info.pop("loss")
        disc_norm = self.norm_update(ext.disc_norm, agent, demo, norm_enabled)
        return ext.replace(disc_params=params, disc_opt_state=opt_state, disc_norm=disc_norm), info


def make_amp_trainer(env, env_params, cfg: AMPConfig, donate: bool = False, mesh=None) -> Trainer:
    """PPO trainer with the AMP extension; ``train_state.ext`` is an ``AMPState``."""
    missing = [a for a in ("disc_obs_size", "demo_disc_obs") if not hasattr(env, a)]
    if missing:
        raise TypeError(f"AMP needs env attributes {missing} (and state.info['disc_obs'])")
    ext = AMPExtension(env, cfg, Minibatches.of(cfg, mesh))
    return make_trainer(env, env_params, cfg, extension=ext, donate=donate, mesh=mesh)


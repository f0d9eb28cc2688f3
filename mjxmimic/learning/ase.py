"""ASE (MimicKit ``ASEAgent``): AMP plus a skill encoder and a diversity loss.

The env (``envs.ase.ASEEnv``) draws a latent z per env and puts it in the observation, so
the actor and critic are PPO's, on [obs | z]; ``env.latent(obs)`` reads z back. On top of
:class:`~mjxmimic.learning.amp.AMPExtension` (discriminator, replay, disc-obs normaliser):

  * encoder q = normalize(E(x̂)), x̂ the normalised disc obs of s' (a net of its own, not the
    disc's trunk); loss mean(-z·q) on the agent's samples, minibatch SGD after the disc update
    and before the normaliser update (MimicKit's order);
  * reward r = task_w·r_task + disc_w·r_disc + enc_w·max(0, z·q), with the pre-update nets;
  * diversity loss in the actor loss: for each minibatch state a fresh z',
    a_diff = mean_dims(μ(s,z') - μ(s,z))², z_diff = ½ - ½ z·z',
    L_div = (target - a_diff/(z_diff + 1e-5))², weighted by ``diversity_weight``; gradients
    flow through both means.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import struct

from mjxmimic.envs.ase import sample_latent
from mjxmimic.learning.amp import AMPConfig, AMPExtension, AMPState
from mjxmimic.learning.networks import Encoder
from mjxmimic.learning.optim import OptimizerConfig, make_optimizer
from mjxmimic.learning.ppo import (Minibatches, Trainer, actor_input, actor_obs_size, make_trainer,
                                   num_minibatch_steps, sgd_scan)

__all__ = ["ASEConfig", "ASEState", "ASEExtension", "make_ase_trainer", "encoder_loss", "encoder_reward",
           "diversity_loss"]


@dataclass(frozen=True)
class ASEConfig(AMPConfig):
    """AMP's fields plus MimicKit's ``ase_humanoid_agent.yaml`` encoder and diversity settings."""

    disc_reward_weight: float = 0.5
    enc_hidden: Sequence[int] = (1024, 512)
    enc_init_output_scale: float = 0.1
    enc_optimizer: OptimizerConfig = OptimizerConfig("adam", 5e-5)
    enc_epochs: int = 2
    enc_batch_size: float = 2.0     # × num_envs agent samples per encoder step
    enc_reward_weight: float = 0.5
    diversity_weight: float = 0.01
    diversity_target: float = 1.0


def encoder_reward(z, q):
    """r_enc = max(0, z·q)."""
    return jnp.maximum(jnp.sum(z * q, axis=-1), 0.0)


def encoder_loss(z, q):
    """mean(-z·q)."""
    return -jnp.mean(jnp.sum(z * q, axis=-1))


def diversity_loss(mean, mean_new, z, z_new, target: float = 1.0):
    """mean over samples of (target - a_diff / (z_diff + 1e-5))²."""
    a_diff = jnp.mean(jnp.square(mean_new - mean), axis=-1)
    z_diff = 0.5 - 0.5 * jnp.sum(z * z_new, axis=-1)
    return jnp.mean(jnp.square(target - a_diff / (z_diff + 1e-5)))


@struct.dataclass
class ASEState(AMPState):
    enc_params: Any
    enc_opt_state: Any


@dataclass(frozen=True)
class ASEExtension(AMPExtension):
    cfg: ASEConfig

    @property
    def encoder(self) -> Encoder:
        return Encoder(self.env.latent_size, tuple(self.cfg.enc_hidden), self.cfg.enc_init_output_scale)

    @property
    def enc_opt(self):
        return make_optimizer(self.cfg.enc_optimizer)

    def init(self, key, env_params) -> ASEState:
        k_amp, k_enc = jax.random.split(key)
        amp = super().init(k_amp, env_params)
        enc = self.encoder.init(k_enc, jnp.zeros((1, self.env.disc_obs_size), jnp.float32))
        return ASEState(amp.disc_params, amp.disc_opt_state, amp.disc_norm, amp.replay, enc, self.enc_opt.init(enc))

    def prepare(self, ext: ASEState, traj, env_params, key):
        ext, rewards, demo, metrics = super().prepare(ext, traj, env_params, key)
        T, N = traj.reward.shape
        q = self.encoder.apply(ext.enc_params, self.normalize(ext.disc_norm, traj.extra.reshape(T * N, -1)))
        r_enc = encoder_reward(self.env.latent(traj.obs).reshape(T * N, -1), q).reshape(T, N)
        metrics = {**metrics, "enc_reward_mean": jnp.mean(r_enc), "enc_reward_std": jnp.std(r_enc)}
        return ext, rewards + self.cfg.enc_reward_weight * r_enc, demo, metrics

    def update(self, ext: ASEState, traj, demo, norm_enabled, key):
        # The encoder first: AMP's update ends with the disc-obs normaliser update, which MimicKit
        # runs after the encoder's (the two nets are independent, so only this order matters).
        cfg = self.cfg
        T, N = traj.reward.shape
        mb = self.layout
        x = mb.layout(self.normalize(ext.disc_norm, traj.extra.reshape(T * N, -1)))
        z = mb.layout(self.env.latent(traj.obs).reshape(T * N, -1))
        batch, steps = num_minibatch_steps(T * N, N, cfg.enc_batch_size, cfg.enc_epochs)
        k_enc, k_amp = jax.random.split(key)

        def loss_fn(params, idx):
            return encoder_loss(Minibatches.take(z, idx), self.encoder.apply(params, Minibatches.take(x, idx))), {}

        enc_params, enc_opt_state, info = sgd_scan(self.enc_opt, loss_fn, ext.enc_params, ext.enc_opt_state,
                                                   mb.indices(k_enc, batch, steps))
        ext, amp_info = super().update(ext.replace(enc_params=enc_params, enc_opt_state=enc_opt_state), traj, demo,
                                       norm_enabled, k_amp)
        return ext, {**amp_info, "enc_loss": info["loss"]}

    def actor_loss_term(self, actor_apply, actor_params, obs, mean, obs_norm, key):
        """``diversity_weight`` · L_div, the PPO hook (``learning.ppo``)."""
        cfg = self.cfg
        z_new = sample_latent(key, self.env.latent_size, obs.shape[:1])
        obs_new = self.env.with_latent(obs, z_new)
        mean_new, _ = actor_apply(actor_params, actor_input(obs_norm, obs_new, actor_obs_size(self.env), cfg.obs_clip))
        loss = diversity_loss(mean, mean_new, self.env.latent(obs), z_new, cfg.diversity_target)
        return cfg.diversity_weight * loss, {"diversity_loss": loss}


def make_ase_trainer(env, env_params, cfg: ASEConfig, donate: bool = False, mesh=None) -> Trainer:
    """PPO trainer with the ASE extension; ``train_state.ext`` is an ``ASEState``."""
    missing = [a for a in ("disc_obs_size", "demo_disc_obs", "latent_size", "latent", "with_latent")
               if not hasattr(env, a)]
    if missing:
        raise TypeError(f"ASE needs an ASE env (envs.ase.ASEEnv); this one lacks {missing}")
    ext = ASEExtension(env, cfg, Minibatches.of(cfg, mesh))
    return make_trainer(env, env_params, cfg, extension=ext, donate=donate, mesh=mesh)

"""ADD (MimicKit ``ADDAgent``): AMP whose discriminator judges tracking errors.

The env's ``state.info["disc_obs"]`` is the difference d = o_ref - o_sim between the
reference's and the simulated character's disc obs at the same motion time
(``envs.add.ADDEnv``). The discriminator's only positive sample is d = 0 (perfect tracking),
one row per minibatch; its negatives are the agent's d (fresh plus as many replayed). d is
normalised by MimicKit's ``DiffNormalizer`` (d / max(E|d|, 1e-4), agent samples only), so 0
stays 0. Loss (``learning.amp.disc_loss`` with a one-row positive set):

    ½[BCE(D(0), 1) + mean BCE(D(d̂), 0)] + gp·½(mean‖∇D(d̂)‖² + ‖∇D(0)‖²) + 0.01‖W_logit‖²

and reward r = task_w·r_env + disc_w·2·(-log max(1 - σ(D(d̂)), 1e-4)), both as AMP's. Everything
else (replay buffer, minibatches, optimiser, schedule) is :class:`~mjxmimic.learning.amp.AMPExtension`'s.

Env contract: ``env.disc_obs_size`` and ``state.info["disc_obs"]`` (d, pre-auto-reset).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from mjxmimic.learning import normalizer as normlib
from mjxmimic.learning.amp import AMPConfig, AMPExtension
from mjxmimic.learning.ppo import Minibatches, Trainer, make_trainer

__all__ = ["ADDConfig", "ADDExtension", "make_add_trainer"]


@dataclass(frozen=True)
class ADDConfig(AMPConfig):
    """AMP's fields with MimicKit's ``add_g1_agent.yaml`` gradient penalty (2, AMP's is 10).
    ``disc_obs_clip`` is not used: the diff normaliser does not clip."""

    disc_grad_penalty: float = 2.0


@dataclass(frozen=True)
class ADDExtension(AMPExtension):
    """AMP's discriminator machinery with ADD's positives and normaliser."""

    def norm_init(self, dim: int):
        return normlib.diff_init(dim)

    def normalize(self, norm, x):
        return normlib.diff_normalize(norm, x)

    def norm_update(self, norm, agent, demo, enabled):
        return normlib.diff_update(norm, agent, enabled)   # the zero positive is not recorded

    def demo_samples(self, env_params, key, n: int):
        return jnp.zeros((1, self.env.disc_obs_size), jnp.float32)

    def demo_blocks(self, demo):
        return demo

    def demo_minibatch(self, demo, idx):
        return demo


def make_add_trainer(env, env_params, cfg: ADDConfig, donate: bool = False, mesh=None) -> Trainer:
    """PPO trainer with the ADD extension; ``train_state.ext`` is an ``AMPState``."""
    if not hasattr(env, "disc_obs_size"):
        raise TypeError("ADD needs env.disc_obs_size (and state.info['disc_obs'] = o_ref - o_sim)")
    ext = ADDExtension(env, cfg, Minibatches.of(cfg, mesh))
    return make_trainer(env, env_params, cfg, extension=ext, donate=donate, mesh=mesh)

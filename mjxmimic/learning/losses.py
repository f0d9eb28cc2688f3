"""Pure RL math shared by PPO and AMP: return targets, advantages, PPO losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from mjxmimic.learning.networks import gaussian_log_prob


def td_lambda_returns(rewards, next_values, dones, gamma: float, lam: float):
    """TD(λ) return targets over time-major [T, ...] arrays (MimicKit ``compute_td_lambda_return``).

    G_t = r_t + γ((1-λ_t) V'_t + λ_t G_{t+1}), with λ_t = λ(1 - done_t) and the last step
    bootstrapped from V'_{T-1}. ``next_values`` must already be the *post-step* value:
    V(terminal_obs) for timeouts and ordinary steps, 0 for true terminations (see
    ``bootstrap_values``), so a done step never looks into the next (reset) episode.
    """
    dones = dones.astype(rewards.dtype)
    last = rewards[-1] + gamma * next_values[-1]

    def body(next_ret, xs):
        r, nv, d = xs
        lam_t = lam * (1.0 - d)
        ret = r + gamma * ((1.0 - lam_t) * nv + lam_t * next_ret)
        return ret, ret

    _, rets = jax.lax.scan(body, last, (rewards[:-1], next_values[:-1], dones[:-1]), reverse=True)
    return jnp.concatenate([rets, last[None]], axis=0)


def bootstrap_values(terminal_values, done, truncated):
    """V(s_{t+1}): zero on failure/success terminations, V(terminal_obs) on timeouts.

    MimicKit's success/fail values are r_succ/(1-γ) and r_fail/(1-γ) with both rewards 0.
    """
    terminated = jnp.logical_and(done, jnp.logical_not(truncated))
    return jnp.where(terminated, 0.0, terminal_values)


def normalize_advantages(adv, clip: float):
    """(adv - mean)/max(std, 1e-5) clipped to ±clip. std is Bessel-corrected as torch.std_mean."""
    mean = jnp.mean(adv)
    std = jnp.std(adv, ddof=1)
    norm = (adv - mean) / jnp.maximum(std, 1e-5)
    return jnp.clip(norm, -clip, clip), mean, std


def action_bound_loss(mean, low=-1.0, high=1.0):
    """Per-sample Σ_d of squared distance of the policy mean outside [low, high]."""
    below = jnp.minimum(mean - low, 0.0)
    above = jnp.maximum(mean - high, 0.0)
    return jnp.sum(jnp.square(below) + jnp.square(above), axis=-1)


def ppo_actor_loss(mean, log_std, actions, old_logp, adv, clip_ratio: float):
    """Clipped surrogate; returns (loss, diagnostics). Actions live in normalised space."""
    logp = gaussian_log_prob(actions, mean, log_std)
    log_ratio = logp - old_logp
    ratio = jnp.exp(log_ratio)
    surr = jnp.minimum(adv * ratio, adv * jnp.clip(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio))
    loss = -jnp.mean(surr)
    info = {
        "clip_frac": jnp.mean((jnp.abs(ratio - 1.0) > clip_ratio).astype(jnp.float32)),
        "imp_ratio": jnp.mean(ratio),
        # k3 estimator of KL(old || new): unbiased and always >= 0.
        "approx_kl": jnp.mean(ratio - 1.0 - log_ratio),
    }
    return loss, info

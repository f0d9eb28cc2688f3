"""Flax **linen** networks for PPO/AMP/ASE: Gaussian actor, critic, discriminator, encoder.

Linen (not nnx) because its params are plain pytrees: they live inside the
``TrainState``, go through ``lax.scan`` and orbax untouched, and ``apply`` is pure.

Initialisation follows MimicKit (``fc_2layers_1024units`` + its output heads), which
uses PyTorch ``nn.Linear`` defaults for hidden weights, i.e. U(-1/sqrt(fan_in),
1/sqrt(fan_in)), with biases zeroed.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

# torch.nn.Linear's default kaiming_uniform(a=sqrt(5)) == U(±1/sqrt(fan_in)).
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def symmetric_uniform(scale: float):
    """U(-scale, scale); flax's ``uniform`` is one-sided."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu, "tanh": jnp.tanh}


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    return name


class MLP(nn.Module):
    """Hidden layers only (no output head); ``hidden=()`` is the identity. ReLU is MimicKit's,
    ELU BeyondMimic's (rsl_rl)."""

    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for size in self.hidden:
            x = act(nn.Dense(size, kernel_init=torch_linear_init, bias_init=nn.initializers.zeros)(x))
        return x


class GaussianActor(nn.Module):
    """Diagonal Gaussian policy in the normalised action space; returns (mean, log_std).

    ``learn_std=False`` is MimicKit's ``actor_std_type: FIXED``: log-std is a constant,
    not a parameter, so no optimiser ever touches it. ``True`` is ``CONSTANT``: one
    learnable state-independent log-std per action dim.
    """

    action_size: int
    hidden: Sequence[int] = (1024, 512)
    init_output_scale: float = 0.01
    init_std: float = 0.05
    learn_std: bool = False
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        h = MLP(self.hidden, self.activation)(obs)
        # Small output init: the initial policy is ~zero-mean, so early actions stay in bounds.
        mean = nn.Dense(self.action_size, kernel_init=symmetric_uniform(self.init_output_scale),
                        bias_init=nn.initializers.zeros, name="mean")(h)
        init_log_std = jnp.log(self.init_std)
        if self.learn_std:
            log_std = self.param("log_std", nn.initializers.constant(init_log_std), (self.action_size,))
        else:
            log_std = jnp.full((self.action_size,), init_log_std, mean.dtype)
        return mean, jnp.broadcast_to(log_std, mean.shape)


class Critic(nn.Module):
    hidden: Sequence[int] = (1024, 512)
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        h = MLP(self.hidden, self.activation)(obs)
        v = nn.Dense(1, kernel_init=torch_linear_init, bias_init=nn.initializers.zeros, name="value")(h)
        return v[..., 0]


class Discriminator(nn.Module):
    """AMP discriminator; returns logits. The output layer is named ``logits`` so the
    logit-weight regulariser can find its kernel (``disc_logit_weights``)."""

    hidden: Sequence[int] = (1024, 512)
    init_output_scale: float = 1.0  # MimicKit: U(-1, 1) on the logit layer

    @nn.compact
    def __call__(self, x):
        h = MLP(self.hidden)(x)
        logit = nn.Dense(1, kernel_init=symmetric_uniform(self.init_output_scale),
                         bias_init=nn.initializers.zeros, name="logits")(h)
        return logit[..., 0]


class Encoder(nn.Module):
    """ASE's skill encoder: an MLP, a linear layer with weights U(-s, s) and zero bias, then L2
    normalisation, so q lies on the latent sphere (MimicKit ``ase_model``)."""

    latent_dim: int = 64
    hidden: Sequence[int] = (1024, 512)
    init_output_scale: float = 0.1

    @nn.compact
    def __call__(self, x):
        h = MLP(self.hidden)(x)
        q = nn.Dense(self.latent_dim, kernel_init=symmetric_uniform(self.init_output_scale),
                     bias_init=nn.initializers.zeros, name="latent")(h)
        return l2_normalize(q)


def l2_normalize(x, eps: float = 1e-12):
    """x / max(‖x‖, eps) over the last axis (torch ``F.normalize``)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def disc_logit_weights(disc_params) -> jax.Array:
    return disc_params["params"]["logits"]["kernel"]


def gaussian_log_prob(x, mean, log_std):
    """Sum over the last axis of the diagonal Gaussian log-density."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q):
    """KL(p || q) of diagonal Gaussians, summed over the last axis (rsl_rl's adaptive-lr KL)."""
    var_p, var_q = jnp.exp(2.0 * log_std_p), jnp.exp(2.0 * log_std_q)
    return jnp.sum(log_std_q - log_std_p + (var_p + jnp.square(mean_p - mean_q)) / (2.0 * var_q) - 0.5, axis=-1)


def gaussian_entropy(log_std):
    return jnp.sum(log_std + 0.5 * jnp.log(2.0 * jnp.pi * jnp.e), axis=-1)

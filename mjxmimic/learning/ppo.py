"""PPO (MimicKit ``PPOAgent``) as one jitted training iteration.

``make_trainer(env, env_params, cfg)`` returns a ``Trainer`` whose ``iteration`` does,
inside a single ``jax.jit``: a ``lax.scan`` rollout of ``steps_per_iter`` vmapped env
steps, critic values, TD(λ) targets and normalised advantages, critic then actor
minibatch SGD (``lax.scan``), an optional extension update (AMP's discriminator), and
the observation-normaliser update. Everything random is drawn from ``TrainState.key``,
so an iteration is a pure function of its input state.

AMP reuses all of this through an ``Extension`` (see ``amp.py``): a reward hook run
before the PPO targets are built and an extra update run after the actor/critic; ASE
(``ase.py``) also adds a term to the actor loss (``actor_loss_term``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from mjxmimic.envs.core import EnvState, env_chunk, raw_key, vmap_envs
from mjxmimic.learning import losses
from mjxmimic.learning import normalizer as normlib
from mjxmimic.learning import parallel
from mjxmimic.learning.evaluation import evaluate_policy
from mjxmimic.learning.networks import (Critic, GaussianActor, check_activation, gaussian_entropy, gaussian_kl,
                                       gaussian_log_prob)
from mjxmimic.learning.optim import OptimizerConfig, learning_rate, make_optimizer, set_learning_rate


@dataclass(frozen=True)
class PPOConfig:
    """Defaults are MimicKit's ``deepmimic_*_ppo_agent.yaml``; the tracking configs switch on
    BeyondMimic's (rsl_rl) options: ELU, learnable std, entropy, adaptive-KL lr, value clipping."""

    num_envs: int = 4096
    steps_per_iter: int = 32
    gamma: float = 0.99  # MimicKit "discount"
    td_lambda: float = 0.95
    actor_epochs: int = 5
    critic_epochs: int = 2
    # Minibatch sizes as multiples of num_envs (MimicKit actor/critic_batch_size).
    actor_batch_size: float = 4.0
    critic_batch_size: float = 2.0
    ppo_clip_ratio: float = 0.2
    norm_adv_clip: float = 4.0
    action_bound_weight: float = 10.0
    action_entropy_weight: float = 0.0
    # Env action bounds. The policy acts in a normalised space mapped affinely onto
    # [low, high] (MimicKit's action normaliser), and the bound penalty keeps its mean in
    # [-1, 1]. None: use env.action_low/env.action_high if present, else [-1, 1] (identity).
    action_low: Optional[Sequence[float]] = None
    action_high: Optional[Sequence[float]] = None
    actor_hidden: Sequence[int] = (1024, 512)
    critic_hidden: Sequence[int] = (1024, 512)
    activation: str = "relu"  # hidden layers of actor and critic: relu (MimicKit) or elu (rsl_rl)
    actor_init_output_scale: float = 0.01
    action_std: float = 0.05  # in normalised action units
    learn_action_std: bool = False  # False == MimicKit actor_std_type FIXED
    normalizer_samples: float = 1e8  # env samples after which the obs normaliser freezes
    obs_clip: float = 10.0
    # Adaptive learning rate (rsl_rl "adaptive" schedule): after each actor minibatch's KL
    # between the rollout policy and the current one, lr /= factor when KL > 2·desired_kl,
    # lr *= factor when KL < desired_kl/2, kept in [lr_min, lr_max]; the critic follows the
    # actor's lr (rsl_rl has one optimiser for both). 0 disables.
    desired_kl: float = 0.0
    # KL early stopping (Spinning Up's PPO, SB3's target_kl): the actor's remaining minibatch steps
    # of an iteration are skipped once a minibatch's KL to the rollout policy exceeds this. With
    # MimicKit's fixed std 0.05 and Adam, the AMP kick runs' KL is 0.03-0.06 per iteration with
    # bursts to 100-2000 that collapse training (benchmarks/RESULTS.md); a stop above the usual
    # KL leaves ordinary updates alone. 0 disables.
    kl_stop: float = 0.0
    kl_lr_factor: float = 1.5
    lr_min: float = 1e-5
    lr_max: float = 1e-2
    # Clipped value loss (rsl_rl): max of the plain and the clipped squared error, the clipped
    # prediction staying within ±value_clip of the rollout's value. 0 disables.
    value_clip: float = 0.0
    # Minibatches are drawn within this many equal blocks of the envs, an equal share from each
    # (0: one block per device of the env mesh, 1 without one; see ``Minibatches``).
    shuffle_blocks: int = 0
    actor_optimizer: OptimizerConfig = OptimizerConfig("sgd", 1e-4)
    critic_optimizer: OptimizerConfig = OptimizerConfig("sgd", 1e-4)

    def __post_init__(self):
        check_activation(self.activation)
        if self.shuffle_blocks < 0:
            raise ValueError("shuffle_blocks must be >= 0 (0: one block per device)")
        if self.desired_kl < 0 or self.value_clip < 0 or self.kl_stop < 0:
            raise ValueError("desired_kl, kl_stop and value_clip must be >= 0 (0 disables)")
        if self.desired_kl and not (0 < self.lr_min <= self.lr_max and self.kl_lr_factor > 1):
            raise ValueError("adaptive lr needs 0 < lr_min <= lr_max and kl_lr_factor > 1")


@struct.dataclass
class Transition:
    """One rollout step for all envs (time-major [T, N, ...] after the scan)."""

    obs: jax.Array
    action: jax.Array  # normalised action that was sampled
    logp: jax.Array
    mean: jax.Array  # the rollout policy's mean and log-std (for the adaptive-lr KL)
    log_std: jax.Array
    reward: jax.Array  # env (task) reward
    done: jax.Array
    truncated: jax.Array
    terminal_obs: jax.Array
    env_metrics: dict
    extra: Any  # Extension.collect(next_state), e.g. AMP disc obs
    curriculum: Any  # env.curriculum_collect(next_state), () without a curriculum


@struct.dataclass
class TrainState:
    actor_params: Any
    critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    obs_norm: normlib.Normalizer
    env_state: EnvState  # batched over num_envs
    key: jax.Array  # raw uint32 PRNG key; all learner randomness comes from here
    iteration: jax.Array  # int32, iterations completed
    ep_return: jax.Array  # [N] running task return of the current episodes
    ep_length: jax.Array  # [N] int32
    ext: Any  # extension state (AMP: discriminator, its normaliser, replay buffer); () for PPO
    curriculum: Any  # env-wide state shared by all envs (tracking: start-bin failure stats); () if none


@struct.dataclass
class PolicyParams:
    """What a deployed policy needs: actor weights and the frozen obs normaliser."""

    actor_params: Any
    obs_norm: normlib.Normalizer


class Extension(Protocol):
    """Hooks that turn PPO into AMP & co. All are traced inside ``iteration``."""

    def init(self, key, env_params) -> Any: ...

    def collect(self, next_state: EnvState) -> Any:
        """Per-step data to keep from the post-step (pre-auto-reset info) state."""

    def prepare(self, ext, traj: Transition, env_params, key) -> tuple[Any, jax.Array, Any, dict]:
        """Before PPO targets: returns (ext, rewards [T, N] used for PPO, aux, metrics)."""

    def update(self, ext, traj: Transition, aux, norm_enabled, key) -> tuple[Any, dict]:
        """After the actor/critic updates (e.g. discriminator SGD + its normaliser)."""

    # Optional: ``actor_loss_term(actor_apply, actor_params, obs, mean, obs_norm, key) -> (loss,
    # info)``, added to the actor loss of every minibatch (ASE's diversity loss); ``obs``: the
    # minibatch's raw obs, ``mean``: the actor's mean on them, ``key``: fresh per minibatch.


@dataclass(frozen=True)
class Minibatches:
    """How SGD minibatches are drawn from an iteration's T·N samples: within ``blocks`` equal
    blocks of envs, an equal share from each. With the envs split over a mesh there is one block
    per device, so each device gathers and differentiates only its own samples and only the
    gradients are reduced; with one block it is one shuffle over all samples (MimicKit)."""

    steps: int  # T
    envs: int  # N
    blocks: int = 1
    mesh: Any = None

    @classmethod
    def of(cls, cfg: "PPOConfig", mesh=None) -> "Minibatches":
        blocks = cfg.shuffle_blocks or (1 if mesh is None else mesh.size)
        if cfg.num_envs % blocks:
            raise ValueError(f"{cfg.num_envs} envs do not split evenly into {blocks} minibatch blocks "
                             "(one per device, or agent.shuffle_blocks)")
        return cls(cfg.steps_per_iter, cfg.num_envs, blocks, mesh)

    def _split(self, x, axis: int):
        if self.mesh is not None and self.blocks % self.mesh.size == 0:
            x = jax.lax.with_sharding_constraint(x, parallel.env_split(self.mesh, axis))
        return x

    def layout(self, x):
        """[T·N, ...] (time-major) to [blocks, T·N/blocks, ...]: block b holds the b-th slice of
        the envs at every step (one block: the same order), split over the mesh like the envs."""
        T, B = self.steps, self.blocks
        x = jnp.swapaxes(x.reshape((T, B, self.envs // B) + x.shape[1:]), 0, 1)
        return self._split(x.reshape((B, -1) + x.shape[3:]), 0)

    def indices(self, key, batch_size: int, num_steps: int) -> jax.Array:
        """[num_steps, blocks, batch_size / blocks]: each block's own :func:`minibatch_indices`
        stream into its samples (one block: that stream itself, with the same key)."""
        n, B = self.steps * self.envs // self.blocks, self.blocks
        if batch_size % B:
            raise ValueError(f"minibatches of {batch_size} do not split into {B} equal blocks "
                             "(agent.shuffle_blocks or the device count)")
        keys = key[None] if B == 1 else jax.random.split(key, B)
        idx = jax.vmap(lambda k: minibatch_indices(k, n, batch_size // B, num_steps))(keys)
        return self._split(jnp.swapaxes(idx, 0, 1), 1)

    @staticmethod
    def take(x, idx):
        """Rows ``idx`` [blocks, b] of each block of ``x`` [blocks, S, ...], as [blocks·b, ...]."""
        rows = jax.vmap(lambda xb, ib: xb[ib])(x, idx)
        return rows.reshape((-1,) + rows.shape[2:])


def minibatch_indices(key, num_samples: int, batch_size: int, num_steps: int) -> jax.Array:
    """[num_steps, batch_size] indices read off a stream of fresh random permutations.

    This is MimicKit's ``ExperienceBuffer.sample``: consecutive chunks of a shuffled index
    buffer that is reshuffled when exhausted, i.e. epochs without replacement (not i.i.d.
    sampling with replacement) whenever batch_size divides the sample count.
    """
    num_perms = max(1, math.ceil(batch_size * num_steps / num_samples))
    perms = jax.vmap(lambda k: jax.random.permutation(k, num_samples))(jax.random.split(key, num_perms))
    return perms.reshape(-1)[: batch_size * num_steps].reshape(num_steps, batch_size)


def sgd_scan(opt: optax.GradientTransformation, loss_fn: Callable, params, opt_state, xs, adapt=None,
             kl_stop: float = 0.0):
    """Run one optimiser step per leading entry of ``xs``; returns params, state, mean info.

    ``loss_fn(params, x) -> (loss, info)``; minibatches are gathered inside from ``x``
    (indices), so the [epochs × batch] data is never materialised. ``adapt(opt_state, info)
    -> opt_state`` runs between the gradient and the step (the adaptive learning rate reads
    this minibatch's KL, measured with the pre-step parameters, as rsl_rl does). ``kl_stop`` > 0:
    from the first step whose ``info["kl"]`` exceeds it, the steps leave params and state
    unchanged (early stopping inside the jitted scan); ``info["kl_stopped"]`` is the skipped share.
    """

    def step(carry, x):
        p, s, stopped = carry
        (loss, info), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x)
        s_new = adapt(s, info) if adapt is not None else s
        updates, s_new = opt.update(grads, s_new, p)
        p_new = optax.apply_updates(p, updates)
        if kl_stop:
            stopped = stopped | (info["kl"] > kl_stop)
            keep = lambda old, new: jax.tree_util.tree_map(lambda o, n: jnp.where(stopped, o, n), old, new)  # noqa: E731
            p_new, s_new = keep(p, p_new), keep(s, s_new)
            info = {**info, "kl_stopped": stopped.astype(jnp.float32)}
        return (p_new, s_new, stopped), {**info, "loss": loss}

    (params, opt_state, _), infos = jax.lax.scan(step, (params, opt_state, jnp.zeros((), bool)), xs)
    return params, opt_state, jax.tree_util.tree_map(jnp.mean, infos)


def num_minibatch_steps(num_samples: int, num_envs: int, batch_mult: float, epochs: int):
    """MimicKit: batch = ceil(mult·N); steps = ceil(samples / batch) · epochs."""
    batch = int(math.ceil(batch_mult * num_envs))
    return batch, int(math.ceil(num_samples / batch)) * epochs


def resolve_action_map(env, cfg: PPOConfig):
    """(offset, scale) of the affine map from the policy's normalised actions to env actions."""
    low, high = cfg.action_low, cfg.action_high
    if low is None and high is None:
        low, high = getattr(env, "action_low", None), getattr(env, "action_high", None)
    if low is None or high is None:
        return np.zeros(env.action_size, np.float32), np.ones(env.action_size, np.float32)
    low = np.broadcast_to(np.asarray(low, np.float32), (env.action_size,))
    high = np.broadcast_to(np.asarray(high, np.float32), (env.action_size,))
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
        raise ValueError("action bounds must be finite with high > low")
    return 0.5 * (high + low), 0.5 * (high - low)


def actor_obs_size(env) -> int:
    """How many leading obs entries the actor sees: ``env.actor_obs_size`` for envs with an
    asymmetric critic (obs = [actor obs | privileged obs]), else all of them."""
    n = int(getattr(env, "actor_obs_size", env.obs_size))
    if not 0 < n <= env.obs_size:
        raise ValueError(f"env.actor_obs_size {n} must be in [1, obs_size={env.obs_size}]")
    return n


def has_curriculum(env) -> bool:
    """Envs with env-wide state shared by all envs (see :class:`Curriculum`); an env with the
    hooks may switch them off with ``curriculum_active`` (the character envs' adaptive ramp)."""
    return (all(hasattr(env, f"curriculum_{k}") for k in ("init", "collect", "update", "apply"))
            and bool(getattr(env, "curriculum_active", True)))


class Curriculum(Protocol):
    """Optional env hooks for state that all envs share (the tracking env's adaptive start
    sampling, the character envs' adaptive randomisation ramp). The trainer keeps it in
    ``TrainState.curriculum``: each iteration rolls out with ``curriculum_apply(env_params,
    cstate)``, collects ``curriculum_collect(state)`` after every step and folds the [T, N]
    collection in with ``curriculum_update`` after the rollout."""

    def curriculum_init(self, env_params) -> Any: ...

    def curriculum_collect(self, state: EnvState) -> Any: ...

    def curriculum_update(self, cstate, xs) -> tuple[Any, dict]: ...

    def curriculum_apply(self, env_params, cstate) -> Any: ...


@dataclass(frozen=True)
class Trainer:
    """Closures over a fixed env/config. ``iteration`` and ``evaluate`` are jitted."""

    cfg: PPOConfig
    env: Any
    env_params: Any
    actor: GaussianActor
    critic: Critic
    init: Callable[[jax.Array], TrainState]
    iteration: Callable[[TrainState], tuple[TrainState, dict]]
    policy: Callable[..., jax.Array]
    evaluate: Callable[..., dict]
    # compile_evaluate(state_like, num_episodes, max_steps): compile ``evaluate`` ahead of its first
    # call (e.g. in a thread while the training iteration compiles); a call on a state that
    # ``abstract_like`` describes then reuses it.
    compile_evaluate: Callable[[Any, int, int], Any]
    abstract_state: Callable[[], TrainState]
    # Puts a state (e.g. one restored from a checkpoint) where ``iteration`` expects it.
    place: Callable[[TrainState], TrainState] = lambda ts: ts


def abstract_like(tree):
    """Shapes, dtypes and placement of ``tree``'s arrays, without their buffers: what a jit compiled
    ahead for it must see. Placement counts only for arrays committed to a device (a restored or
    sharded state; a jit's output is not): jit compiles those separately."""
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding if x.committed else None,
                                       weak_type=x.weak_type) if isinstance(x, jax.Array) else x, tree)


def policy_params(train_state: TrainState) -> PolicyParams:
    return PolicyParams(train_state.actor_params, train_state.obs_norm)


def actor_input(obs_norm: normlib.Normalizer, obs, size: int, clip: float):
    """The actor's input: the first ``size`` obs entries, normalised. ``obs`` may be the full
    obs or already only the actor's part (what a deployed policy is given)."""
    n = obs_norm.mean.shape[-1]
    if size < n:
        obs_norm = jax.tree_util.tree_map(lambda x: x[..., :size] if x.ndim else x, obs_norm)
        obs = obs[..., :size]
    return normlib.normalize(obs_norm, obs, clip)


def make_policy_fn(actor: GaussianActor, action_offset, action_scale, obs_clip: float = 10.0,
                   obs_size: Optional[int] = None):
    """Pure ``policy(train_state | PolicyParams, obs, key=None, deterministic=True) -> env action``.

    Deterministic returns the mean (MimicKit test mode); stochastic needs ``key``.
    Works on a single obs or a batch. ``obs_size``: the actor's part of the obs (None: all).
    """
    offset, scale = jnp.asarray(action_offset), jnp.asarray(action_scale)

    def policy(params, obs, key=None, deterministic=True):
        if isinstance(params, TrainState):
            params = policy_params(params)
        size = params.obs_norm.mean.shape[-1] if obs_size is None else obs_size
        mean, log_std = actor.apply(params.actor_params, actor_input(params.obs_norm, obs, size, obs_clip))
        a = mean
        if not deterministic:
            if key is None:
                raise ValueError("a stochastic policy needs a key")
            a = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
        return offset + scale * a

    return policy


# ---------------------------------------------------------------------------------------
# the pieces of one iteration
# ---------------------------------------------------------------------------------------
def _rollout_fn(env, cfg: PPOConfig, actor, obs_size: int, to_env_action, extension, v_step):
    """rollout(ts, env_params, key) -> (env_state, ep_ret, ep_len, (sum ret, sum len, count), traj [T, N])."""
    collect_cur = has_curriculum(env)

    def rollout(ts: TrainState, env_params, key):
        def step(carry, k):
            env_state, ep_ret, ep_len, fin = carry
            obs = env_state.obs
            mean, log_std = actor.apply(ts.actor_params, actor_input(ts.obs_norm, obs, obs_size, cfg.obs_clip))
            a = mean + jnp.exp(log_std) * jax.random.normal(k, mean.shape, mean.dtype)
            logp = gaussian_log_prob(a, mean, log_std)
            nxt = v_step(env_params, env_state, to_env_action(a))
            done = nxt.done.astype(bool)
            ep_ret = ep_ret + nxt.reward
            ep_len = ep_len + 1
            fin = (fin[0] + jnp.sum(jnp.where(done, ep_ret, 0.0)),
                   fin[1] + jnp.sum(jnp.where(done, ep_len, 0)),
                   fin[2] + jnp.sum(done))
            tr = Transition(obs=obs, action=a, logp=logp, mean=mean, log_std=log_std, reward=nxt.reward,
                            done=done, truncated=nxt.truncated.astype(bool), terminal_obs=nxt.terminal_obs,
                            env_metrics=nxt.metrics,
                            extra=extension.collect(nxt) if extension is not None else (),
                            curriculum=jax.vmap(env.curriculum_collect)(nxt) if collect_cur else ())
            ep_ret = jnp.where(done, 0.0, ep_ret)
            ep_len = jnp.where(done, 0, ep_len)
            return (nxt, ep_ret, ep_len, fin), tr

        zero_fin = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        carry0 = (ts.env_state, ts.ep_return, ts.ep_length, zero_fin)
        (env_state, ep_ret, ep_len, fin), traj = jax.lax.scan(step, carry0, jax.random.split(key, cfg.steps_per_iter))
        return env_state, ep_ret, ep_len, fin, traj

    return rollout


def _loss_fns(cfg: PPOConfig, actor, critic, obs_size: int, extra_term=None):
    """(critic_loss(params, idx, data), actor_loss(params, idx, data)) over minibatch indices;
    with ``extra_term`` (an extension's ``actor_loss_term``) the actor's ``idx`` is (idx, key)
    and ``data`` holds the raw ``obs`` and the ``obs_norm``."""

    def critic_loss(params, idx, d):
        pred = critic.apply(params, Minibatches.take(d["norm_obs"], idx))
        target = Minibatches.take(d["targets"], idx)
        loss = jnp.square(target - pred)
        if cfg.value_clip:
            old = Minibatches.take(d["values"], idx)
            clipped = old + jnp.clip(pred - old, -cfg.value_clip, cfg.value_clip)
            loss = jnp.maximum(loss, jnp.square(target - clipped))
        return jnp.mean(loss), {}

    def actor_loss(params, idx, d):
        if extra_term is not None:
            idx, key = idx
        g = lambda k: Minibatches.take(d[k], idx)  # noqa: E731
        mean, log_std = actor.apply(params, g("norm_obs")[:, :obs_size])
        loss, info = losses.ppo_actor_loss(mean, log_std, g("actions"), g("logp"), g("adv"), cfg.ppo_clip_ratio)
        if extra_term is not None:
            extra, extra_info = extra_term(actor.apply, params, g("obs"), mean, d["obs_norm"], key)
            loss = loss + extra
            info.update(extra_info)
        info["surrogate_loss"] = loss
        info["kl"] = jnp.mean(gaussian_kl(g("mean"), g("log_std"), mean, log_std))
        info["action_std"] = jnp.mean(jnp.exp(log_std))
        if cfg.action_bound_weight:
            bound = jnp.mean(losses.action_bound_loss(mean))
            loss = loss + cfg.action_bound_weight * bound
            info["action_bound_loss"] = bound
        if cfg.action_entropy_weight:
            ent = jnp.mean(gaussian_entropy(log_std))
            loss = loss - cfg.action_entropy_weight * ent
            info["action_entropy"] = ent
        return loss, info

    return critic_loss, actor_loss


def adapt_learning_rate(cfg: PPOConfig):
    """``sgd_scan``'s ``adapt`` hook for the KL-adaptive learning rate (None when disabled)."""
    if not cfg.desired_kl:
        return None

    def adapt(opt_state, info):
        lr, kl = learning_rate(opt_state), info["kl"]
        lr = jnp.where(kl > 2.0 * cfg.desired_kl, lr / cfg.kl_lr_factor,
                       jnp.where((kl < 0.5 * cfg.desired_kl) & (kl > 0.0), lr * cfg.kl_lr_factor, lr))
        return set_learning_rate(opt_state, jnp.clip(lr, cfg.lr_min, cfg.lr_max))

    return adapt


def _compile(init, iteration, evaluate, env_params, num_envs: int, donate: bool, mesh):
    """jit ``init``/``iteration``/``evaluate``; with a mesh, split the per-env state over it.
    Returns (init_jit, iteration_jit, evaluate_jit, abstract_state, place, env_params)."""
    donate_args = (0,) if donate else ()
    if mesh is None:
        init_jit = jax.jit(init)
        iteration_jit = jax.jit(iteration, donate_argnums=donate_args)
        abstract_state = lambda: jax.eval_shape(init, jax.random.PRNGKey(0), env_params)  # noqa: E731
        place = lambda ts: ts  # noqa: E731
    else:
        abstract = jax.eval_shape(init, jax.random.PRNGKey(0), env_params)
        state_sh = parallel.train_state_shardings(abstract, mesh, num_envs)
        rep = parallel.replicated(mesh)
        env_params = parallel.replicate(env_params, mesh)
        init_jit = jax.jit(init, out_shardings=state_sh)
        iteration_jit = jax.jit(iteration, in_shardings=(state_sh, rep), out_shardings=(state_sh, rep),
                                donate_argnums=donate_args)
        sharded = jax.tree_util.tree_map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
                                         abstract, state_sh)
        abstract_state = lambda: sharded  # noqa: E731
        place = lambda ts: jax.device_put(ts, state_sh)  # noqa: E731
    evaluate_jit = jax.jit(evaluate, static_argnums=(3, 4))
    return init_jit, iteration_jit, evaluate_jit, abstract_state, place, env_params


def make_trainer(env, env_params, cfg: PPOConfig, extension: Optional[Extension] = None,
                 donate: bool = False, mesh=None) -> Trainer:
    """Build the PPO (or, with ``extension``, AMP) trainer for ``env``.

    ``donate=True`` donates the input TrainState's buffers to ``iteration`` (saves
    device memory; the old state must then not be reused). ``mesh`` (see
    :func:`mjxmimic.learning.parallel.env_mesh`): split the envs over its devices.
    Envs with an asymmetric critic set ``env.actor_obs_size``; envs with env-wide state
    implement :class:`Curriculum`.
    """
    N, T = cfg.num_envs, cfg.steps_per_iter
    num_samples = N * T
    obs_size = actor_obs_size(env)
    actor = GaussianActor(env.action_size, tuple(cfg.actor_hidden), cfg.actor_init_output_scale,
                          cfg.action_std, cfg.learn_action_std, cfg.activation)
    critic = Critic(tuple(cfg.critic_hidden), cfg.activation)
    adaptive = bool(cfg.desired_kl)
    actor_opt = make_optimizer(cfg.actor_optimizer, adjustable_lr=adaptive)
    critic_opt = make_optimizer(cfg.critic_optimizer, adjustable_lr=adaptive)
    action_offset, action_scale = resolve_action_map(env, cfg)
    policy = make_policy_fn(actor, action_offset, action_scale, cfg.obs_clip, obs_size)
    critic_batch, critic_steps = num_minibatch_steps(num_samples, N, cfg.critic_batch_size, cfg.critic_epochs)
    actor_batch, actor_steps = num_minibatch_steps(num_samples, N, cfg.actor_batch_size, cfg.actor_epochs)
    v_reset, v_step = vmap_envs(env.reset, env_chunk(env)), vmap_envs(env.step, env_chunk(env))
    curriculum = has_curriculum(env)
    scheduled = hasattr(env, "schedule_apply")   # params that follow the iteration (randomize.ramp)
    rollout = _rollout_fn(env, cfg, actor, obs_size, lambda a: action_offset + action_scale * a, extension, v_step)
    extra_term = getattr(extension, "actor_loss_term", None)
    critic_loss, actor_loss = _loss_fns(cfg, actor, critic, obs_size, extra_term)
    adapt = adapt_learning_rate(cfg)
    mb = Minibatches.of(cfg, mesh)

    def live_params(env_params, cstate, iteration):
        """-> (the params this iteration rolls out with, the schedule's metrics)."""
        p = env.curriculum_apply(env_params, cstate) if curriculum else env_params
        return env.schedule_apply(p, iteration) if scheduled else (p, {})

    def _init(key, env_params):
        key = raw_key(key)
        key, k_actor, k_critic, k_env, k_ext = jax.random.split(key, 5)
        actor_params = actor.init(k_actor, jnp.zeros((1, obs_size), jnp.float32))
        critic_params = critic.init(k_critic, jnp.zeros((1, env.obs_size), jnp.float32))
        cstate = env.curriculum_init(env_params) if curriculum else ()
        env_state = v_reset(live_params(env_params, cstate, 0)[0], jax.random.split(k_env, N))
        ext = extension.init(k_ext, env_params) if extension is not None else ()
        return TrainState(
            actor_params=actor_params, critic_params=critic_params,
            actor_opt_state=actor_opt.init(actor_params), critic_opt_state=critic_opt.init(critic_params),
            obs_norm=normlib.init(env.obs_size), env_state=env_state, key=key,
            iteration=jnp.zeros((), jnp.int32), ep_return=jnp.zeros((N,), jnp.float32),
            ep_length=jnp.zeros((N,), jnp.int32), ext=ext, curriculum=cstate)

    def _iteration(ts: TrainState, env_params):
        key, k_roll, k_prep, k_critic, k_actor, k_ext = jax.random.split(ts.key, 6)
        params_now, sched_metrics = live_params(env_params, ts.curriculum, ts.iteration)
        env_state, ep_ret, ep_len, fin, traj = rollout(ts, params_now, k_roll)
        norm_enabled = ts.iteration.astype(jnp.float32) * num_samples < cfg.normalizer_samples
        cstate, cur_metrics = env.curriculum_update(ts.curriculum, traj.curriculum) if curriculum else ((), {})

        # Rewards used for learning: the env's task reward, or the extension's (AMP: style mix).
        ext, ext_metrics = ts.ext, {}
        rewards, aux = traj.reward, None
        if extension is not None:
            ext, rewards, aux, ext_metrics = extension.prepare(ext, traj, params_now, k_prep)

        # Values with the pre-update normaliser and critic, as the rollout saw them.
        flat = lambda x: x.reshape((num_samples,) + x.shape[2:])  # noqa: E731
        norm_obs = normlib.normalize(ts.obs_norm, flat(traj.obs), cfg.obs_clip)
        values = critic.apply(ts.critic_params, norm_obs).reshape(T, N)
        term_values = critic.apply(
            ts.critic_params, normlib.normalize(ts.obs_norm, flat(traj.terminal_obs), cfg.obs_clip)).reshape(T, N)
        next_values = losses.bootstrap_values(term_values, traj.done, traj.truncated)
        targets = losses.td_lambda_returns(rewards, next_values, traj.done, cfg.gamma, cfg.td_lambda)
        adv, adv_mean, adv_std = losses.normalize_advantages(flat(targets - values), cfg.norm_adv_clip)
        data = {"norm_obs": norm_obs, "targets": flat(targets), "values": flat(values), "actions": flat(traj.action),
                "logp": flat(traj.logp), "mean": flat(traj.mean), "log_std": flat(traj.log_std), "adv": adv}
        if extra_term is not None:
            data["obs"] = flat(traj.obs)
        data = {k: mb.layout(v) for k, v in data.items()}
        if extra_term is not None:
            data["obs_norm"] = ts.obs_norm

        # Critic first, then actor (MimicKit order); both on the same fixed targets.
        critic_opt_state = ts.critic_opt_state
        if adaptive:  # the critic takes the actor's current (adapted) learning rate
            critic_opt_state = set_learning_rate(critic_opt_state, learning_rate(ts.actor_opt_state))
        critic_idx = mb.indices(k_critic, critic_batch, critic_steps)
        critic_params, critic_opt_state, critic_info = sgd_scan(
            critic_opt, lambda p, i: critic_loss(p, i, data), ts.critic_params, critic_opt_state, critic_idx)
        actor_idx = mb.indices(k_actor, actor_batch, actor_steps)
        if extra_term is not None:   # a key per minibatch, drawn apart from PPO's own stream
            actor_idx = (actor_idx, jax.random.split(jax.random.fold_in(k_actor, 1), actor_steps))
        actor_params, actor_opt_state, actor_info = sgd_scan(
            actor_opt, lambda p, i: actor_loss(p, i, data), ts.actor_params, ts.actor_opt_state, actor_idx, adapt,
            cfg.kl_stop)

        if extension is not None:
            ext, upd_metrics = extension.update(ext, traj, aux, norm_enabled, k_ext)
            ext_metrics = {**ext_metrics, **upd_metrics}

        obs_norm = normlib.update(ts.obs_norm, traj.obs, norm_enabled)

        new_ts = TrainState(
            actor_params=actor_params, critic_params=critic_params, actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state, obs_norm=obs_norm, env_state=env_state, key=key,
            iteration=ts.iteration + 1, ep_return=ep_ret, ep_length=ep_len, ext=ext, curriculum=cstate)

        num_eps = fin[2]
        denom = jnp.maximum(num_eps, 1).astype(jnp.float32)
        metrics = {
            "reward_mean": jnp.mean(rewards),
            "task_reward_mean": jnp.mean(traj.reward),
            "episode_return": fin[0] / denom,  # task (env) return, NaN-free when no episode ended
            "episode_length": fin[1].astype(jnp.float32) / denom,
            "num_episodes": num_eps,
            "critic_loss": critic_info["loss"],
            "actor_loss": actor_info["loss"],
            **{k: v for k, v in actor_info.items() if k != "loss"},
            "adv_mean": adv_mean,
            "adv_std": adv_std,
            "value_mean": jnp.mean(values),
            "target_mean": jnp.mean(targets),
            "done_frac": jnp.mean(traj.done.astype(jnp.float32)),
            "obs_norm_frozen": jnp.logical_not(norm_enabled),
            **{f"env/{k}": jnp.mean(v) for k, v in traj.env_metrics.items()},
            **{f"curriculum/{k}": v for k, v in cur_metrics.items()},
            **{f"schedule/{k}": v for k, v in sched_metrics.items()},
            **ext_metrics,
        }
        if adaptive:
            metrics["learning_rate"] = learning_rate(actor_opt_state)
        return new_ts, metrics

    def _evaluate(ts, env_params, key, num_episodes: int, max_steps: int):
        # One episode per env, at most N envs: every env runs until the longest episode ends, so a
        # batch of N (thousands) for a few hundred episodes would cost as much as many iterations.
        pp = policy_params(ts)
        return evaluate_policy(env, env_params, lambda obs: policy(pp, obs, deterministic=True), key,
                               min(N, num_episodes), num_episodes, max_steps)

    init_jit, iteration_jit, evaluate_jit, abstract_state, place, env_params = _compile(
        _init, _iteration, _evaluate, env_params, N, donate, mesh)
    return Trainer(
        cfg=cfg, env=env, env_params=env_params, actor=actor, critic=critic,
        init=lambda key: init_jit(key, env_params),
        iteration=lambda ts: iteration_jit(ts, env_params),
        policy=policy,
        evaluate=lambda ts, key, num_episodes=32, max_steps=10_000: evaluate_jit(
            ts, env_params, key, num_episodes, max_steps),
        compile_evaluate=lambda state_like, num_episodes, max_steps: evaluate_jit.lower(
            state_like, env_params, jax.random.PRNGKey(0), num_episodes, max_steps).compile(),
        abstract_state=abstract_state,
        place=place,
    )

"""PPO, AMP, ADD and ASE learners (Flax linen + optax), each training iteration one jitted call."""
from mjxmimic.learning.add import ADDConfig, make_add_trainer
from mjxmimic.learning.amp import AMPConfig, AMPState, make_amp_trainer
from mjxmimic.learning.ase import ASEConfig, make_ase_trainer
from mjxmimic.learning.checkpoint import (CheckpointError, Checkpointer, init_or_restore, light_state,
                                          restore_train_state, saved_nbytes, train)
from mjxmimic.learning.evaluation import evaluate_policy
from mjxmimic.learning.optim import OptimizerConfig
from mjxmimic.learning.ppo import (PolicyParams, PPOConfig, Trainer, TrainState, make_policy_fn, make_trainer,
                                   policy_params)

__all__ = [
    "ADDConfig", "make_add_trainer", "AMPConfig", "AMPState", "make_amp_trainer", "ASEConfig", "make_ase_trainer",
    "CheckpointError", "Checkpointer", "init_or_restore",
    "light_state", "restore_train_state", "saved_nbytes", "train", "evaluate_policy", "OptimizerConfig",
    "PolicyParams", "PPOConfig", "Trainer", "TrainState", "make_policy_fn", "make_trainer", "policy_params",
]

"""``edge-retrain-v0``: two-timescale twin for edge inference and model retraining (see
:mod:`.env`).

Modules: ``types`` (params, state), ``physics`` (rates and delays), ``learning`` (the drifting
task, the users' classifiers, the twin's generator), ``kl_mix`` (class mix of the generated
data), ``env`` (the environment), ``policies`` (slot-level baselines).
"""

from dtwin_jax.envs.edge_retrain.env import ASSOCIATION, RETRAINING, EdgeRetrainEnv
from dtwin_jax.envs.edge_retrain.types import EdgeParams, EdgeState

__all__ = ["ASSOCIATION", "RETRAINING", "EdgeParams", "EdgeRetrainEnv", "EdgeState"]

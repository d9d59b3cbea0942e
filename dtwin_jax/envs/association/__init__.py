"""``association-v0``: user association twin, one module per part (Jumanji style).

``types`` (params, state), ``generator`` (deployment, mobility, users), ``physics`` (rx power,
SINR, candidates, features), ``metrics``, ``env`` (the API) and ``policies`` (baselines).
"""

from dtwin_jax.envs.association.env import (
    BS_AREA_MARGIN,
    MAX_AREA_M,
    MAX_STATE_BYTES,
    OBSERVATIONS,
    AssociationEnv,
)
from dtwin_jax.envs.association.generator import MOBILITY_CHOICES, default_deployment
from dtwin_jax.envs.association.metrics import masked_quantile, throughput_metrics
from dtwin_jax.envs.association.policies import (
    association_policy,
    greedy_rate_policy,
    legal_bs,
    max_sinr_policy,
    random_policy,
    rsrp_bias_policy,
    target_to_action,
)
from dtwin_jax.envs.association.types import AssociationParams, AssociationState

__all__ = [
    "BS_AREA_MARGIN",
    "MAX_AREA_M",
    "MAX_STATE_BYTES",
    "MOBILITY_CHOICES",
    "OBSERVATIONS",
    "AssociationEnv",
    "AssociationParams",
    "AssociationState",
    "association_policy",
    "default_deployment",
    "greedy_rate_policy",
    "legal_bs",
    "masked_quantile",
    "max_sinr_policy",
    "random_policy",
    "rsrp_bias_policy",
    "target_to_action",
    "throughput_metrics",
]

"""Resource allocation: assignment, RB allocation, user association, schedulers."""

from dtwin_jax.allocation.assignment import (
    batched_linear_sum_assignment,
    linear_sum_assignment,
)
from dtwin_jax.allocation.association import (
    load_balancing_dual,
    max_rsrp,
    max_sinr,
    random_association,
    sum_log_utility,
)
from dtwin_jax.allocation.association_lp import (
    BBResult,
    LPResult,
    associate,
    branch_and_bound,
    lp_relaxation,
    round_association,
)
from dtwin_jax.allocation.rb import RBAllocation, iterative_rb_allocation
from dtwin_jax.allocation.schedulers import (
    PFState,
    RRState,
    pf_init,
    proportional_fair,
    round_robin,
    rr_init,
)

__all__ = [
    "BBResult",
    "LPResult",
    "PFState",
    "RBAllocation",
    "RRState",
    "associate",
    "batched_linear_sum_assignment",
    "branch_and_bound",
    "iterative_rb_allocation",
    "linear_sum_assignment",
    "load_balancing_dual",
    "lp_relaxation",
    "max_rsrp",
    "max_sinr",
    "pf_init",
    "proportional_fair",
    "random_association",
    "round_association",
    "round_robin",
    "rr_init",
    "sum_log_utility",
]

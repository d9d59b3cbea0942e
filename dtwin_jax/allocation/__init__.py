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
from dtwin_jax.allocation.rb import RBAllocation, iterative_rb_allocation

__all__ = [
    "RBAllocation",
    "batched_linear_sum_assignment",
    "iterative_rb_allocation",
    "linear_sum_assignment",
    "load_balancing_dual",
    "max_rsrp",
    "max_sinr",
    "random_association",
    "sum_log_utility",
]

"""Resource allocation: assignment, RB allocation, user association, schedulers."""

from dtwin_jax.allocation.assignment import (
    batched_linear_sum_assignment,
    linear_sum_assignment,
)
from dtwin_jax.allocation.rb import RBAllocation, iterative_rb_allocation

__all__ = [
    "RBAllocation",
    "batched_linear_sum_assignment",
    "iterative_rb_allocation",
    "linear_sum_assignment",
]

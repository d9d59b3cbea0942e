"""Resource allocation: assignment, RB allocation, user association, schedulers."""

from dtwin_jax.allocation.assignment import (
    batched_linear_sum_assignment,
    linear_sum_assignment,
)

__all__ = ["batched_linear_sum_assignment", "linear_sum_assignment"]

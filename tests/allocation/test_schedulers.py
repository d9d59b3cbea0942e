"""Round robin and proportional fair against plain-Python references; long-run fairness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.allocation.schedulers import (
    pf_init,
    proportional_fair,
    round_robin,
    rr_init,
)


def _rr_reference(has_data_seq, num_rbs, used_seq):
    """Plain-Python round robin: a pointer walking over the users with data."""
    num_u = has_data_seq.shape[1]
    pointer, owners = 0, []
    for has_data, used in zip(has_data_seq, used_seq, strict=True):
        line = [(pointer + i) % num_u for i in range(num_u) if has_data[(pointer + i) % num_u]]
        owner = [-1] * num_rbs
        for k in range(used):
            if line:
                owner[k] = line[k % len(line)]
        if line and used:
            pointer = (owner[used - 1] + 1) % num_u
        owners.append(owner)
    return np.array(owners)


@pytest.mark.parametrize("num_rbs", [1, 3, 7])
def test_round_robin_matches_reference_over_slots(num_rbs):
    rng = np.random.default_rng(num_rbs)
    has_data = rng.random((60, 5)) < 0.6
    used = rng.integers(0, num_rbs + 1, 60)

    def slot(state, xs):
        owner, state = round_robin(state, xs[0], num_rbs, xs[1])
        return state, owner

    _, owners = jax.jit(lambda x, u: jax.lax.scan(slot, rr_init(), (x, u)))(has_data, used)
    np.testing.assert_array_equal(np.asarray(owners), _rr_reference(has_data, num_rbs, used))


def test_round_robin_serves_everyone_equally():
    state, counts = rr_init(), np.zeros(7, int)
    for _ in range(70):
        owner, state = round_robin(state, np.ones(7, bool), 1)
        counts[int(owner[0])] += 1
    np.testing.assert_array_equal(counts, 10)


def test_round_robin_no_data_leaves_rbs_unused():
    owner, state = round_robin(rr_init(), np.zeros(4, bool), 3)
    assert list(np.asarray(owner)) == [-1, -1, -1]
    assert int(state.pointer) == 0


def _pf_reference(avg, inst, has_data, ewma):
    metric = np.where(has_data[:, None], inst / avg[:, None], -np.inf)
    owner = metric.argmax(axis=0)
    served = np.array([inst[u, owner == u].sum() for u in range(inst.shape[0])])
    return owner, (1 - ewma) * avg + ewma * served


def test_proportional_fair_matches_reference():
    rng = np.random.default_rng(0)
    state = pf_init(6, initial_rate=0.5)
    avg = np.full(6, 0.5)
    for _ in range(30):
        inst = rng.exponential(size=(6, 4)).astype(np.float32)
        has = rng.random(6) < 0.7
        has[0] = True
        owner, served, state = jax.jit(proportional_fair)(state, inst, has, 0.05)
        ref_owner, avg = _pf_reference(avg, inst.astype(np.float64), has, 0.05)
        np.testing.assert_array_equal(np.asarray(owner), ref_owner)
        np.testing.assert_allclose(np.asarray(state.avg_rate), avg, rtol=1e-5)
        assert np.all(np.asarray(served) >= 0)


def test_proportional_fair_equal_time_shares_for_constant_rates():
    # constant rates 4 and 1 on one RB: PF converges to equal time shares
    inst = jnp.array([[4.0], [1.0]])

    def slot(state, _):
        owner, _, state = proportional_fair(state, inst, ewma=0.02)
        return state, owner[0]

    _, owners = jax.lax.scan(slot, pf_init(2), None, length=4000)
    share = np.mean(np.asarray(owners)[1000:] == 0)
    assert share == pytest.approx(0.5, abs=0.03)


def test_validation():
    with pytest.raises(ValueError, match="num_rbs"):
        round_robin(rr_init(), np.ones(3, bool), 0)
    with pytest.raises(ValueError, match="ewma"):
        proportional_fair(pf_init(2), np.ones((2, 1)), ewma=0.0)
    with pytest.raises(ValueError, match="initial_rate"):
        pf_init(2, initial_rate=-1.0)

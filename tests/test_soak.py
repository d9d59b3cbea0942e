"""benchmarks/soak.py at toy size, in-process: a clean run is finite, deterministic and written
with provenance, and an injected NaN, a rerun that differs and RSS growth past the limits are
each reported as a failure (the soak can fail)."""

import itertools
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.envs.slicing import SlicingEnv
from dtwin_jax.envs.spaces import Discrete, MultiDiscrete

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import soak  # noqa: E402

TWINS, CHUNK, STEPS = 3, 4, 24  # 2 chunks of 12 twin-steps


class TinySlicing(SlicingEnv):
    """slicing-v0 with 4 users, 8 slots per step and 5-step episodes (compiles in seconds)."""

    def __init__(self):
        super().__init__(num_users=4, num_slots=8)

    @property
    def default_params(self):
        return super().default_params.replace(episode_length=jnp.int32(5))


class NaNOnThirdStep(TinySlicing):
    """TinySlicing whose reward is NaN on the third step of every episode."""

    def step_env(self, key, state, action, params):
        obs, state, reward, term, trunc, info = super().step_env(key, state, action, params)
        return obs, state, jnp.where(state.t == 3, jnp.nan, reward), term, trunc, info


def test_clean_run_passes_and_main_writes_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(soak, "make", lambda env_id: TinySlicing())
    out = tmp_path / "soak.json"
    result = soak.main(["--envs", "tiny-v0", "--twins", str(TWINS), "--chunk-steps",
                        str(CHUNK), "--steps", str(STEPS), "--determinism", "full",
                        "--out", str(out)])
    written = json.loads(out.read_text())
    assert result["passed"] and written["passed"] and written["incomplete"] == []
    assert written["provenance"]["commit"] and written["provenance"]["machine"]
    row = written["envs"]["tiny-v0"]
    assert row["passed"] and row["failures"] == [], row["failures"]
    assert row["nonfinite"] == 0 and row["deterministic"] and row["complete"]
    assert row["steps_run"] == STEPS and row["chunks"] == row["chunks_compared"] == 2
    assert row["episodes"] == TWINS * 1  # 8 steps per twin, 5-step episodes
    assert len(set(row["checksums"])) == 2  # the carried state moved
    assert row["rss_start_mb"] > 0 and len(row["rss_mb_per_chunk"]) == 2


def test_injected_nan_is_detected(tmp_path, monkeypatch):
    monkeypatch.setattr(soak, "make", lambda env_id: NaNOnThirdStep())
    out = tmp_path / "soak.json"
    with pytest.raises(SystemExit) as exit_info:  # exit status 1, after writing the JSON
        soak.main(["--envs", "nan-v0", "--twins", str(TWINS), "--chunk-steps", str(CHUNK),
                   "--steps", str(STEPS), "--determinism", "full", "--out", str(out)])
    assert exit_info.value.code == 1
    written = json.loads(out.read_text())
    row = written["envs"]["nan-v0"]
    # each twin passes t == 3 once per 5-step episode: steps 3 and 8 of 8
    assert row["nonfinite"] == TWINS * 2
    assert not row["passed"] and not written["passed"] and "non-finite" in row["failures"][0]
    assert row["deterministic"]  # NaN rewards compare by their bits


def test_rerun_mismatch_and_rss_growth_are_detected(monkeypatch):
    real = soak.make_chunk

    def flaky(env, num_twins, chunk_steps):
        init, chunk = real(env, num_twins, chunk_steps)
        calls = itertools.count()

        def chunk_flaky(carry):  # the rerun's first chunk (3rd call) reports another checksum
            carry, stats = chunk(carry)
            if next(calls) == 2:
                stats = dict(stats, checksum=stats["checksum"] + 1)
            return carry, stats

        return init, chunk_flaky

    monkeypatch.setattr(soak, "make_chunk", flaky)
    row = soak.soak_env(TinySlicing(), TWINS, CHUNK, STEPS, determinism_steps=1,
                        rss_max_mb=-np.inf, rss_max_pct=-np.inf)
    assert row["chunks_compared"] == 1 and not row["deterministic"]
    assert any("RSS" in f for f in row["failures"]) and not row["passed"]


@pytest.mark.parametrize("n", [1, 2, 5, 17, 100])
def test_uniform_legal_is_uniform_over_the_legal_entries(n):
    rng = np.random.default_rng(n)
    mask = rng.random((3, n)) < 0.5
    mask[1, rng.integers(n)] = True  # at least one legal entry
    mask[2] = False  # none legal: uniform over all
    draws = np.asarray(jax.jit(jax.vmap(lambda k: soak.uniform_legal(k, jnp.asarray(mask))))(
        jax.random.split(jax.random.PRNGKey(0), 20_000)))  # [20000, 3]
    for row, legal in zip(draws.T, mask, strict=True):
        legal = legal if legal.any() else np.ones(n, bool)
        freq = np.bincount(row, minlength=n) / len(row)
        assert len(freq) == n and np.all(freq[~legal] == 0)
        np.testing.assert_allclose(freq[legal], 1 / legal.sum(), atol=0.015)


@pytest.mark.parametrize("space", [Discrete(6), MultiDiscrete((2, 5, 3))])
def test_random_legal_action_respects_the_mask(space):
    class Masked:
        def action_space(self, params):
            return space

    mask = np.random.default_rng(0).random((4, *space.mask_shape)) < 0.5
    mask[..., 0] = True  # every agent (and factor) has a legal value

    class Obs:
        action_mask = jnp.asarray(mask)

    env, obs = Masked(), Obs()
    draw = jax.jit(jax.vmap(lambda k: soak.random_legal_action(env, k, obs, None)))
    actions = draw(jax.random.split(jax.random.PRNGKey(1), 50))  # [50, 4, *space.shape]
    assert actions.shape == (50, 4, *space.shape) and actions.dtype == space.dtype
    legal = jax.vmap(jax.vmap(space.contains), in_axes=(0, None))(actions, obs.action_mask)
    assert bool(legal.all())

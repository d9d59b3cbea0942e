"""Run directories: interrupt + resume is bit-identical (and equals make_train), bad
checkpoints are refused with one line and leave the others intact, eval, --set resolution.

A tiny probe env (registered for these tests only) keeps compile times to seconds; the
programs are compiled once per spec fingerprint and shared by the tests of this module.
"""

import json
import os
import shutil
import signal

import jax
import numpy as np
import pytest

from dtwin_jax import runs
from dtwin_jax.envs import registry
from dtwin_jax.learners.ppo import make_train

ENV_ID = "probe-counter-v0"
SETS = {"num_envs": 2, "num_steps": 4, "total_timesteps": 48, "update_epochs": 1,
        "num_minibatches": 2, "hidden_sizes": (8,), "chunk_updates": 2, "keep_checkpoints": 3,
        "params.horizon": 3}  # 6 updates in 3 chunks


@pytest.fixture(autouse=True)
def probe_env():
    registry.register(ENV_ID, "probe_envs:CounterEnv")
    yield
    registry.unregister(ENV_ID)


def _spec(**extra):
    return runs.resolve_ppo_spec(ENV_ID, {**SETS, **extra})


def _final_params(run_dir):
    spec, env, params = runs._ppo_spec_of(run_dir)
    init, _ = runs._programs(spec, env, params)
    template = jax.eval_shape(init, jax.random.PRNGKey(spec.run.seed))
    ckpt = runs.Checkpoints(run_dir, spec.run.keep_checkpoints)
    runner, meta = ckpt.restore(ckpt.steps()[-1], template, spec.fingerprint())
    return meta["step"], jax.tree.leaves(jax.device_get(runner))


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
    """A complete 6-update run (3 chunks, checkpoints at 2, 4, 6), shared read-only."""
    registry.register(ENV_ID, "probe_envs:CounterEnv")
    spec, env, params = _spec()
    run_dir = tmp_path_factory.mktemp("whole")
    summary = runs.start_ppo_run(run_dir, spec, env, params, progress=False)
    assert summary["status"] == "complete" and summary["updates_done"] == 6
    return run_dir


def test_interrupted_then_resumed_run_is_bit_identical_and_equals_make_train(tmp_path,
                                                                             whole_run):
    spec, env, params = _spec()

    def interrupt(step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; handled after the chunk

    cut = runs.start_ppo_run(tmp_path, spec, env, params, progress=False, on_chunk=interrupt)
    assert cut["status"] == "interrupted" and cut["updates_done"] == 2
    assert cut["checkpoint_steps"] == [2] and "dtwin resume" in cut["resume_with"]
    assert len(json.loads((tmp_path / "metrics.json").read_text())["reward"]) == 2
    resumed = runs.resume_ppo_run(tmp_path, progress=False)
    assert resumed["status"] == "complete" and resumed["updates_done"] == 6
    step_a, a = _final_params(whole_run)
    step_b, b = _final_params(tmp_path)
    assert step_a == step_b == 6
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert (whole_run / "metrics.json").read_text() == (tmp_path / "metrics.json").read_text()
    for name in ("config.json", "metrics.csv", "summary.json", "figures/training.png"):
        assert (tmp_path / name).is_file(), name
    rows = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("update,") and len(rows) == 7

    # the chunks compute what one make_train scan computes (float tolerance)
    final, metrics = jax.jit(make_train(env, params, spec.ppo))(jax.random.PRNGKey(0))
    for x, y in zip(jax.tree.leaves(jax.device_get(final)), b, strict=True):
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                   rtol=1e-5, atol=1e-6)
    history = json.loads((tmp_path / "metrics.json").read_text())
    np.testing.assert_allclose(metrics["total_loss"], history["total_loss"], rtol=1e-5,
                               atol=1e-6)


def _largest_file(folder):
    files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
    return max(files, key=os.path.getsize)


def test_corrupt_and_foreign_checkpoints_are_refused_and_earlier_ones_survive(tmp_path,
                                                                             whole_run):
    _, env, params = _spec()
    run_dir = tmp_path / "run"
    shutil.copytree(whole_run, run_dir)
    ckpt_dir = run_dir / runs.CHECKPOINT_DIR
    assert sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) == [2, 4, 6]
    victim = _largest_file(ckpt_dir / "6")
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 2)
    with pytest.raises(runs.RunError, match=r"checkpoints/6 .*(truncated|corrupt)") as err:
        runs.resume_ppo_run(run_dir, progress=False)
    assert len(str(err.value).splitlines()) == 1 and "[2, 4]" in str(err.value)
    # the earlier steps are intact, and a resume from one of them finishes the run
    done = runs.resume_ppo_run(run_dir, step=4, progress=False)
    assert done["status"] == "complete" and done["checkpoint_steps"] == [2, 4, 6]
    assert (run_dir / "checkpoints-set-aside").is_dir()  # the bad step 6, kept for forensics

    # a checkpoint of another configuration (another seed) is refused before it is read
    other_spec, *_ = _spec(seed=1)
    other = tmp_path / "other"
    runs.start_ppo_run(other, other_spec, env, params, progress=False)
    shutil.rmtree(ckpt_dir)
    shutil.copytree(other / runs.CHECKPOINT_DIR, ckpt_dir)
    with pytest.raises(runs.RunError, match="different run configuration"):
        runs.resume_ppo_run(run_dir, progress=False)


def test_eval_writes_greedy_results(tmp_path, whole_run):
    shutil.copytree(whole_run, tmp_path, dirs_exist_ok=True)
    out = runs.evaluate_run(tmp_path, steps=6, twins=3)
    assert out["checkpoint_step"] == 6 and out["twins"] == 3
    assert out["trained"]["episodes"] == 6  # horizon 3: two episodes per twin in 6 steps
    assert 0.0 <= out["trained"]["mean_reward"] <= 1.0
    assert json.loads((tmp_path / "eval.json").read_text()) == out


@pytest.mark.parametrize("sets, match", [
    ({"nonsense": 1}, "nonsense"),
    ({"lr": 0}, "lr"),
    ({"ppo.nope": 1}, "unknown ppo key"),
    ({"env.nope": 1}, "unknown env key"),
    ({"x.lr": 1}, "unknown prefix"),
    ({"chunk_updates": 0}, "chunk_updates"),
    ({"params.horizon": 1.5}, "horizon"),
])
def test_bad_sets_are_one_line_errors(sets, match):
    with pytest.raises(runs.RunError, match=match) as err:
        runs.resolve_ppo_spec(ENV_ID, sets)
    assert len(str(err.value).splitlines()) == 1


def test_sets_are_parsed_as_literals_and_resolved_by_namespace():
    assert runs.parse_sets(["a=3", "b=1e-3", "c=(8, 8)", "d=street", "e=True"]) == {
        "a": 3, "b": 1e-3, "c": (8, 8), "d": "street", "e": True}
    with pytest.raises(runs.RunError, match="key=value"):
        runs.parse_sets(["novalue"])
    spec, _, params = runs.resolve_ppo_spec(ENV_ID, {"lr": 1, "hidden_sizes": [4],
                                                     "seed": 5, "goal": 2})
    assert spec.ppo.lr == 1.0 and spec.ppo.hidden_sizes == (4,) and spec.run.seed == 5
    assert int(params.goal) == 2 and spec.params == {"goal": 2}


def test_run_dir_refuses_a_second_run(tmp_path):
    spec, env, params = _spec()
    (tmp_path / runs.CONFIG_FILE).write_text("{}")
    with pytest.raises(runs.RunError, match="already holds a run"):
        runs.start_ppo_run(tmp_path, spec, env, params, progress=False)

"""Multi-host training on ``jax.distributed``: two local processes (gloo on CPU) train one
data-parallel PPO run together and agree with a one-process, one-device run."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from dtwin_jax.launch import spawn_local

# Run in every process of the cluster (by dtwin_jax.launch) and once alone for the reference:
# the same global twin batch everywhere, split over all devices of all processes.
_WORKER = textwrap.dedent("""
    import sys
    import jax, numpy as np
    import dtwin_jax
    from dtwin_jax.learners.ppo import PPOConfig
    from dtwin_jax.parallel import train_sharded, twin_params
    env = dtwin_jax.make("association-v0", num_bs=4, num_macro=1, max_users=6,
                         num_candidates=3, area_m=200.0, shadow_cell_m=20.0)
    batch = twin_params(env, [3, 4, 5, 6], episode_length=4)
    config = PPOConfig(num_steps=4, total_timesteps=4 * 4 * 2, num_minibatches=2,
                       update_epochs=2, hidden_sizes=(8,))
    runner, metrics, _ = train_sharded(env, batch, config, jax.random.PRNGKey(0))
    leaves = [np.asarray(x) for x in jax.tree.leaves(runner.train_state.params)]
    if jax.process_index() == 0:
        np.savez(sys.argv[1], *leaves, value_loss=np.asarray(metrics["value_loss"]))
    print(f"WORKER_OK {jax.process_index()}/{jax.process_count()} {len(jax.devices())} devices")
""")


def test_two_processes_train_together_and_match_one_process(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    # the launcher sets the devices per process: drop a device-count flag, keep the others
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if "device_count" not in f)
    # the one-process reference runs alongside the cluster (its own interpreter, 1 device)
    ref = subprocess.Popen([sys.executable, str(worker), str(tmp_path / "one.npz")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = spawn_local(2, str(worker), [str(tmp_path / "two.npz")], local_devices=2,
                          timeout_s=400, env=env)
    ref_out, ref_err = ref.communicate(timeout=400)
    for i, res in enumerate(results):
        assert f"WORKER_OK {i}/2 4 devices" in res.stdout, res.stderr[-3000:]
    assert "WORKER_OK 0/1 1 devices" in ref_out, ref_err[-3000:]
    two, one = np.load(tmp_path / "two.npz"), np.load(tmp_path / "one.npz")
    assert sorted(two.files) == sorted(one.files) and len(one.files) > 1
    for name in one.files:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)

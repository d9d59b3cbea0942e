"""Paper reproductions: each module holds a frozen config, presets and ``run(config) -> dict``.

* ``lvm_dt``: parallel twins with PPO for user association and load balancing (Tao, Xu, You);
  ``run_demo(out_dir, seed)`` is the ``dtwin demo`` entry point.

Modules are imported on demand (``from dtwin_jax.experiments import lvm_dt``) so that importing
the package stays cheap.
"""

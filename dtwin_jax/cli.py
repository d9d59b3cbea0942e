"""The ``dtwin`` command."""

from __future__ import annotations

import argparse
import sys


def _cmd_demo(args: argparse.Namespace) -> int:
    from dtwin_jax.experiments.lvm_dt import run_demo

    summary = run_demo(out_dir=args.out, seed=args.seed)
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


def _cmd_envs(args: argparse.Namespace) -> int:
    from dtwin_jax.envs import registered_envs

    print("\n".join(registered_envs()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtwin", description="Digital twins of wireless networks in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train PPO user association in parallel twins for a few minutes and plot the result",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(func=_cmd_demo)
    envs = sub.add_parser("envs", help="list the registered environment ids")
    envs.set_defaults(func=_cmd_envs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

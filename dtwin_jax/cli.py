"""The ``dtwin`` command.

Every argument is checked before any work starts: a bad one prints one line to stderr
(``dtwin: error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

MAX_SEED = 2**32 - 1


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _check_out_dir(out: str) -> str | None:
    """Create ``out`` if needed and write a temp file in it; an error message, or None if fine."""
    if os.path.exists(out) and not os.path.isdir(out):
        return f"--out {out!r} exists and is not a directory"
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        return f"--out {out!r} cannot be created: {err.strerror or err}"
    try:
        with tempfile.TemporaryFile(dir=out, prefix=".dtwin-write-test-"):
            pass
    except OSError as err:
        return f"--out {out!r} is not writable: {err.strerror or err}"
    return None


def _check_demo_args(args: argparse.Namespace) -> str | None:
    """The first problem with the ``demo`` arguments as a message, or None if all are valid."""
    if not 0 <= args.seed <= MAX_SEED:
        return f"--seed must be an integer in [0, {MAX_SEED}], got {args.seed}"
    return _check_out_dir(args.out)


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
    """The ``dtwin`` parser; each sub-command sets ``func`` and, if it has one, ``check``."""
    parser = _OneLineParser(
        prog="dtwin", description="Digital twins of wireless networks in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train PPO user association in parallel twins for a few minutes and plot the result",
    )
    demo.add_argument(
        "--out", default="runs/demo",
        help="output folder, created if missing, must be writable (default: runs/demo)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help=f"random seed in [0, {MAX_SEED}] (default: 0)"
    )
    demo.set_defaults(func=_cmd_demo, check=_check_demo_args)
    envs = sub.add_parser("envs", help="list the registered environment ids")
    envs.set_defaults(func=_cmd_envs, check=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, check every argument, then run the sub-command; returns the exit status.

    A bad argument prints one line to stderr and returns 2 (argparse usage errors, such as a
    non-integer ``--seed``, exit with status 2 through SystemExit) before any work starts.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = args.check(args) if args.check is not None else None
    if problem is not None:
        print(f"{parser.prog} {args.command}: error: {problem}", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""moerge: the main job and the tools around the pool."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from moerge import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moerge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"moerge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the main job on an embedded coordinator")
    demo.add_argument(
        "--work-dir",
        type=Path,
        default=Path("demo-output"),
        help="where the coordinator's data and the experts go (default ./demo-output)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from moerge.demo import DemoError, run

        try:
            return run(args.work_dir)
        except DemoError as exc:
            print(f"moerge: error: {exc}", file=sys.stderr)
            return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

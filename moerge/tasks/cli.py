"""The `moerge data` commands: fetch the task data, list the tasks.

Wiring into a parser:

    commands = parser.add_subparsers(dest="command")
    add_commands(commands)
    ...
    if args.command == "data":
        return run(args)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from moerge.tasks.core import TASKS, TaskError, TaskSource, default_data_dir, task_examples
from moerge.tasks.fetch import PACKAGES, FetchError, fetch

_DATA_DIR_HELP = "where the data lives (default $MOERGE_DATA_DIR or ~/.cache/moerge/data)"


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add the `data` command (with `fetch` and `tasks`) to a parser's subcommands."""
    data = subparsers.add_parser("data", help="fetch the benchmark data and list its tasks")
    commands = data.add_subparsers(dest="data_command", required=True)
    get = commands.add_parser(
        "fetch", help="download and extract the Debian packages that hold the task data"
    )
    get.add_argument("--data-dir", type=Path, default=None, help=_DATA_DIR_HELP)
    get.add_argument(
        "--from-dir",
        type=Path,
        default=None,
        help="take the PKG_*.deb files from this folder instead of running apt-get download",
    )
    get.add_argument(
        "--packages",
        nargs="+",
        metavar="P",
        default=None,
        help=f"only these packages (default all {len(PACKAGES)})",
    )
    listing = commands.add_parser("tasks", help="list the tasks and their label counts")
    listing.add_argument("--data-dir", type=Path, default=None, help=_DATA_DIR_HELP)
    return data


def run(args: argparse.Namespace) -> int:
    """Run a `data` subcommand; errors become one `moerge: error: ...` line and exit code 1."""
    try:
        if args.data_command == "fetch":
            where = fetch(args.data_dir, args.packages, args.from_dir)
            print(f"data in {where}")
            return 0
        if args.data_command == "tasks":
            print(tasks_table(args.data_dir or default_data_dir()))
            return 0
    except (TaskError, FetchError) as exc:
        print(f"moerge: error: {exc}", file=sys.stderr)
        return 1
    return 2


def _packages(source: TaskSource) -> str:
    names = source.packages
    return ", ".join(names) if len(names) <= 2 else f"{names[0]} +{len(names) - 1} more"


def _row(source: TaskSource, data_dir: Path) -> list[str]:
    """One table row; a task whose packages are missing says so instead of counts."""
    try:
        labels, pairs = task_examples(source.name, data_dir)
    except TaskError:
        return [source.name, _packages(source), "-", "not fetched", "-", source.description]
    counts = Counter(label for _, label in pairs)
    sizes = [counts[label.name] for label in labels]
    spread = f"{min(sizes)}/{int(statistics.median(sizes))}/{max(sizes)}" if sizes else "-"
    total = str(sum(sizes))
    return [source.name, _packages(source), str(len(labels)), spread, total, source.description]


def tasks_table(data_dir: Path) -> str:
    """The registered tasks as an aligned text table, counted on the data in data_dir."""
    header = ["task", "packages", "labels", "per label min/median/max", "total", "description"]
    rows = [header] + [_row(TASKS[name], Path(data_dir)) for name in sorted(TASKS)]
    widths = [max(len(row[col]) for row in rows) for col in range(len(header) - 1)]
    lines = [
        "  ".join(
            [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)] + [row[-1]]
        )
        for row in rows
    ]
    if any(row[3] == "not fetched" for row in rows):
        flag = "" if Path(data_dir) == default_data_dir() else f" --data-dir {data_dir}"
        lines.append(f"(some data is not in {data_dir}: run `moerge data fetch{flag}`)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m moerge.tasks.cli data ...`, the same commands without the rest of moerge."""
    parser = argparse.ArgumentParser(prog="moerge")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

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
    demo = commands.add_parser(
        "demo", help="run the main job: a community of contributors, a coordinator, a router"
    )
    demo.add_argument(
        "--work-dir",
        type=Path,
        default=Path("demo-output"),
        help="where the coordinator's data, the experts and the results go (default ./demo-output)",
    )
    demo.add_argument("--pool", default="default", help="pool file or name (default: default)")
    demo.add_argument("--data-dir", type=Path, help="task data (default ~/.cache/moerge/data)")
    demo.add_argument(
        "--parallel", type=int, default=2, help="contributors training at once (default 2)"
    )
    _bench_parser(commands)
    from moerge.tasks.cli import add_commands

    add_commands(commands)
    return parser


def _bench_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench", help="train (or reuse) a pool's experts and compare routing methods on its tasks"
    )
    bench.add_argument("--pool", default="default", help="pool file or name (default: default)")
    bench.add_argument(
        "--methods",
        default="centroid,gaussian,learned_gate",
        help="comma-separated methods and systems, or all: routing methods (centroid, gaussian, "
        "learned_gate, retrieval, arrow, phatgoose, lorahub), multitask, merge_linear, "
        "merge_task_arithmetic, merge_ties (default centroid,gaussian,learned_gate)",
    )
    bench.add_argument("--out", type=Path, default=Path("bench-output"), help="results folder")
    bench.add_argument(
        "--cache-dir", type=Path, help="trained experts (default ~/.cache/moerge/experts)"
    )
    bench.add_argument("--data-dir", type=Path, help="task data (default ~/.cache/moerge/data)")
    bench.add_argument(
        "--base-model-dir",
        type=Path,
        help="local directory of the pool's base model (default: the packaged all-MiniLM-L6-v2)",
    )
    bench.add_argument(
        "--combinations",
        "--combination",
        help="how the experts a per-input router chose answer: comma-separated top1, "
        "output_ensemble, parameter_merge; the first serves every router, the others add "
        "text-only rows (default top1; with --methods all, all three)",
    )
    bench.add_argument(
        "--top-k",
        type=int,
        default=2,
        help="experts per input (output_ensemble, parameter_merge) and per token (arrow, "
        "phatgoose) (default 2)",
    )
    bench.add_argument(
        "--few-shot",
        type=int,
        default=5,
        metavar="K",
        help="LoraHub's labelled examples per label of each task (default 5)",
    )
    bench.add_argument(
        "--fresh", action="store_true", help="score every system again, ignoring saved results"
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")


def _bench(args: argparse.Namespace) -> int:
    from moerge.eval import bench
    from moerge.eval.experts import default_cache_dir
    from moerge.eval.pools import load_pool
    from moerge.eval.report import table
    from moerge.tasks import fetch

    pool = load_pool(args.pool)
    methods = bench.parse_methods(args.methods)
    if args.combinations is None:
        every = args.methods.strip() == "all"
        args.combinations = ",".join(bench.INPUT_COMBINATIONS) if every else "top1"
    combinations = bench.parse_combinations(args.combinations)
    if args.top_k < 1 or args.few_shot < 1:
        raise ValueError("--top-k and --few-shot must be at least 1")
    fetch(args.data_dir, progress=not args.no_progress)
    report = bench.run(
        pool,
        methods=methods,
        out_dir=args.out,
        cache_dir=args.cache_dir or default_cache_dir(),
        data_dir=args.data_dir,
        base_dir=args.base_model_dir,
        combinations=combinations,
        top_k=args.top_k,
        few_shot=args.few_shot,
        fresh=args.fresh,
        progress=not args.no_progress,
    )
    print(table(report))
    files = ", ".join(str(args.out / name) for name in report["files"].values())
    print(f"results: {files}")
    print(f"bench took {report['seconds']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from moerge.demo import DemoError
    from moerge.eval.pools import PoolError
    from moerge.tasks import FetchError, TaskError

    try:
        if args.command == "demo":
            from moerge.demo import run

            return run(
                args.work_dir, pool=args.pool, data_dir=args.data_dir, parallel=args.parallel
            )
        if args.command == "bench":
            return _bench(args)
        if args.command == "data":
            from moerge.tasks.cli import run as run_data

            return run_data(args)
    except (DemoError, PoolError, FetchError, TaskError, ValueError, OSError) as exc:
        print(f"moerge: error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

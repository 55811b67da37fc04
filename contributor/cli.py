"""moerge-contributor: upload experts to a coordinator, follow their status, download the pool's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from contributor.client import ClientError, CoordinatorClient
from contributor.config import ConfigError, resolve
from contributor.training import TrainingError
from moerge.experts.manifest import ExpertDirError, ExpertInfo
from moerge.tasks import TaskError


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--coordinator", help="HOST:PORT of the coordinator (env MOERGE_COORDINATOR)"
    )
    parser.add_argument("--token", help="your token (env MOERGE_TOKEN)")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML file with `coordinator` and `token` (default ~/.config/moerge/contributor.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moerge-contributor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser(
        "upload", help="upload an expert directory (resumes broken transfers)"
    )
    upload.add_argument("adapter_dir", type=Path, help="PEFT adapter directory with expert.json")
    upload.add_argument("--name", help="expert name (default: from expert.json)")
    upload.add_argument("--version", help="expert version (default: from expert.json)")
    upload.add_argument(
        "--retries", type=int, default=5, help="resume attempts after a broken stream"
    )
    upload.add_argument("--no-progress", action="store_true", help="no progress bar")
    upload.set_defaults(run=_upload)

    status = commands.add_parser("status", help="your experts and their states")
    status.add_argument("--all", action="store_true", help="include retired experts")
    status.set_defaults(run=_status)

    pool = commands.add_parser("list", help="every expert in the pool")
    pool.add_argument("--base-model", default="", help="only experts of this base model")
    pool.add_argument("--all", action="store_true", help="include retired experts")
    pool.set_defaults(run=_list)

    download = commands.add_parser("download", help="fetch an expert (hash-verified)")
    download.add_argument("expert", help="NAME or NAME:VERSION (default: newest version)")
    download.add_argument("--out", type=Path, default=Path("."), help="directory to write into")
    download.set_defaults(run=_download)

    retire = commands.add_parser("retire", help="take one of your experts out of the pool")
    retire.add_argument("expert", help="NAME:VERSION")
    retire.add_argument("--reason", default="")
    retire.set_defaults(run=_retire)

    commands.add_parser("whoami", help="who the token belongs to").set_defaults(run=_whoami)

    route = commands.add_parser("route", help="which experts the active router picks for texts")
    _query_arguments(route)
    route.add_argument("--top-k", type=int, default=1, help="experts per text (default 1)")
    route.set_defaults(run=_route)

    predict = commands.add_parser("predict", help="routed classification of texts among labels")
    _query_arguments(predict)
    predict.add_argument(
        "--combination",
        default="top1",
        choices=("top1", "output_ensemble", "parameter_merge"),
        help="how the chosen experts answer together: the best alone, their outputs averaged, "
        "or their parameters merged (default top1)",
    )
    predict.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="experts per text for output_ensemble and parameter_merge (default 2)",
    )
    predict.set_defaults(run=_predict)

    router = commands.add_parser("router", help="the active router: version, method, experts")
    router.add_argument("--base-model", default="", help="base model (default all-MiniLM-L6-v2)")
    router.set_defaults(run=_router)
    for command in commands.choices.values():
        _connection(command)
    _local_commands(commands)
    return parser


def _query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", help="texts to route (or --file)")
    parser.add_argument("--file", type=Path, help="one text per line ('-' for stdin)")
    parser.add_argument("--labels-file", type=Path, help="candidate labels with descriptions")
    parser.add_argument("--task", help="take the candidate labels from a built-in task")
    parser.add_argument("--labels", help="comma-separated subset of the task's labels")
    parser.add_argument("--data-dir", type=Path, help="where `moerge data fetch` put the data")
    parser.add_argument("--base-model", default="", help="base model (default all-MiniLM-L6-v2)")
    parser.add_argument("--json", action="store_true", help="one JSON object per text")


def _local_commands(commands: Any) -> None:
    """train and stats run on this machine only; they never contact the coordinator."""
    from contributor import training

    train = commands.add_parser(
        "train", help="train a LoRA expert on your data and compute its routing statistics"
    )
    training.add_data_arguments(train)
    train.add_argument("--out", type=Path, required=True, help="expert directory to write")
    train.add_argument("--name", required=True, help="expert name")
    train.add_argument("--version", default="1", help="expert version (default 1)")
    train.add_argument("--description", help="task description (default: the task's own)")
    train.add_argument("--base-model-dir", help="local base model (default all-MiniLM-L6-v2)")
    train.add_argument("--base-model", help="its registered name (default: the directory's)")
    train.add_argument("--epochs", type=int, default=3, help="at most (default 3)")
    train.add_argument("--patience", type=int, default=1, help="early-stopping patience")
    train.add_argument("--learning-rate", type=float, default=3e-3, help="default 3e-3")
    train.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    train.add_argument("--batch-size", type=int, default=32, help="default 32")
    train.add_argument("--max-length", type=int, default=64, help="tokens per text (default 64)")
    train.add_argument("--seed", type=int, default=0, help="default 0")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    train.add_argument("--no-stats", action="store_true", help="skip the routing statistics")
    train.add_argument(
        "--noise-multiplier",
        type=float,
        default=0.0,
        help="Gaussian noise on the statistics for differential privacy (see docs)",
    )
    _extra_stats_arguments(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(run=training.train)

    stats = commands.add_parser(
        "stats", help="(re)compute an expert's routing statistics from its training data"
    )
    stats.add_argument("expert_dir", type=Path)
    training.add_data_arguments(stats)
    stats.add_argument("--base-model-dir", help="local base model (default all-MiniLM-L6-v2)")
    stats.add_argument("--base-model", help="its registered name")
    stats.add_argument("--noise-multiplier", type=float, default=0.0, help="see docs")
    stats.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    _extra_stats_arguments(stats)
    stats.set_defaults(run=training.stats)


def _extra_stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gate-steps",
        type=int,
        default=60,
        help="steps of PHATGOOSE gate training after the expert, for per-token routing "
        "(default 60; 0 skips the gates)",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=0,
        metavar="N",
        help="opt-in: also share base-model embeddings of N training inputs, for retrieval "
        "routing (default 0: none; see docs/contributor.md on what they reveal)",
    )


def _client(args: argparse.Namespace) -> CoordinatorClient:
    config = resolve(args.coordinator, args.token, args.config)
    return CoordinatorClient(config.coordinator, config.token)


def _split(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition(":")
    return name, version


def _upload(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.no_progress:
            return
        if bar is None:
            bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="upload",
                file=sys.stderr,
                dynamic_ncols=True,
            )
        bar.n = done
        bar.refresh()

    with _client(args) as client:
        try:
            result = client.upload(
                args.adapter_dir,
                progress=progress,
                retries=args.retries,
                name=args.name,
                version=args.version,
            )
        finally:
            if bar is not None:
                bar.close()
    m = result.expert.manifest
    if result.already_existed:
        print(f"{m.ref} is already in the pool (id {result.expert.id}); nothing to send")
    else:
        resumed = f" after {result.attempts - 1} resume(s)" if result.attempts > 1 else ""
        print(
            f"uploaded {m.ref} ({_size(m.total_size)}, {len(m.files)} files){resumed}: "
            f"id {result.expert.id}, status {result.expert.status}"
        )
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _table(experts: list[ExpertInfo]) -> None:
    print(f"{'EXPERT':36} {'STATUS':12} {'CONTRIBUTOR':16} {'BASE MODEL':20} {'SIZE':>10}  CREATED")
    for e in experts:
        m = e.manifest
        print(
            f"{m.ref:36} {e.status:12} {e.contributor:16} {m.base_model_name:20} "
            f"{_size(m.total_size):>10}  {e.created_at:%Y-%m-%d %H:%M}"
        )
    print(f"{len(experts)} expert(s)")


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        me = client.whoami()
        experts = client.list_experts(mine=True, include_retired=args.all)
    print(f"contributor {me.name} at {args.coordinator or client.address}")
    _table(experts)
    return 0


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _table(client.list_experts(base_model=args.base_model, include_retired=args.all))
    return 0


def _download(args: argparse.Namespace) -> int:
    name, version = _split(args.expert)
    with _client(args) as client:
        info, path = client.download(name, version, args.out)
    print(
        f"downloaded {info.manifest.ref} to {path} ({len(info.manifest.files)} files, sha256 verified)"
    )
    return 0


def _retire(args: argparse.Namespace) -> int:
    name, version = _split(args.expert)
    if not version:
        raise ClientError("retire needs NAME:VERSION")
    with _client(args) as client:
        info = client.retire(name, version, args.reason)
    print(f"{info.manifest.ref} is now {info.status}")
    return 0


def _whoami(args: argparse.Namespace) -> int:
    from moerge._proto.v1 import contributors_pb2 as cpb

    with _client(args) as client:
        me = client.whoami()
    role = cpb.Role.Name(me.role).removeprefix("ROLE_").lower()
    print(f"{me.name} ({role}), {me.active_experts} active expert(s)")
    return 0


def _route(args: argparse.Namespace) -> int:
    from contributor.training import dump, read_labels, read_texts

    texts, labels = read_texts(args), read_labels(args)
    with _client(args) as client:
        routed = client.route(texts, labels=labels, top_k=args.top_k, base_model=args.base_model)
    for text, (experts, abstained) in zip(texts, routed.routes, strict=True):
        if args.json:
            print(dump({"text": text, "experts": experts, "abstained": abstained}))
            continue
        chosen = (
            "base model (abstained)"
            if abstained
            else ", ".join(f"{ref} {weight:.2f}" for ref, weight in experts)
        )
        print(f"{chosen}\t{_short(text)}")
    print(f"router version {routed.router_version} ({routed.method})", file=sys.stderr)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from contributor.training import dump, read_labels, read_texts

    texts, labels = read_texts(args), read_labels(args)
    if len(labels) < 2:
        raise ClientError("predict needs candidate labels: --labels-file FILE or --task NAME")
    with _client(args) as client:
        out = client.predict(
            texts,
            labels,
            combination=args.combination,
            top_k=args.top_k,
            base_model=args.base_model,
        )
    for text, (label, score, experts) in zip(texts, out.answers, strict=True):
        if args.json:
            print(dump({"text": text, "label": label, "score": score, "experts": experts}))
            continue
        by = ", ".join(ref for ref, _ in experts) or "base model"
        print(f"{label}\t{score:.2f}\t{by}\t{_short(text)}")
    print(f"router version {out.router_version} ({out.method})", file=sys.stderr)
    return 0


def _router(args: argparse.Namespace) -> int:
    import json

    with _client(args) as client:
        info = client.router(args.base_model)
    metrics = json.loads(info.metrics_json or "{}")
    print(
        f"router {info.base_model_name} version {info.version} ({info.method}), "
        f"{len(info.experts)} experts, created {info.created_at.ToDatetime():%Y-%m-%d %H:%M:%S}"
    )
    for ref in info.experts:
        print(f"  {ref}")
    for key in sorted(k for k, v in metrics.items() if isinstance(v, float)):
        print(f"{key}: {metrics[key]:.4f}")
    return 0


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ClientError, ConfigError, ExpertDirError, OSError, TrainingError, TaskError) as exc:
        print(f"moerge-contributor: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

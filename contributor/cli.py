"""moerge-contributor: upload experts to a coordinator, follow their status, download the pool's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from contributor.client import ClientError, CoordinatorClient
from contributor.config import ConfigError, resolve
from moerge.experts.manifest import ExpertDirError, ExpertInfo


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
    for command in commands.choices.values():
        _connection(command)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ClientError, ConfigError, ExpertDirError, OSError) as exc:
        print(f"moerge-contributor: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

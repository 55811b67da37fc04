"""moerge-coordinator: serve the pool, migrate the registry, manage tokens and base models."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from coordinator.settings import MiB, Settings


class CliError(Exception):
    """An error the user can fix; printed as one line."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="registry, blobs and uploads (env MOERGE_DATA_DIR)"
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL, e.g. postgresql://user@host/db "
        "(env MOERGE_DATABASE_URL; default: SQLite under --data-dir)",
    )


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {
        k: v
        for k, v in {"data_dir": args.data_dir, "database_url": args.database_url, **extra}.items()
        if v is not None
    }
    from pydantic import ValidationError as SettingsError

    try:
        return Settings(**overrides)
    except SettingsError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moerge-coordinator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the coordinator's gRPC server")
    _common(serve)
    serve.add_argument(
        "--grpc-host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)"
    )
    serve.add_argument("--grpc-port", type=int, help="port (default 50051; 0 picks a free one)")
    serve.add_argument("--max-file-mb", type=float, help="largest file of an expert, in MiB")
    serve.add_argument("--max-expert-mb", type=float, help="largest expert, in MiB")
    serve.add_argument(
        "--max-streams-per-contributor",
        type=int,
        help="uploads one contributor may send at once (default 4)",
    )
    serve.add_argument(
        "--upload-ttl", type=float, help="seconds before a partial upload is deleted"
    )
    serve.add_argument(
        "--gc-interval", type=float, help="seconds between collections of partial uploads"
    )
    serve.add_argument(
        "--shutdown-grace", type=float, help="seconds in-flight calls get on shutdown"
    )
    serve.add_argument(
        "--no-default-base-model",
        action="store_true",
        help="do not register all-MiniLM-L6-v2 on first start",
    )
    serve.add_argument(
        "--router-method", help="routing method the gating job trains (default gaussian)"
    )
    serve.add_argument(
        "--retrain-every",
        type=float,
        help="seconds between scheduled gating runs (default 0: only when the pool changes)",
    )
    serve.add_argument(
        "--retrain-delay",
        type=float,
        help="seconds to wait after a pool change before training (default 2)",
    )
    serve.add_argument(
        "--no-retrain-on-change",
        action="store_true",
        help="do not run the gating job when experts are uploaded or retired",
    )
    serve.add_argument(
        "--expert-cache-size", type=int, help="experts kept loaded for Predict (default 8)"
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="refuse to start when the registry needs a migration instead of running it",
    )
    serve.set_defaults(run=_serve)

    mig = commands.add_parser("migrate", help="upgrade (or downgrade) the registry's schema")
    _common(mig)
    mig.add_argument("--revision", default="head", help="target revision (default head)")
    mig.add_argument("--downgrade", action="store_true", help="downgrade to --revision")
    mig.set_defaults(run=_migrate)

    tokens = commands.add_parser("tokens", help="create, list, rotate and revoke tokens")
    sub = tokens.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="a new contributor; prints its token as the last line")
    create.add_argument("name")
    create.add_argument("--role", choices=("contributor", "admin"), default="contributor")
    create.set_defaults(run=_tokens_create)
    for action, run, text in (
        ("revoke", _tokens_revoke, "revoke a contributor's token"),
        ("rotate", _tokens_rotate, "issue a new token (printed last)"),
    ):
        cmd = sub.add_parser(action, help=text)
        cmd.add_argument("name")
        cmd.set_defaults(run=run)
    sub.add_parser("list", help="every contributor").set_defaults(run=_tokens_list)
    for cmd in sub.choices.values():
        _common(cmd)

    base = commands.add_parser("base-models", help="register and list base models")
    bsub = base.add_subparsers(dest="action", required=True)
    reg = bsub.add_parser("register", help="register a local Hugging Face model directory")
    reg.add_argument("path", type=Path)
    reg.add_argument("--name", help="name in the registry (default: the directory's name)")
    reg.set_defaults(run=_base_register)
    bsub.add_parser("list", help="registered base models").set_defaults(run=_base_list)
    for cmd in bsub.choices.values():
        _common(cmd)

    train = commands.add_parser(
        "train-router", help="run the gating job now: learn and activate a new router version"
    )
    _common(train)
    train.add_argument("--base-model", default=None, help="base model (default all-MiniLM-L6-v2)")
    train.add_argument("--method", help="routing method (default: the configured one, gaussian)")
    train.add_argument("--seed", type=int, default=0, help="seed of the fit (default 0)")
    train.set_defaults(run=_train_router)

    rlist = commands.add_parser("routers", help="router versions of a base model")
    _common(rlist)
    rlist.add_argument("--base-model", default=None, help="base model (default all-MiniLM-L6-v2)")
    rlist.set_defaults(run=_routers_list)
    return parser


def _train_router(args: argparse.Namespace) -> int:
    from coordinator.blobs import BlobStore
    from coordinator.gating import GatingJob
    from coordinator.runtime import Runtimes
    from moerge.models import DEFAULT_BASE_MODEL

    settings = _settings(args, router_method=args.method)  # checks the method
    sessions = _sessions(settings)
    blobs = BlobStore(settings.blob_dir)
    runtimes = Runtimes(sessions, blobs, settings.expert_cache_dir, capacity=1)
    job = GatingJob(sessions, blobs, runtimes, method=settings.router_method, seed=args.seed)
    view = job.run(args.base_model or DEFAULT_BASE_MODEL, reason="on demand", actor="cli")
    print(f"router {view.base_model_name} version {view.version} ({view.method}) is active")
    print(f"experts: {', '.join(view.experts)}")
    for key in sorted(view.metrics):
        if isinstance(view.metrics[key], float):
            print(f"  {key}: {view.metrics[key]:.4f}")
    return 0


def _routers_list(args: argparse.Namespace) -> int:
    from coordinator.services import routers
    from moerge.models import DEFAULT_BASE_MODEL

    base = args.base_model or DEFAULT_BASE_MODEL
    with _sessions(_settings(args))() as session:
        views = routers.list_versions(session, base_model_name=base)
    if not views:
        print(f"no routers for {base} yet")
    for v in views:
        mark = "*" if v.active else " "
        accuracy = v.metrics.get("synthetic_routing_accuracy")
        shown = f"  synthetic routing accuracy {accuracy:.3f}" if accuracy is not None else ""
        print(
            f"{mark} v{v.version:<4} {v.method:14} {len(v.experts):>3} experts  "
            f"{v.created_at:%Y-%m-%d %H:%M:%S}{shown}"
        )
    return 0


def _sessions(settings: Settings) -> Any:
    from coordinator.registry.db import make_engine, session_factory
    from coordinator.server import prepare_database

    prepare_database(settings)
    return session_factory(make_engine(settings.url))


def _serve(args: argparse.Namespace) -> int:
    from coordinator.server import Coordinator, prepare_database

    extra = {
        "grpc_host": args.grpc_host,
        "grpc_port": args.grpc_port,
        "max_file_bytes": int(args.max_file_mb * MiB) if args.max_file_mb else None,
        "max_expert_bytes": int(args.max_expert_mb * MiB) if args.max_expert_mb else None,
        "upload_ttl_seconds": args.upload_ttl,
        "max_streams_per_contributor": args.max_streams_per_contributor,
        "gc_interval_seconds": args.gc_interval,
        "shutdown_grace_seconds": args.shutdown_grace,
        "default_base_model": False if args.no_default_base_model else None,
        "router_method": args.router_method,
        "retrain_every_seconds": args.retrain_every,
        "retrain_delay_seconds": args.retrain_delay,
        "retrain_on_change": False if args.no_retrain_on_change else None,
        "expert_cache_size": args.expert_cache_size,
    }
    settings = _settings(args, **extra)
    prepare_database(settings, migrate_schema=not args.no_migrate)
    coordinator = Coordinator(settings)
    port = coordinator.start()

    def shutdown(signum: int, _frame: Any) -> None:
        print(
            f"received {signal.Signals(signum).name}: finishing in-flight calls "
            f"(up to {settings.shutdown_grace_seconds:g}s)",
            flush=True,
        )
        coordinator.stop()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(f"registry: {_redact(settings.url)}", flush=True)
    print(f"data: {settings.data_dir.resolve()}", flush=True)
    print(f"moerge coordinator listening on {settings.grpc_host}:{port}", flush=True)
    coordinator.wait()
    coordinator.stop()
    print("coordinator stopped", flush=True)
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _migrate(args: argparse.Namespace) -> int:
    from coordinator.registry import migrate

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.downgrade:
        migrate.downgrade(settings.url, args.revision)
    else:
        migrate.upgrade(settings.url, args.revision)
    print(
        f"registry {_redact(settings.url)} is at revision {migrate.current(settings.url) or 'base'}"
    )
    return 0


def _tokens_create(args: argparse.Namespace) -> int:
    from coordinator.services import contributors

    with _sessions(_settings(args)).begin() as session:
        view, token = contributors.create(session, name=args.name, role=args.role, actor="cli")
    print(f"created {view.role} {view.name!r}; the token is shown once, store it now:")
    print(token)
    return 0


def _tokens_rotate(args: argparse.Namespace) -> int:
    from coordinator.services import contributors

    with _sessions(_settings(args)).begin() as session:
        token = contributors.rotate(session, name=args.name, actor="cli")
    print(f"new token for {args.name!r}; the old one no longer works:")
    print(token)
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    from coordinator.services import contributors

    with _sessions(_settings(args)).begin() as session:
        contributors.revoke(session, name=args.name, actor="cli")
    print(f"revoked the token of {args.name!r}; its experts stay in the pool")
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    from coordinator.services import contributors

    with _sessions(_settings(args))() as session:
        views = contributors.list_all(session)
    print(f"{'NAME':24} {'ROLE':12} {'STATE':8} {'EXPERTS':>7}  CREATED")
    for v in views:
        state = "revoked" if v.revoked else "active"
        print(
            f"{v.name:24} {v.role:12} {state:8} {v.active_experts:>7}  {v.created_at:%Y-%m-%d %H:%M}"
        )
    return 0


def _base_register(args: argparse.Namespace) -> int:
    from coordinator.services import base_models
    from moerge.models import describe

    sessions = _sessions(_settings(args))
    spec = describe(args.path, args.name or args.path.resolve().name)
    with sessions.begin() as session:
        _, created = base_models.register(session, spec=spec, actor="cli", path=args.path)
    verb = "registered" if created else "already registered:"
    print(
        f"{verb} {spec.name} fingerprint {spec.fingerprint} "
        f"({spec.hidden_size}-d, {len(spec.linear_modules)} linear modules)"
    )
    return 0


def _base_list(args: argparse.Namespace) -> int:
    from coordinator.services import base_models

    with _sessions(_settings(args))() as session:
        models = base_models.list_all(session)
    for spec, created in models:
        print(f"{spec.name:32} {spec.fingerprint}  {spec.hidden_size}-d  {created:%Y-%m-%d %H:%M}")
    if not models:
        print("no base models registered")
    return 0


def _one_line(exc: Exception) -> str:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):  # the driver's own words, without SQLAlchemy's wrapping
        return f"registry database: {str(exc.orig).strip().splitlines()[0]}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors the user can act on from their message alone."""
    from sqlalchemy.exc import ArgumentError, OperationalError

    from coordinator.server import SchemaError
    from coordinator.services.errors import ServiceError
    from moerge.experts.validation import ValidationError
    from moerge.models import BaseModelError

    return (
        ServiceError,
        BaseModelError,
        CliError,
        OSError,
        SchemaError,
        ValidationError,
        OperationalError,
        ArgumentError,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line for the user, not a traceback
        if isinstance(exc, _user_errors()):
            print(f"moerge-coordinator: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())

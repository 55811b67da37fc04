"""Upload throughput through the whole stack, against a bare gRPC stream of the same bytes.

    .venv/bin/python benchmarks/upload_throughput.py [--mb 100] [--repeats 3]

Builds a LoRA adapter of about --mb megabytes with valid shapes for
all-MiniLM-L6-v2, then, in one run and alternating:
  * uploads it with the contributor client to a real coordinator process
    (auth, manifest, 1 MiB chunks, hashing on both sides, validation, blob
    store, commit), each time as a new version with different bytes;
  * streams the same bytes in 1 MiB messages to a bare gRPC server process
    that only counts them.
  * streams them once more to a bare server that writes each stream to a
    new file and fsyncs it, the floor of any durable upload.
It prints the best throughput of each and the ratios (target: >= 0.5 to the bare stream).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHUNK = 1024 * 1024
METHOD = "/bench.Sink/Consume"
MiB = 1024 * 1024
BYTES_PER_RANK = 165_888  # MiniLM, LoRA on query, key, value and every dense layer, float32


def bare_server(spool: Path | None) -> None:
    """A client-streaming gRPC method that counts bytes (and, with a spool, writes and fsyncs them)."""

    def consume(requests, context):  # type: ignore[no-untyped-def]
        if spool is None:
            return struct.pack("<Q", sum(len(r) for r in requests))
        fd, name = tempfile.mkstemp(dir=spool)
        with os.fdopen(fd, "wb") as handle:
            total = sum(handle.write(r) for r in requests)
            handle.flush()
            os.fsync(handle.fileno())
        return struct.pack("<Q", total)

    handler = grpc.method_handlers_generic_handler(
        "bench.Sink",
        {
            "Consume": grpc.stream_unary_rpc_method_handler(consume),
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(4),
        handlers=[handler],
        options=[("grpc.max_receive_message_length", 2 * CHUNK)],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


def _start(args: list[str], tmp: Path) -> tuple[subprocess.Popen[str], str]:
    log = open(tmp / f"log-{len(list(tmp.iterdir()))}.txt", "w+")  # noqa: SIM115
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        log.seek(0)
        if match := re.search(r"listening on (\S+):(\d+)", log.read()):
            return process, f"127.0.0.1:{match.group(2)}"
        if process.poll() is not None:
            log.seek(0)
            raise SystemExit("server exited:\n" + log.read())
        time.sleep(0.1)
    raise SystemExit("server did not start")


def bare_upload(address: str, path: Path) -> float:
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 2 * CHUNK)])
    consume = channel.stream_unary(METHOD)

    def chunks():  # type: ignore[no-untyped-def]
        with open(path, "rb") as handle:
            while data := handle.read(CHUNK):
                yield data

    started = time.perf_counter()
    received = struct.unpack("<Q", consume(chunks()))[0]
    elapsed = time.perf_counter() - started
    channel.close()
    assert received == path.stat().st_size
    return elapsed


def make_variant(source: Path, target: Path, i: int) -> Path:
    """A copy of the expert whose last float differs, so no upload is a no-op or a blob hit."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    weights = target / "adapter_model.safetensors"
    with open(weights, "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(struct.pack("<f", 1e-3 * (i + 1)))
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="adapter size in MB (10^6 bytes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spool", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.spool)
        return 0

    from contributor.client import CoordinatorClient
    from moerge.experts.adapters import create_lora
    from moerge.models import DEFAULT_BASE_MODEL, default_base_model_path

    rank = max(1, round(args.mb * 1e6 / BYTES_PER_RANK))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print(f"building a rank-{rank} LoRA adapter for {DEFAULT_BASE_MODEL} …", flush=True)
        expert = create_lora(
            default_base_model_path(),
            tmp / "expert",
            name="bench",
            base_name=DEFAULT_BASE_MODEL,
            rank=rank,
            target_modules=("query", "key", "value", "dense"),
        )
        size = (expert / "adapter_model.safetensors").stat().st_size
        print(f"adapter_model.safetensors: {size / 1e6:.1f} MB", flush=True)
        coordinator, address = _start(
            [
                sys.executable,
                "-m",
                "coordinator",
                "serve",
                "--data-dir",
                str(tmp / "data"),
                "--grpc-port",
                "0",
            ],
            tmp,
        )
        bare, bare_address = _start([sys.executable, __file__, "--bare-server"], tmp)
        (tmp / "spool").mkdir()
        disk, disk_address = _start(
            [sys.executable, __file__, "--bare-server", "--spool", str(tmp / "spool")], tmp
        )
        try:
            token = (
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "coordinator",
                        "tokens",
                        "create",
                        "bench",
                        "--data-dir",
                        str(tmp / "data"),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            stack, floor, disk_floor = [], [], []
            with CoordinatorClient(address, token, timeout=600) as client:
                client.upload(make_variant(expert, tmp / "warm", 99), version="warm-up")
                for i in range(args.repeats):
                    variant = make_variant(expert, tmp / f"v{i}", i)
                    floor.append(bare_upload(bare_address, variant / "adapter_model.safetensors"))
                    disk_floor.append(
                        bare_upload(disk_address, variant / "adapter_model.safetensors")
                    )
                    started = time.perf_counter()
                    result = client.upload(variant, version=f"run-{i}")
                    stack.append(time.perf_counter() - started)
                    assert not result.already_existed and result.expert.status == "active"
                    print(
                        f"  run {i + 1}: whole stack {size / stack[-1] / MiB:7.1f} MiB/s   "
                        f"bare gRPC {size / floor[-1] / MiB:7.1f} MiB/s   "
                        f"bare gRPC to disk {size / disk_floor[-1] / MiB:7.1f} MiB/s",
                        flush=True,
                    )
        finally:
            for process in (coordinator, bare, disk):
                process.terminate()
                process.wait(60)
    best_stack, best_floor = size / min(stack) / MiB, size / min(floor) / MiB
    print(
        f"\nwhole stack (auth, manifest, chunks, hashing, validation, commit): {best_stack:.1f} MiB/s"
    )
    print(
        f"bare gRPC stream of the same bytes over loopback:                 {best_floor:.1f} MiB/s"
    )
    best_disk = size / min(disk_floor) / MiB
    print(f"bare gRPC stream written to a new file and fsynced:              {best_disk:.1f} MiB/s")
    print(f"ratio to the bare stream: {best_stack / best_floor:.2f} (target >= 0.5)")
    print(f"ratio to the bare stream written to disk: {best_stack / best_disk:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The main job on the embedded default: a coordinator, a contributor, an expert, the pool.

The coordinator and the contributor run as separate processes through their
own command-line apps, exactly as on separate machines, only on loopback.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from moerge.experts.manifest import Label
from moerge.models import DEFAULT_BASE_MODEL, default_base_model_path

LISTENING = re.compile(r"listening on (\S+):(\d+)")


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def _step(n: int, total: int, text: str) -> None:
    print(f"\n[{n}/{total}] {text}", flush=True)


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise DemoError(
            f"`{' '.join(args[:2])}` failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


class _Coordinator:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coordinator",
                "serve",
                "--data-dir",
                str(data_dir),
                "--grpc-port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            print(f"    coordinator | {line.rstrip()}", flush=True)

    def wait_ready(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := LISTENING.search(line):
                    return f"127.0.0.1:{match.group(2)}"
            if self.process.poll() is not None:
                raise DemoError("the coordinator exited: " + "".join(self.lines[-5:]).strip())
            time.sleep(0.1)
        raise DemoError("the coordinator did not start in time")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def run(work_dir: Path) -> int:
    work_dir = Path(work_dir).resolve()
    data_dir = work_dir / "coordinator"
    shutil.rmtree(data_dir, ignore_errors=True)
    started = time.monotonic()
    total = 5
    _step(1, total, f"starting an embedded coordinator (SQLite + local blobs in {data_dir})")
    coordinator = _Coordinator(data_dir)
    try:
        address = coordinator.wait_ready()
        _step(2, total, "creating a contributor token")
        token = (
            _run("coordinator", "tokens", "create", "demo-contributor", "--data-dir", str(data_dir))
            .strip()
            .splitlines()[-1]
        )
        print(f"    token for demo-contributor: {token[:14]}… (only its hash is stored)")
        _step(3, total, f"building a LoRA expert on {DEFAULT_BASE_MODEL} with peft")
        expert_dir = _build_expert(work_dir / "experts" / "minilm-demo")
        _step(4, total, f"uploading it to {address} over gRPC")
        connection = ["--coordinator", address, "--token", token]
        print("    " + _run("contributor", "upload", str(expert_dir), *connection).strip())
        _step(5, total, "the pool")
        print(
            "\n".join(
                "    " + line for line in _run("contributor", "list", *connection).splitlines()
            )
        )
    finally:
        print("\nshutting the coordinator down", flush=True)
        code = coordinator.stop()
    print(f"\ndone in {time.monotonic() - started:.0f}s (coordinator exit code {code})")
    print(f"  registry:  {data_dir / 'registry.sqlite3'}")
    print(f"  blobs:     {data_dir / 'blobs'}")
    print(f"  expert:    {expert_dir}")
    return 0 if code == 0 else 1


def _build_expert(out_dir: Path) -> Path:
    from moerge.experts.adapters import create_lora

    shutil.rmtree(out_dir, ignore_errors=True)
    labels = [
        Label("positive", "a positive, happy statement"),
        Label("negative", "a negative, sad statement"),
    ]
    path = create_lora(
        default_base_model_path(),
        out_dir,
        name="minilm-demo",
        version="1",
        base_name=DEFAULT_BASE_MODEL,
        rank=8,
        target_modules=("query", "value"),
        task_description="sentiment of short statements (untrained demo adapter)",
        labels=labels,
    )
    print(f"    wrote {path} ({', '.join(sorted(p.name for p in path.iterdir()))})")
    return path

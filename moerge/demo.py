"""The main job: a community of contributors, an embedded coordinator, a learned router.

Every actor runs as its own process through its own command-line app, exactly as
on separate machines, only on loopback: the coordinator (SQLite + local blobs),
and one process per contributor and step, each with its own token and its own
data, training its experts locally and uploading them over gRPC. The
coordinator's gating job learns the router from the uploaded statistics; the
demo then asks the coordinator for routed predictions and scores every system
on the pool's tasks with `moerge bench`, reusing the experts just trained.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from moerge.eval.pools import ExpertSpec, PoolSpec, load_pool

LISTENING = re.compile(r"listening on (\S+):(\d+)")
ROUTER_METHODS = ("centroid", "gaussian", "learned_gate")
_print_lock = threading.Lock()


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def _step(n: int, total: int, text: str) -> None:
    say(f"\n[{n}/{total}] {text}")


def _run(*args: str, prefix: str = "", env: dict[str, str] | None = None) -> str:
    """Run `python -m ARGS`, echo its output with a prefix, fail with its last words."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if prefix and "\r" not in line and line.strip():
            say(f"    {prefix} | {line.rstrip()}")
    if process.wait() != 0:
        tail = "".join(lines[-3:]).strip()
        raise DemoError(f"`{' '.join(args[:2])}` failed: {tail}")
    return "".join(lines)


class _Coordinator:
    def __init__(self, data_dir: Path, method: str) -> None:
        self.lines: list[str] = []
        command = [sys.executable, "-m", "coordinator", "serve", "--data-dir", str(data_dir)]
        command += ["--grpc-port", "0", "--router-method", method]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            say(f"    coordinator | {line.rstrip()}")

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


def _train_args(pool: PoolSpec, expert: ExpertSpec, out: Path, data_dir: Path | None) -> list[str]:
    split, t = pool.expert_split(expert), pool.training
    args = ["contributor", "train", "--task", expert.task, "--name", expert.name, "--out", str(out)]
    if expert.labels:
        args += ["--labels", ",".join(expert.labels)]
    if expert.description:
        args += ["--description", expert.description]
    if data_dir:
        args += ["--data-dir", str(data_dir)]
    args += ["--train-per-class", str(split.train), "--validation-per-class", str(split.validation)]
    args += ["--test-per-class", str(split.test), "--split-seed", str(split.seed)]
    args += ["--epochs", str(t.epochs), "--patience", str(t.patience), "--rank", str(t.rank)]
    args += ["--learning-rate", str(t.learning_rate), "--batch-size", str(t.batch_size)]
    args += ["--max-length", str(t.max_length), "--seed", str(t.seed), "--no-progress"]
    args += ["--gate-steps", str(pool.gates.steps), "--examples", str(pool.stats.examples)]
    return args


def _contributor(
    name: str,
    experts: Sequence[tuple[ExpertSpec, Path]],
    pool: PoolSpec,
    connection: list[str],
    data_dir: Path | None,
    threads: int,
) -> None:
    """One contributor: train each of its experts on its own data, then upload it."""
    from moerge.eval.experts import is_complete

    for expert, out in experts:
        if is_complete(out):
            say(f"    {name} | {expert.name}: already trained at {out}")
        else:
            args = _train_args(pool, expert, out, data_dir) + ["--threads", str(threads)]
            _run(*args, prefix=name)
        _run("contributor", "upload", str(out), "--no-progress", *connection, prefix=name)


def _wait_for_router(connection: list[str], experts: int, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = _run("contributor", "router", *connection)
            if f", {experts} experts" in last.splitlines()[0]:
                return last
        except DemoError as exc:
            last = str(exc)
        time.sleep(2)
    raise DemoError(f"no router over all {experts} experts in {timeout:.0f}s: {last}")


def run(
    work_dir: Path, *, pool: str = "default", data_dir: Path | None = None, parallel: int = 2
) -> int:
    from moerge.eval.experts import expert_dir
    from moerge.models import default_base_model_path, fingerprint
    from moerge.tasks import fetch

    spec = load_pool(pool)
    work_dir = Path(work_dir).resolve()
    coordinator_dir = work_dir / "coordinator"
    shutil.rmtree(coordinator_dir, ignore_errors=True)
    cache_dir = work_dir / "experts"
    started = time.monotonic()
    total = 7
    _step(1, total, "fetching the task data (Debian packages of real text)")
    fetch(data_dir)
    base_print = fingerprint(default_base_model_path())
    _step(2, total, f"starting an embedded coordinator (SQLite + local blobs in {coordinator_dir})")
    coordinator = _Coordinator(coordinator_dir, "gaussian")
    try:
        address = coordinator.wait_ready()
        people = sorted({e.contributor for e in spec.experts})
        _step(3, total, f"creating a token for each of {len(people)} contributors")
        tokens = {}
        for person in people:
            out = _run(
                "coordinator", "tokens", "create", person, "--data-dir", str(coordinator_dir)
            )
            tokens[person] = out.strip().splitlines()[-1]
            say(f"    {person}: {tokens[person][:14]}… (the coordinator keeps only its hash)")
        _step(
            4,
            total,
            f"{len(people)} contributors train {len(spec.experts)} LoRA experts on their own "
            f"data ({parallel} at a time) and upload them over gRPC",
        )
        threads = max(1, (os.cpu_count() or 2) // max(parallel, 1))
        with ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool_exec:
            jobs = [
                pool_exec.submit(
                    _contributor,
                    person,
                    [
                        (e, expert_dir(spec, e, cache_dir, base_print))
                        for e in spec.experts
                        if e.contributor == person
                    ],
                    spec,
                    ["--coordinator", address, "--token", tokens[person]],
                    data_dir,
                    threads,
                )
                for person in people
            ]
            for job in jobs:
                job.result()
        connection = ["--coordinator", address, "--token", tokens[people[0]]]
        _step(5, total, "the coordinator's gating job learns the router from the statistics")
        for line in _wait_for_router(connection, len(spec.experts)).splitlines():
            say(f"    {line}")
        _step(6, total, "routed predictions from the coordinator (Predict over gRPC)")
        _show_predictions(connection, spec, data_dir)
        _step(7, total, "evaluation: every system on every task of the pool")
        results = _evaluate(spec, work_dir, cache_dir, data_dir)
    finally:
        say("\nshutting the coordinator down")
        code = coordinator.stop()
    say(f"\ndone in {time.monotonic() - started:.0f}s (coordinator exit code {code})")
    say(f"  registry:  {coordinator_dir / 'registry.sqlite3'}")
    say(f"  blobs:     {coordinator_dir / 'blobs'}")
    say(f"  experts:   {cache_dir}")
    say(f"  results:   {results / 'results.json'} and {results / 'table.md'}")
    return 0 if code == 0 else 1


def _show_predictions(connection: list[str], spec: PoolSpec, data_dir: Path | None) -> None:
    from moerge.tasks import Split, load_task

    shown = [(spec.experts[0].task, spec.experts[0].labels), *((t, ()) for t in spec.heldout)]
    for task_name, labels in shown[:2]:
        task = load_task(
            task_name,
            data_dir,
            split=Split(train=1, validation=1, test=1),
            labels=list(labels) or None,
        )
        texts = [e.text[:200] for e in task.test[:4]]
        args = ["contributor", "predict", *texts, "--task", task_name, *connection]
        if labels:
            args += ["--labels", ",".join(labels)]
        if data_dir:
            args += ["--data-dir", str(data_dir)]
        say(f"    {task_name} (true labels: {', '.join(e.label for e in task.test[:4])})")
        for line in _run(*args).splitlines():
            say(f"      {line}")


def _evaluate(spec: PoolSpec, work_dir: Path, cache_dir: Path, data_dir: Path | None) -> Path:
    from moerge.eval import bench
    from moerge.eval.report import table

    out = work_dir / "results"
    report = bench.run(
        spec,
        methods=ROUTER_METHODS,
        out_dir=out,
        cache_dir=cache_dir,
        data_dir=data_dir,
        progress=False,
        log=lambda m: say(f"    bench | {m}"),
    )
    say("")
    say(table(report))
    return out

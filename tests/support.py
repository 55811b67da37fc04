"""Test helpers: tiny real models, coordinator processes, and a TCP proxy that cuts streams."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on (\S+):(\d+)")


TINY_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "be",
    "by",
    "this",
    "are",
    "or",
    "at",
    "from",
    "an",
    "not",
    "cat",
    "dog",
    "fish",
    "bird",
    "tree",
    "leaf",
    "rain",
    "sun",
    "code",
    "bug",
    "disk",
    "file",
    "law",
    "court",
    "song",
    "poem",
]


def tiny_vocab() -> list[str]:
    """A word-piece vocabulary of 128 entries: specials, letters, digits and a few words."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *("##" + x for x in letters)]
    vocab += [str(d) for d in range(10)] + list(".,;:!?'\"()-")
    vocab += [w for w in TINY_WORDS if w not in vocab]
    return (vocab + [f"[unused{i}]" for i in range(128)])[:128]


def tiny_bert(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A randomly initialised BERT encoder with a word-piece tokenizer, built in milliseconds."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=128,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(path))
    vocab = Path(path) / "vocab.txt"
    vocab.write_text("\n".join(tiny_vocab()) + "\n")
    BertTokenizer(str(vocab), model_max_length=64).save_pretrained(str(path))
    return path


def run_cli(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass
class CoordinatorProcess:
    """A real `moerge-coordinator serve` process on an ephemeral port."""

    data_dir: Path
    database_url: str
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[str] | None = None
    port: int = 0
    output: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli_args(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--database-url", self.database_url]

    def start(self, timeout: float = 60) -> CoordinatorProcess:
        self.output = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coordinator",
                "serve",
                *self.cli_args(),
                "--grpc-port",
                "0",
                "--no-default-base-model",
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = next((m for line in list(self.output) if (m := LISTENING.search(line))), None)
            if match:
                self.port = int(match.group(2))
                return self
            if self.process.poll() is not None:
                time.sleep(0.2)
                raise AssertionError("coordinator exited:\n" + "".join(self.output))
            time.sleep(0.05)
        raise AssertionError("coordinator did not start:\n" + "".join(self.output))

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def token(self, name: str, role: str = "contributor") -> str:
        result = run_cli("coordinator", "tokens", "create", name, "--role", role, *self.cli_args())
        return result.stdout.strip().splitlines()[-1]


class CuttingProxy:
    """Forwards TCP to a target; cuts every connection once `cut_after` client bytes have passed.

    The cut happens once (then `cut_after` is cleared), so a retrying client
    gets through on its next connection: a broken network, not a broken server.
    Before cutting, the proxy stops forwarding for `stall` seconds, so the
    server has taken in what already crossed the wire when the link drops.
    """

    def __init__(self, target_port: int, cut_after: int | None = None, stall: float = 1.0) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.stall = stall
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        passed = 0
        sockets = [client, upstream]
        deadline: float | None = None  # set while stalling before the cut
        try:
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    return
                ready, _, _ = select.select(sockets, [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
                    if sock is client:
                        passed += len(data)
                        if self.cut_after is not None and passed >= self.cut_after:
                            self.cut_after = None
                            self.cuts += 1
                            sockets = [upstream]  # stop forwarding the client's bytes
                            deadline = time.monotonic() + self.stall
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()

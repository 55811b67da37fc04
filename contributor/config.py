"""Where the coordinator is and which token to use: flags, then environment, then a config file.

The config file is TOML, by default ~/.config/moerge/contributor.toml:

    coordinator = "coordinator.example.org:50051"
    token = "moerge_..."
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CONFIG = Path("~/.config/moerge/contributor.toml")


class ConfigError(Exception):
    """The client cannot tell where the coordinator is or who it is."""


@dataclass(frozen=True)
class ClientConfig:
    coordinator: str
    token: str


def _read_file(path: Path, explicit: bool) -> dict[str, object]:
    path = path.expanduser()
    if not path.is_file():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc


def resolve(coordinator: str | None, token: str | None, config_file: Path | None) -> ClientConfig:
    env_file = os.environ.get("MOERGE_CONFIG")
    path = config_file or (Path(env_file) if env_file else DEFAULT_CONFIG)
    data = _read_file(path, explicit=config_file is not None or bool(env_file))
    address = (
        coordinator or os.environ.get("MOERGE_COORDINATOR") or str(data.get("coordinator") or "")
    )
    secret = token or os.environ.get("MOERGE_TOKEN") or str(data.get("token") or "")
    if not address:
        raise ConfigError(
            "no coordinator: pass --coordinator HOST:PORT, set MOERGE_COORDINATOR, "
            f'or write `coordinator = "host:port"` in {path}'
        )
    if not secret:
        raise ConfigError(
            f'no token: pass --token, set MOERGE_TOKEN, or write `token = "..."` in {path}'
        )
    return ClientConfig(address, secret)

"""Coordinator settings: command-line flags override MOERGE_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coordinator.registry.db import sqlite_url
from moerge.experts.validation import Limits

MiB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOERGE_", extra="ignore")

    data_dir: Path = Field(
        Path("moerge-data"), description="registry (SQLite), blobs and upload spool"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; SQLite under data_dir when unset"
    )
    grpc_host: str = Field(
        "127.0.0.1", description="address to listen on; 0.0.0.0 for every interface"
    )
    grpc_port: int = Field(50051, description="port to listen on; 0 picks a free one")
    max_workers: int = Field(32, description="threads serving RPCs")
    max_file_bytes: int = Field(512 * MiB, description="largest file of an expert")
    max_expert_bytes: int = Field(1024 * MiB, description="largest expert (all files)")
    max_streams_per_contributor: int = Field(
        4, description="uploads one contributor may send at once"
    )
    upload_ttl_seconds: float = Field(
        24 * 3600, description="partial uploads older than this are deleted"
    )
    gc_interval_seconds: float = Field(600, description="how often partial uploads are collected")
    shutdown_grace_seconds: float = Field(
        30, description="time in-flight RPCs get to finish on shutdown"
    )
    default_base_model: bool = Field(True, description="register all-MiniLM-L6-v2 on first start")
    router_method: str = Field(
        "gaussian", description="per-input routing method the gating job trains"
    )
    retrain_every_seconds: float = Field(
        0, description="also run the gating job on this period (0: only on pool changes)"
    )
    retrain_on_change: bool = Field(True, description="run the gating job when the pool changes")
    retrain_delay_seconds: float = Field(
        2.0, description="wait this long after a pool change, so that a burst trains once"
    )
    expert_cache_size: int = Field(8, description="experts kept loaded in memory for Predict")

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @property
    def limits(self) -> Limits:
        return Limits(max_file_bytes=self.max_file_bytes, max_expert_bytes=self.max_expert_bytes)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def expert_cache_dir(self) -> Path:
        return self.data_dir / "expert-cache"

    @field_validator("router_method")
    @classmethod
    def _per_input_method(cls, value: str) -> str:
        from moerge.routing import UnknownRouterError, get

        try:
            get(value)  # the coordinator fits and serves per-input routers
        except UnknownRouterError as exc:
            raise ValueError(str(exc)) from None
        return value

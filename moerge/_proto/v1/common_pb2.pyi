import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExpertStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERT_STATUS_UNSPECIFIED: _ClassVar[ExpertStatus]
    EXPERT_STATUS_PENDING: _ClassVar[ExpertStatus]
    EXPERT_STATUS_ACTIVE: _ClassVar[ExpertStatus]
    EXPERT_STATUS_QUARANTINED: _ClassVar[ExpertStatus]
    EXPERT_STATUS_RETIRED: _ClassVar[ExpertStatus]
EXPERT_STATUS_UNSPECIFIED: ExpertStatus
EXPERT_STATUS_PENDING: ExpertStatus
EXPERT_STATUS_ACTIVE: ExpertStatus
EXPERT_STATUS_QUARANTINED: ExpertStatus
EXPERT_STATUS_RETIRED: ExpertStatus

class Label(_message.Message):
    __slots__ = ("name", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class LoraSummary(_message.Message):
    __slots__ = ("rank", "alpha", "target_modules", "dropout")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    dropout: float
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., dropout: _Optional[float] = ...) -> None: ...

class FileEntry(_message.Message):
    __slots__ = ("path", "size", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class StatsEntry(_message.Message):
    __slots__ = ("kind", "path", "meta_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    path: str
    meta_json: str
    def __init__(self, kind: _Optional[str] = ..., path: _Optional[str] = ..., meta_json: _Optional[str] = ...) -> None: ...

class ExpertManifest(_message.Message):
    __slots__ = ("name", "version", "base_model_name", "base_model_fingerprint", "task_description", "labels", "lora", "files", "stats", "license")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    TASK_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    base_model_name: str
    base_model_fingerprint: str
    task_description: str
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    lora: LoraSummary
    files: _containers.RepeatedCompositeFieldContainer[FileEntry]
    stats: _containers.RepeatedCompositeFieldContainer[StatsEntry]
    license: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., base_model_name: _Optional[str] = ..., base_model_fingerprint: _Optional[str] = ..., task_description: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., lora: _Optional[_Union[LoraSummary, _Mapping]] = ..., files: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ..., stats: _Optional[_Iterable[_Union[StatsEntry, _Mapping]]] = ..., license: _Optional[str] = ...) -> None: ...

class Expert(_message.Message):
    __slots__ = ("id", "manifest", "contributor", "status", "created_at", "size_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    manifest: ExpertManifest
    contributor: str
    status: ExpertStatus
    created_at: _timestamp_pb2.Timestamp
    size_bytes: int
    def __init__(self, id: _Optional[str] = ..., manifest: _Optional[_Union[ExpertManifest, _Mapping]] = ..., contributor: _Optional[str] = ..., status: _Optional[_Union[ExpertStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class BaseModel(_message.Message):
    __slots__ = ("name", "fingerprint", "hidden_size", "linear_modules", "created_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    LINEAR_MODULES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    fingerprint: str
    hidden_size: int
    linear_modules: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., fingerprint: _Optional[str] = ..., hidden_size: _Optional[int] = ..., linear_modules: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

from moerge._proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_STATE_UNSPECIFIED: _ClassVar[UploadState]
    UPLOAD_STATE_NEW: _ClassVar[UploadState]
    UPLOAD_STATE_RECEIVING: _ClassVar[UploadState]
    UPLOAD_STATE_COMMITTED: _ClassVar[UploadState]
    UPLOAD_STATE_FAILED: _ClassVar[UploadState]
    UPLOAD_STATE_ABANDONED: _ClassVar[UploadState]
UPLOAD_STATE_UNSPECIFIED: UploadState
UPLOAD_STATE_NEW: UploadState
UPLOAD_STATE_RECEIVING: UploadState
UPLOAD_STATE_COMMITTED: UploadState
UPLOAD_STATE_FAILED: UploadState
UPLOAD_STATE_ABANDONED: UploadState

class FileChunk(_message.Message):
    __slots__ = ("path", "offset", "data")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    path: str
    offset: int
    data: bytes
    def __init__(self, path: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("manifest", "chunk")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    manifest: _common_pb2.ExpertManifest
    chunk: FileChunk
    def __init__(self, manifest: _Optional[_Union[_common_pb2.ExpertManifest, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("expert", "already_existed", "upload_id")
    EXPERT_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    expert: _common_pb2.Expert
    already_existed: bool
    upload_id: str
    def __init__(self, expert: _Optional[_Union[_common_pb2.Expert, _Mapping]] = ..., already_existed: bool = ..., upload_id: _Optional[str] = ...) -> None: ...

class GetUploadStatusRequest(_message.Message):
    __slots__ = ("manifest",)
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    manifest: _common_pb2.ExpertManifest
    def __init__(self, manifest: _Optional[_Union[_common_pb2.ExpertManifest, _Mapping]] = ...) -> None: ...

class FileProgress(_message.Message):
    __slots__ = ("path", "received", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    received: int
    size: int
    def __init__(self, path: _Optional[str] = ..., received: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class UploadStatus(_message.Message):
    __slots__ = ("upload_id", "state", "files", "expert", "error")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    EXPERT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    state: UploadState
    files: _containers.RepeatedCompositeFieldContainer[FileProgress]
    expert: _common_pb2.Expert
    error: str
    def __init__(self, upload_id: _Optional[str] = ..., state: _Optional[_Union[UploadState, str]] = ..., files: _Optional[_Iterable[_Union[FileProgress, _Mapping]]] = ..., expert: _Optional[_Union[_common_pb2.Expert, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class ExpertRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ListExpertsRequest(_message.Message):
    __slots__ = ("base_model_name", "include_retired", "mine")
    BASE_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RETIRED_FIELD_NUMBER: _ClassVar[int]
    MINE_FIELD_NUMBER: _ClassVar[int]
    base_model_name: str
    include_retired: bool
    mine: bool
    def __init__(self, base_model_name: _Optional[str] = ..., include_retired: bool = ..., mine: bool = ...) -> None: ...

class ListExpertsResponse(_message.Message):
    __slots__ = ("experts",)
    EXPERTS_FIELD_NUMBER: _ClassVar[int]
    experts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Expert]
    def __init__(self, experts: _Optional[_Iterable[_Union[_common_pb2.Expert, _Mapping]]] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("expert", "chunk")
    EXPERT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    expert: _common_pb2.Expert
    chunk: FileChunk
    def __init__(self, expert: _Optional[_Union[_common_pb2.Expert, _Mapping]] = ..., chunk: _Optional[_Union[FileChunk, _Mapping]] = ...) -> None: ...

class RetireExpertRequest(_message.Message):
    __slots__ = ("name", "version", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListBaseModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBaseModelsResponse(_message.Message):
    __slots__ = ("base_models",)
    BASE_MODELS_FIELD_NUMBER: _ClassVar[int]
    base_models: _containers.RepeatedCompositeFieldContainer[_common_pb2.BaseModel]
    def __init__(self, base_models: _Optional[_Iterable[_Union[_common_pb2.BaseModel, _Mapping]]] = ...) -> None: ...

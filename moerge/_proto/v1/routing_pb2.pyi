import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from moerge._proto.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetRouterRequest(_message.Message):
    __slots__ = ("base_model_name",)
    BASE_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    base_model_name: str
    def __init__(self, base_model_name: _Optional[str] = ...) -> None: ...

class RouterInfo(_message.Message):
    __slots__ = ("base_model_name", "version", "method", "experts", "metrics_json", "created_at")
    BASE_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPERTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    base_model_name: str
    version: str
    method: str
    experts: _containers.RepeatedScalarFieldContainer[str]
    metrics_json: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, base_model_name: _Optional[str] = ..., version: _Optional[str] = ..., method: _Optional[str] = ..., experts: _Optional[_Iterable[str]] = ..., metrics_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("base_model_name", "texts", "candidate_labels", "top_k")
    BASE_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_LABELS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    base_model_name: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    candidate_labels: _containers.RepeatedCompositeFieldContainer[_common_pb2.Label]
    top_k: int
    def __init__(self, base_model_name: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., candidate_labels: _Optional[_Iterable[_Union[_common_pb2.Label, _Mapping]]] = ..., top_k: _Optional[int] = ...) -> None: ...

class ExpertWeight(_message.Message):
    __slots__ = ("name", "version", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    weight: float
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Routing(_message.Message):
    __slots__ = ("experts", "abstained")
    EXPERTS_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
    experts: _containers.RepeatedCompositeFieldContainer[ExpertWeight]
    abstained: bool
    def __init__(self, experts: _Optional[_Iterable[_Union[ExpertWeight, _Mapping]]] = ..., abstained: bool = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("routes", "router_version", "method")
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[Routing]
    router_version: str
    method: str
    def __init__(self, routes: _Optional[_Iterable[_Union[Routing, _Mapping]]] = ..., router_version: _Optional[str] = ..., method: _Optional[str] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("base_model_name", "texts", "candidate_labels", "combination", "top_k")
    BASE_MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_LABELS_FIELD_NUMBER: _ClassVar[int]
    COMBINATION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    base_model_name: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    candidate_labels: _containers.RepeatedCompositeFieldContainer[_common_pb2.Label]
    combination: str
    top_k: int
    def __init__(self, base_model_name: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., candidate_labels: _Optional[_Iterable[_Union[_common_pb2.Label, _Mapping]]] = ..., combination: _Optional[str] = ..., top_k: _Optional[int] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "score", "experts")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPERTS_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    experts: _containers.RepeatedCompositeFieldContainer[ExpertWeight]
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ..., experts: _Optional[_Iterable[_Union[ExpertWeight, _Mapping]]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "router_version", "method")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    ROUTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    router_version: str
    method: str
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., router_version: _Optional[str] = ..., method: _Optional[str] = ...) -> None: ...

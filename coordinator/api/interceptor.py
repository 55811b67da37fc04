"""Authentication, authorisation and error mapping for every RPC, in one place.

Every RPC but health checking needs `authorization: Bearer <token>`. The
interceptor resolves the token to a Principal before the servicer runs, checks
admin-only methods, and turns service and validation errors into gRPC statuses.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from coordinator.services.contributors import Principal, require_admin
from coordinator.services.errors import Code, ServiceError
from moerge.experts.validation import Problem, ValidationError

log = logging.getLogger(__name__)

PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)

STATUS = {
    Code.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Code.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Code.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Code.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Code.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Code.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Code.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Code.ABORTED: grpc.StatusCode.ABORTED,
    Code.OUT_OF_RANGE: grpc.StatusCode.OUT_OF_RANGE,
    Code.DATA_LOSS: grpc.StatusCode.DATA_LOSS,
    Code.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Code.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
}
PROBLEM_STATUS = {
    Problem.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Problem.UNKNOWN_BASE: grpc.StatusCode.NOT_FOUND,
    Problem.BASE_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    Problem.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Problem.CORRUPT: grpc.StatusCode.DATA_LOSS,
}


def principal() -> Principal:
    """The caller of the RPC being served."""
    return PRINCIPAL.get()


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class _Guard:
    def __init__(
        self, authenticate: Callable[[str | None], Principal], admin: bool, token: str | None
    ):
        self.authenticate, self.admin, self.token = authenticate, admin, token

    def enter(self) -> None:
        caller = self.authenticate(self.token)
        if self.admin:
            require_admin(caller)
        PRINCIPAL.set(caller)

    def call(
        self, behavior: Callable[..., Any], request: Any, context: grpc.ServicerContext
    ) -> Any:
        try:
            self.enter()
            return behavior(request, context)
        except Exception as exc:  # noqa: BLE001 - mapped to a status below
            _abort(context, exc)

    def stream(
        self, behavior: Callable[..., Any], request: Any, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        try:
            self.enter()
            yield from behavior(request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, exc)


def _abort(context: grpc.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, ServiceError):
        context.abort(STATUS[exc.code], exc.message)
    if isinstance(exc, ValidationError):
        context.abort(PROBLEM_STATUS[exc.problem], exc.message)
    already = context.code() not in (None, grpc.StatusCode.OK)
    if already or isinstance(exc, grpc.RpcError) or not context.is_active():
        raise exc  # the call was aborted already, or the client went away
    log.exception("unexpected error in %s", type(exc).__name__)
    context.abort(
        grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the coordinator log"
    )


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(
        self, authenticate: Callable[[str | None], Principal], admin_methods: set[str]
    ) -> None:
        self.authenticate = authenticate
        self.admin_methods = admin_methods

    def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        guard = _Guard(
            self.authenticate,
            details.method in self.admin_methods,
            bearer_token(details.invocation_metadata),
        )
        return _wrap(handler, guard)


def _wrap(handler: Any, guard: _Guard) -> Any:
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, guard.call),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, guard.call),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, guard.stream),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, guard.stream),
    )
    for attribute, factory, run in kinds:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            return factory(
                lambda request, context, b=behavior, r=run: r(b, request, context),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler

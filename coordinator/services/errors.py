"""Errors of the service layer; each transport maps `code` to its own status."""

from __future__ import annotations

from enum import Enum


class Code(Enum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    UNAUTHENTICATED = "unauthenticated"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    ABORTED = "aborted"
    OUT_OF_RANGE = "out_of_range"
    DATA_LOSS = "data_loss"
    UNAVAILABLE = "unavailable"
    UNIMPLEMENTED = "unimplemented"


class ServiceError(Exception):
    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(message: str) -> ServiceError:
    return ServiceError(Code.NOT_FOUND, message)


def denied(message: str) -> ServiceError:
    return ServiceError(Code.PERMISSION_DENIED, message)

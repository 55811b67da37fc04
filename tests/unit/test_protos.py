"""The generated stubs are committed and must match the .proto sources."""

import subprocess
import sys

from tests.support import ROOT


def test_generated_stubs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "protos/generate.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_import_from_their_package() -> None:
    from moerge._proto.v1 import experts_pb2, experts_pb2_grpc

    assert experts_pb2.DESCRIPTOR.package == "moerge.v1"
    assert hasattr(experts_pb2_grpc, "ExpertServiceStub")

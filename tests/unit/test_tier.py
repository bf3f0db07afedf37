"""The unit tier's guard (tests/unit/conftest.py) refuses what a unit test must not do."""

import socket
import subprocess
import sys

import pytest

from tests.unit.conftest import NotAUnitTest


def test_a_unit_test_cannot_connect_or_listen():
    with socket.socket() as sock, pytest.raises(NotAUnitTest, match="tests/integration"):
        sock.connect(("127.0.0.1", 9))
    with socket.socket() as sock, pytest.raises(NotAUnitTest, match="bind"):
        sock.bind(("127.0.0.1", 0))


def test_a_unit_test_cannot_start_a_process():
    with pytest.raises(NotAUnitTest, match="starts no subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_local_socket_pair_still_works():
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"


@pytest.mark.parametrize("fixture", ["s3_endpoint", "s3", "bucket", "app_module", "s3_child"])
def test_asking_for_moto_fails_naming_the_tier(request, fixture):
    with pytest.raises(pytest.fail.Exception, match="tests/integration"):
        request.getfixturevalue(fixture)

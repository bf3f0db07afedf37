"""The unit tier's guard (conftest.py beside this file) refuses what a unit test must not do."""

import socket
import subprocess
import sys

import pytest


def test_a_unit_test_cannot_connect_listen_or_start_a_process():
    with socket.socket() as sock, pytest.raises(RuntimeError, match="tests/integration"):
        sock.connect(("127.0.0.1", 9))
    with socket.socket() as sock, pytest.raises(RuntimeError, match=r"opens no socket \(bind\)"):
        sock.bind(("127.0.0.1", 0))
    with pytest.raises(RuntimeError, match="starts no subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_asking_for_a_cli_process_fails_naming_the_tier(request):
    with pytest.raises(pytest.fail.Exception, match="tests/integration"):
        request.getfixturevalue("running")

"""Offline is told apart from other failures by the exception's type; corrupt downloads name the file."""

import socket
import urllib.error

import pytest

from kcourse import cli, downloads


def _raised_from(error, cause):
    try:
        try:
            raise cause
        except Exception:
            raise error  # chained implicitly, as keras.utils.get_file does
    except Exception as chained:
        return chained


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
        socket.gaierror(-2, "Name or service not known"),
        TimeoutError("timed out"),
        ConnectionRefusedError(111, "Connection refused"),
        _raised_from(Exception("URL fetch failure on https://x: None -- [Errno -3]"), urllib.error.URLError("dns")),
    ],
    ids=["URLError", "DNS", "timeout", "refused", "keras' wrapped URLError"],
)
def test_network_failures_are_offline(error):
    assert downloads.is_network_error(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("Graph disconnected: cannot obtain value for tensor"),  # would have read "connect" before
        Exception("Could not connect the layers: shapes differ"),
        FileNotFoundError(2, "No such file or directory"),
        _raised_from(KeyError("preset"), ValueError("unknown preset")),
    ],
    ids=["graph disconnected", "the word connect", "missing file", "unknown preset"],
)
def test_other_failures_are_not_offline(error):
    assert not downloads.is_network_error(error)


def test_download_or_none_falls_back_only_when_offline(capsys):
    def offline():
        raise _raised_from(Exception("URL fetch failure"), urllib.error.URLError("no network"))

    assert downloads.download_or_none(offline, "the photos", "embedded ones") is None
    assert capsys.readouterr().err.strip() == "offline: could not download the photos; using embedded ones instead"

    def broken():
        raise ValueError("Graph disconnected")

    with pytest.raises(ValueError, match="Graph disconnected"):
        downloads.download_or_none(broken, "the photos", "embedded ones")


def test_corrupt_cached_archive_names_the_file_to_delete(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "datasets" / "photos.zip"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 truncated")  # named like a zip, cut short
    with pytest.raises(cli.LabError) as error:
        downloads.fetch("photos.zip", "https://example.invalid/photos.zip", extract=True)
    assert str(cached) in str(error.value) and "delete" in str(error.value)


@pytest.mark.offline
def test_cached_file_with_the_wrong_hash_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "datasets" / "data.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    # keras re-downloads on a hash mismatch; offline (the tests' network is blocked) that fails as offline
    with pytest.raises(Exception) as error:
        downloads.fetch("data.npz", "https://example.invalid/data.npz", file_hash="0" * 64)
    assert downloads.is_network_error(error.value)

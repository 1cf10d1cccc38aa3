"""Real data and weights through the ecosystem's own loaders, with an offline fallback.

Every lab tries the real thing first (keras.datasets, keras.utils.get_file,
keras-hub presets: all cached after the first download). Without a network it
prints one line saying so and carries on with data embedded in kcourse or its
dependencies.
"""

import os
import socket
import sys
import urllib.error
import zipfile
from pathlib import Path

from kcourse import cli

# The exception types a failed connection surfaces as: urllib (keras.utils.get_file),
# sockets and DNS, and by name those of requests (kagglehub) and huggingface_hub.
NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror, socket.herror)
NETWORK_ERROR_NAMES = {
    "requests.exceptions.ConnectionError",
    "requests.exceptions.Timeout",
    "requests.exceptions.ConnectTimeout",
    "requests.exceptions.ReadTimeout",
    "urllib3.exceptions.MaxRetryError",
    "urllib3.exceptions.NewConnectionError",
    "huggingface_hub.errors.OfflineModeIsEnabled",
    "huggingface_hub.errors.LocalEntryNotFoundError",
}


def is_network_error(error):
    """True when `error`, or anything it was raised from, is a failed connection (judged by type)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        names = {f"{c.__module__}.{c.__qualname__}" for c in type(error).__mro__}
        if isinstance(error, NETWORK_ERRORS) or names & NETWORK_ERROR_NAMES:
            return True
        error = error.__cause__ or error.__context__
    return False


def online(host, port=443, timeout=3.0):
    """Whether `host` answers a TCP connection within `timeout` seconds.

    For loaders that retry for a long time before failing offline (keras-hub's
    `hf://` handles wait about 20 s): ask first, in at most `timeout` seconds.
    """
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def offline_notice(what, instead):
    """The one line a lab prints when it falls back to embedded data."""
    print(f"offline: could not download {what}; using {instead} instead", file=sys.stderr, flush=True)


def download_or_none(load, what, instead):
    """Call `load()`; on a network failure print the offline notice and return None."""
    try:
        return load()
    except Exception as error:  # the loaders wrap network failures in plain Exceptions
        if not is_network_error(error):
            raise
        offline_notice(what, instead)
        return None


def fetch(fname, url, file_hash=None, extract=False):
    """`keras.utils.get_file` (cached under ~/.keras/datasets), checked against `file_hash` where one is published.

    A cached archive that fails its hash or cannot be unpacked is a LabError
    naming the file to delete; network failures propagate (see download_or_none).
    """
    import keras

    try:
        return keras.utils.get_file(fname, url, file_hash=file_hash, extract=extract)
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        raise _corrupt(fname, error) from None
    except Exception as error:
        if "incomplete or corrupted" in str(error) or "hash" in str(error).lower():
            raise _corrupt(fname, error) from None
        raise


def _corrupt(fname, error):
    home = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()
    return cli.LabError(
        f"the downloaded {fname} is corrupt ({type(error).__name__}); delete {home / 'datasets' / fname} "
        f"(and its extracted folder) and run again"
    )

"""Real data and weights through the ecosystem's own loaders, with an offline fallback.

Every lab tries the real thing first (keras.datasets, keras.utils.get_file,
keras-hub presets: all cached after the first download). Without a network it
prints one line saying so and carries on with data embedded in kcourse or its
dependencies.
"""

import hashlib
import os
import socket
import sys
import tarfile
import urllib.error
import zipfile
from pathlib import Path

from kcourse.errors import LabError

HYMENOPTERA_URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"  # the PyTorch tutorial's (no published hash)
HOTDOG_URL = "http://d2l-data.s3-accelerate.amazonaws.com/hotdog.zip"
HOTDOG_SHA1 = "fba480ffa8aa7e0febbb511d181409f899b9baa5"  # as d2l publishes it

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


def cache_dir():
    """Where downloads are cached: $KERAS_HOME, else ~/.keras (files under its datasets/)."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()


def fetch(fname, url, file_hash=None, extract=False, sha1=None):
    """`keras.utils.get_file` into the cache, checked against `file_hash` (md5 or sha256) or `sha1` where one is published.

    Returns the file's path, or with `extract` the folder it unpacks to. A
    download that fails its hash, or an archive that cannot be unpacked, is a
    LabError naming the file to delete; network failures propagate (see
    download_or_none). keras' get_file checks sha256 and md5 only: a SHA-1
    (d2l's) is checked here, before unpacking.
    """
    import keras

    archive = cache_dir() / "datasets" / fname
    if sha1 is not None:
        keras.utils.get_file(fname, url, cache_dir=str(cache_dir()))
        digest = hashlib.sha1()
        with open(archive, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha1:
            raise LabError(f"the downloaded {fname} has SHA-1 {digest.hexdigest()}, not the published {sha1}; delete {archive} and run again")
    try:
        path = keras.utils.get_file(fname, url, file_hash=file_hash, extract=extract, cache_dir=str(cache_dir()))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise _corrupt(archive, error) from None
    except ValueError as error:
        if "corrupted" not in str(error):
            raise
        raise _corrupt(archive, error) from None
    if extract and not (Path(path).is_dir() and any(Path(path).iterdir())):
        raise _corrupt(archive, "it does not unpack")
    return path


def _corrupt(archive, error):
    why = error if isinstance(error, str) else type(error).__name__
    return LabError(f"the downloaded {archive.name} is corrupt ({why}); delete {archive} and run again")


def image_folder(path):
    """The folder an image-set archive unpacked to: the one holding train/ (the zips have one top folder)."""
    root = Path(path)
    if not (root / "train").is_dir():
        inner = [p for p in root.iterdir() if p.is_dir() and (p / "train").is_dir()]
        root = inner[0] if inner else root
    return root


def hymenoptera():
    """The PyTorch tutorial's ants and bees (hymenoptera_data.zip), fetched once: a folder with train/ and val/."""
    return image_folder(fetch("hymenoptera_data.zip", HYMENOPTERA_URL, extract=True))


def hotdog():
    """d2l's hot dog / not hot dog (hotdog.zip), fetched once and SHA-1 checked: a folder with train/ and val/.

    The zip's test/ folder is seen as val/ through a symbolic link.
    """
    root = image_folder(fetch("hotdog.zip", HOTDOG_URL, extract=True, sha1=HOTDOG_SHA1))
    if not (root / "val").exists():
        (root / "val").symlink_to("test", target_is_directory=True)
    return root

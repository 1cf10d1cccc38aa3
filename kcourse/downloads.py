"""Real data and weights through the ecosystem's own loaders, with an offline fallback.

Every lab tries the real thing first (keras.datasets, keras.utils.get_file,
keras-hub presets: all cached after the first download). Without a network it
prints one line saying so and carries on with data embedded in kcourse or its
dependencies.
"""

import sys
import urllib.error


def is_network_error(error):
    """True when `error`, or anything it was raised from, is a failed connection."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError)):
            return True
        if isinstance(error, OSError) and error.errno is None and "network" in str(error).lower():
            return True
        text = str(error)
        if "URL fetch failure" in text or "Name or service not known" in text or "connect" in text.lower():
            return True
        error = error.__cause__ or error.__context__
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

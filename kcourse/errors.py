"""The errors a student can meet, shown as one line by `kcourse.cli.run` (a leaf: it imports nothing of kcourse)."""


class LabError(Exception):
    """A problem the user can fix (a bad path, a wrong option): shown as one line, `error: ...`, exit code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, with the line that says how to continue (`--resume RUN_DIR`)."""

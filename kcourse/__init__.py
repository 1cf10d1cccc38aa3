"""kcourse: a deep-learning course's labs written once in Keras 3.

Importing kcourse imports no framework: the backend is chosen by
``KERAS_BACKEND`` or a lab's ``--backend`` before keras is first imported.
"""

import os

# TensorFlow's C++ start-up lines (oneDNN, CUDA probing) are hidden unless the
# user asked for a log level: kcourse.system.quiet_tensorflow() reads this. The
# level kcourse sets is marked, so that a child process (a test, a benchmark
# worker) that inherits it stays quiet too.
QUIET_TENSORFLOW = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "") in ("", os.environ.get("KCOURSE_TF_LOG_LEVEL"))
if QUIET_TENSORFLOW:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ["KCOURSE_TF_LOG_LEVEL"] = "2"

# OpenMP threads (torch's) sleep at barriers instead of spinning, unless the user says otherwise:
# with anything else running on a 2-core laptop (a notebook, a browser), spinning threads ran torch's
# CNN epoch in 98 s instead of 4 s (BENCHMARKS.md). Read when torch starts, so set before any import.
# Only torch's threads are OpenMP's: tensorflow's and XLA's own thread pools ran at the same speed either way
# (BENCHMARKS.md, alternating rounds). OMP_WAIT_POLICY=unset leaves the choice to the OpenMP runtime (spin a
# while, then sleep: 1.2-1.3x faster for torch on a quiet machine, 1.6-2.6x slower beside one busy process).
OMP_POLICY_SET_HERE = "OMP_WAIT_POLICY" not in os.environ  # the benchmark's references run without it
if os.environ.get("OMP_WAIT_POLICY", "").lower() == "unset":
    del os.environ["OMP_WAIT_POLICY"]
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

"""kcourse: a deep-learning course's labs written once in Keras 3.

Importing kcourse imports no framework: the backend is chosen by
``KERAS_BACKEND`` or a lab's ``--backend`` before keras is first imported.
"""

import os

# TensorFlow's C++ start-up lines (oneDNN, CUDA probing) are hidden unless the
# user asked for a log level: kcourse.system.quiet_tensorflow() reads this.
QUIET_TENSORFLOW = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

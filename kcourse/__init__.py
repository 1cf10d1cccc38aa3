"""kcourse: a deep-learning course's labs written once in Keras 3.

Importing kcourse imports no framework: the backend is chosen by
``KERAS_BACKEND`` or a lab's ``--backend`` before keras is first imported.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, whatever the backend

__version__ = "0.1.0"

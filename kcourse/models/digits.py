"""TP3's two digit classifiers, as the course writes them: the MLP 784-128-10 and the vanilla CNN.

    mlp = build_mlp()    # 101,770 parameters: the image flattened, its 2-D structure gone
    cnn = build_cnn()    # 27,830: filters shared across the image
    mlp(x).shape         # (B, 10) logits for x (B, 28, 28, 1)

The mnist lab trains them, the FCN lab converts the CNN, the zoo counts them.
"""

import keras
from keras import layers


def build_mlp(hidden=128, classes=10):
    """784 -> 128 -> 10: 101,770 parameters, logits out."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Flatten(),  # (B, 784): the 2-D structure is gone
            layers.Dense(hidden, activation="relu"),
            layers.Dense(classes),  # logits
        ],
        name="mlp",
    )


def build_cnn(dropout=0.5, classes=10):
    """The course's vanilla CNN: 27,830 parameters for 10 classes, logits out.

    relu(maxpool(conv)) as in the seed; channels last, so (B, 28, 28, 1) in.
    """
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(10, 5, padding="same"),  # (B, 28, 28, 10)
            layers.MaxPooling2D(2),  # (B, 14, 14, 10)
            layers.ReLU(),
            layers.Conv2D(10, 5, padding="same"),  # (B, 14, 14, 10)
            layers.MaxPooling2D(2),  # (B, 7, 7, 10)
            layers.ReLU(),
            layers.Flatten(),  # (B, 490)
            layers.Dense(50, activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(classes),  # logits
        ],
        name="cnn" if classes == 10 else f"cnn_{classes}",
    )

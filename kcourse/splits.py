"""The shape every data set of kcourse has: training and validation arrays (and test ones where the lab has them)."""

from dataclasses import dataclass

import numpy as np


@dataclass
class Splits:
    """x_train / y_train and x_val / y_val (NumPy arrays); `train` and `val` give each pair, as `fit` takes them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def train(self):
        return self.x_train, self.y_train

    @property
    def val(self):
        return self.x_val, self.y_val

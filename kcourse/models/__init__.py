"""kcourse.models: the course's complete models, built from kcourse.layers."""

from kcourse.models.tiny_transformer_classifier import TinyTransformerClassifier
from kcourse.models.unet import MeanIoU, UNet

__all__ = ["MeanIoU", "TinyTransformerClassifier", "UNet"]

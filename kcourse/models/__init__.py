"""kcourse.models: the course's complete models, built from kcourse.layers."""

from kcourse.models.tiny_transformer_classifier import TinyTransformerClassifier
from kcourse.models.unet import UNet

__all__ = ["TinyTransformerClassifier", "UNet"]

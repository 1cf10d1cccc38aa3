"""kcourse.models: the course's complete models, built from kcourse.layers."""

from kcourse.models.tiny_transformer_classifier import TinyTransformerClassifier

__all__ = ["TinyTransformerClassifier"]

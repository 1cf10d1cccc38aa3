"""kcourse.models: the course's complete models, built from kcourse.layers and keras-hub."""

from kcourse.models.digits import build_cnn, build_mlp
from kcourse.models.resnet import resnet_backbone, resnet_config
from kcourse.models.sentences import build_classifier
from kcourse.models.tiny_clip import build_supervised, build_tiny_clip, contrastive_loss
from kcourse.models.tiny_transformer_classifier import TinyTransformerClassifier
from kcourse.models.tiny_translator import TinyTranslator, build_translator
from kcourse.models.unet import MeanIoU, UNet

__all__ = ["MeanIoU", "TinyTransformerClassifier", "TinyTranslator", "UNet", "build_classifier", "build_cnn", "build_mlp", "build_supervised", "build_tiny_clip", "contrastive_loss", "build_translator", "resnet_backbone", "resnet_config"]

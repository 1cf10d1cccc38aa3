"""kcourse.layers: the course's building blocks as Keras 3 layers, written once
for JAX, PyTorch and TensorFlow."""

from kcourse.layers.classification_head import ClassificationHead
from kcourse.layers.contrastive_logits import ContrastiveLogits
from kcourse.layers.conv_block import ConvBlock
from kcourse.layers.decoder_block import DecoderBlock
from kcourse.layers.down_block import DownBlock
from kcourse.layers.encoder_block import EncoderBlock
from kcourse.layers.multi_head_self_attention import MultiHeadSelfAttention
from kcourse.layers.positional_encoding import PositionalEncoding
from kcourse.layers.random_resized_crop import RandomResizedCrop
from kcourse.layers.skip_gram import SkipGram
from kcourse.layers.up_block import UpBlock

__all__ = [
    "ClassificationHead",
    "ContrastiveLogits",
    "ConvBlock",
    "DecoderBlock",
    "DownBlock",
    "EncoderBlock",
    "MultiHeadSelfAttention",
    "PositionalEncoding",
    "RandomResizedCrop",
    "SkipGram",
    "UpBlock",
]

"""The ResNets of the lectures, as keras-hub builds them (its `resnet_*_imagenet` presets' arguments).

    backbone = resnet_backbone(18)       # (B, H, W, 3) -> (B, H/32, W/32, 512): 11,186,112 parameters
    resnet_backbone(50, (224, 224, 3))   # bottleneck blocks, 2048 channels out

The fine-tuning lab builds ResNet18 this way when the preset cannot be
downloaded; the zoo counts ResNet-18 to 101.
"""

# Blocks per stage and block type; the rest is the same for every depth.
RESNET_BLOCKS = {
    18: ([2, 2, 2, 2], "basic_block"),
    34: ([3, 4, 6, 3], "basic_block"),
    50: ([3, 4, 6, 3], "bottleneck_block"),
    101: ([3, 4, 23, 3], "bottleneck_block"),
}


def resnet_config(depth=18):
    """keras_hub.models.ResNetBackbone's arguments for ResNet-`depth` (18, 34, 50, 101)."""
    blocks, block_type = RESNET_BLOCKS[depth]
    return dict(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=blocks, stackwise_num_strides=[1, 2, 2, 2], block_type=block_type, use_pre_activation=False,
    )


def resnet_backbone(depth=18, image_shape=(None, None, 3), **kwargs):
    """keras-hub's ResNetBackbone for ResNet-`depth`, random weights (nothing downloaded)."""
    from kcourse import system

    return system.keras_hub().models.ResNetBackbone(**resnet_config(depth), image_shape=image_shape, **kwargs)

"""Lecture 004's fine-tuning slide run as written, in native PyTorch, on a small model with a ResNet's `fc` head.

The slide (torchvision's ResNet-50, a 10-class head):

    model.fc = nn.Linear(model.fc.in_features, 10)
    for param in model.parameters():
        param.requires_grad = False   # frozen layers
    model.fc.requires_grad = True     # only the last layer

The last line sets a new Python attribute on the Linear module; nothing reads
it, and the new head's parameters stay frozen with the rest: nothing trains.
`model.fc.requires_grad_(True)` (a method, with an underscore) is the fix.
No weights are downloaded: the backbone here is one convolution.
"""

from torch import nn


class SmallResNetLike(nn.Module):
    """A backbone and an `fc`, named as torchvision's ResNets name their head."""

    def __init__(self, classes=1000, width=8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(width, classes)

    def forward(self, x):  # (B, 3, H, W) -> (B, classes)
        return self.fc(self.features(x))


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def the_slide(classes=10):
    """{"as written", "fixed": trainable parameters after the slide's lines and after the fix; "head", "total"}."""
    model = SmallResNetLike()
    model.fc = nn.Linear(model.fc.in_features, classes)  # the new head
    for param in model.parameters():
        param.requires_grad = False
    model.fc.requires_grad = True  # the slide's line: an attribute no parameter reads
    as_written = trainable(model)
    model.fc.requires_grad_(True)  # the fix: every parameter of the head
    return {"as written": as_written, "fixed": trainable(model), "head": sum(p.numel() for p in model.fc.parameters()),
            "total": sum(p.numel() for p in model.parameters())}

"""keras-hub presets, checked and loaded the same way in every lab that starts from pretrained weights.

    presets.check("resnet_18_imagenet", "ResNetBackbone")     # a LabError for an unknown name, before any download
    backbone = presets.load("resnet_18_imagenet", lambda: Backbone.from_preset(...), "a random ResNet18")
    start = presets.weights_of(backbone)                       # copies no training can touch
    copy = presets.fresh_copy(backbone, start)                  # each variant starts from them

A preset is a keras-hub name (`keras_hub.models.ViTBackbone.presets`), a
handle (`kaggle://...`, `hf://google/vit-base-patch16-224`) or a local folder
saved with `save_to_preset`. Offline, `load` prints one line and returns None:
the lab builds its stand-in (random weights, said as such).
"""

from pathlib import Path

import numpy as np

from kcourse import downloads
from kcourse.errors import LabError

HELP = "for a local copy: --preset path/to/folder, saved with save_to_preset"


def is_local(preset):
    """A path rather than a name or a handle: it has a slash, or it exists."""
    return "://" not in preset and ("/" in preset or "\\" in preset or Path(preset).exists())


def check(preset, family, files=("config.json",), also=()):
    """A LabError unless `preset` is a known preset of keras-hub's `family` class, a handle, or a folder with `files`.

    Asks nothing of the network (an unknown name is not mistaken for being
    offline). `family`: the class name in keras_hub.models ("ResNetBackbone",
    "Backbone" for any backbone); `also`: other accepted names, said in the message.
    """
    if preset in also:
        return
    if is_local(preset):
        for name in files:
            if not (Path(preset) / name).is_file():
                raise LabError(f"--preset {preset}: not a keras-hub preset folder (no {name}); "
                               f"save one there with save_to_preset(folder), or give a preset name")
        return
    if "://" in preset:
        return
    from kcourse import system

    known = getattr(system.keras_hub().models, family).presets
    if preset not in known:
        shown = ", ".join([*sorted(known)[:4], *also])
        raise LabError(f"--preset {preset}: unknown keras-hub {family} preset; choose one of {shown}... "
                       f"(all: keras_hub.models.{family}.presets), a handle (hf://, kaggle://) or a local folder")


def load(preset, loader, instead):
    """`loader()` (a keras-hub `from_preset`), or None with one line when it cannot be downloaded.

    `instead` says what the lab uses then. An `hf://` handle would retry for
    about 20 s offline and then blame config.json: the host is asked first.
    """
    what = f"the keras-hub preset {preset} ({HELP})"
    if is_local(preset):
        return loader()
    if preset.startswith("hf://") and not downloads.online("huggingface.co"):
        downloads.offline_notice(what, instead)
        return None
    return downloads.download_or_none(loader, what, instead)


def expect(model, cls, preset):
    """A LabError unless the loaded `model` is a keras-hub `cls` (a ViT preset for the ViT lab...)."""
    if not isinstance(model, cls):
        raise LabError(f"--preset {preset}: a {type(model).__name__}, not a {cls.__name__}; give a {cls.__name__} preset")
    return model


def weights_of(backbone):
    """The backbone's weights now, as NumPy copies that no training can touch.

    Taken once, before any variant trains, so that every variant starts from
    the preset's own weights whatever was trained before it (on torch,
    `get_weights()` alone would share memory with the live variables).
    """
    return [np.array(w, copy=True) for w in backbone.get_weights()]


def fresh_copy(backbone, weights=None):
    """A new backbone of the same architecture: with `weights` (a list of arrays, e.g. `weights_of`) or random ones."""
    copy = backbone.__class__.from_config(backbone.get_config())
    if weights is not None:
        copy.set_weights(weights)
    return copy

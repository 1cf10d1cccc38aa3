import math

import keras
import numpy as np

from kcourse.layers import ContrastiveLogits
from layer_checks import to_numpy


def test_cosines_times_the_learnt_scale_clipped_at_100(tmp_path):
    layer = ContrastiveLogits()
    logits = to_numpy(layer(3 * np.eye(3, 8, dtype="float32"), np.eye(3, 8, dtype="float32")))
    np.testing.assert_allclose(logits, np.eye(3) / 0.07, rtol=1e-5)  # lengths do not count, directions do
    layer.log_scale.assign(math.log(1000.0))
    assert abs(float(to_numpy(layer.scale())) - 100.0) < 1e-4  # CLIP's clip
    assert ContrastiveLogits.from_config(ContrastiveLogits(initial_temperature=0.1).get_config()).initial_temperature == 0.1

    images, texts = keras.Input((8,)), keras.Input((8,))
    model = keras.Model([images, texts], ContrastiveLogits(name="logits")(images, texts))
    assert [w.path for w in model.trainable_weights] == ["logits/log_scale"]
    x = np.random.default_rng(0).standard_normal((4, 8)).astype("float32")
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras").predict([x, x], verbose=0),
                               model.predict([x, x], verbose=0), atol=1e-6)

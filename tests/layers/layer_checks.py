"""The checks every kcourse layer passes, on the backend of this pytest process."""

import keras
import numpy as np
from keras import ops, tree


def jit_compile():
    """jit_compile for `compile()`: XLA on JAX and TensorFlow; on torch, Keras'
    jit_compile means torch.compile, which is fragile (keras #22282): eager."""
    return keras.backend.backend() != "torch"


def to_numpy(x):
    return tree.map_structure(ops.convert_to_numpy, x)


def forward(model, x):
    """Inference outputs of a model, dtype kept: one jit-compiled call on JAX
    (eager JAX compiles op by op, slow for each new shape or dtype), eager
    elsewhere. Use it for shapes or dtypes a test has not run eagerly yet."""
    if keras.backend.backend() == "jax":
        return model.predict_on_batch(x)
    return model(x)


def _inputs_like(x):
    return tree.map_structure(lambda a: keras.Input(a.shape[1:], dtype=str(a.dtype)), x)


def run_layer_checks(
    cls, init_kwargs, inputs, expected_shape, tmp_path, call_kwargs=None, mixed_precision=True
):
    """Run the shared layer checks.

    1. config round trip: the config holds the constructor arguments, and
       `from_config(get_config())` gives the same config;
    2. symbolic (functional `keras.Input`) and eager output shapes, and equal
       values through the functional model and the layer;
    3. one jit-compiled `fit` step that moves the trainable weights;
    4. `.keras` save and reload with equal outputs;
    5. bfloat16 mixed precision: bfloat16 output, float32 variables, values
       close to float32 with the same weights.

    `inputs`: the tuple of positional call arguments (arrays, or a dict of
    arrays for a dict input); `expected_shape`: the output shape for them.
    """
    call_kwargs = call_kwargs or {}
    layer = cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == value, (key, config[key], value)
    assert cls.from_config(config).get_config() == config

    symbolic = [_inputs_like(x) for x in inputs]
    out = layer(*symbolic, **call_kwargs)
    assert isinstance(out, keras.KerasTensor)
    assert tuple(out.shape) == (None,) + tuple(expected_shape[1:])
    model_inputs = symbolic[0] if len(inputs) == 1 else symbolic
    model = keras.Model(model_inputs, out)
    data = inputs[0] if len(inputs) == 1 else list(inputs)
    eager = layer(*inputs, **call_kwargs)
    assert tuple(eager.shape) == tuple(expected_shape)
    np.testing.assert_allclose(to_numpy(model(data)), to_numpy(eager), rtol=1e-5, atol=1e-6)

    y = np.random.default_rng(0).standard_normal(expected_shape).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit_compile() and layer.supports_jit)
    before = to_numpy(layer.trainable_weights)
    loss = model.fit(data, y, batch_size=len(y), epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    after = to_numpy(layer.trainable_weights)
    if before:
        moved = [not np.allclose(b, a) for b, a in zip(before, after)]
        assert any(moved), "fit did not move any weight"

    path = tmp_path / f"{cls.__name__}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.layers[-1], cls)
    assert reloaded.layers[-1].get_config() == layer.get_config()
    expected = to_numpy(model(data))
    np.testing.assert_allclose(to_numpy(reloaded(data)), expected, rtol=1e-6, atol=1e-6)

    if mixed_precision:
        mixed = cls(**init_kwargs, dtype="mixed_bfloat16")
        mixed_model = keras.Model(model_inputs, mixed(*symbolic, **call_kwargs))
        assert len(mixed.weights) == len(layer.weights)
        assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in mixed.weights)
        mixed.set_weights(layer.get_weights())
        low = forward(mixed_model, data)
        assert keras.backend.standardize_dtype(low.dtype) == "bfloat16"
        low = to_numpy(ops.cast(low, "float32"))
        np.testing.assert_allclose(low, expected, rtol=0.05, atol=0.05 * np.abs(expected).max())
    return layer

"""A small convolutional network for 8x8 digit images, used by pipelines/digits.toml.

keel hands build_model the 64 pixel columns (pixel_00 .. pixel_63, row by row) as z-scored float32
inputs of shape (1,). The model stacks them back into an 8x8 image, so the convolutions (the
layers int8 quantization matters most for on a phone) see the picture.
"""

import keras


def build_model(hparams: dict, features) -> keras.Model:
    pixels = sorted(features.numeric)  # zero-padded names: sorted order is pixel order
    inputs = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in pixels}
    x = keras.layers.Concatenate()([inputs[name] for name in pixels])  # (batch, 64)
    x = keras.layers.Reshape((8, 8, 1))(x)  # (batch, 8, 8, 1)
    filters = hparams.get("filters", [32, 64])
    x = keras.layers.Conv2D(filters[0], 3, padding="same", activation="relu")(x)  # (batch, 8, 8, f0)
    x = keras.layers.Conv2D(filters[1], 3, padding="same", activation="relu")(x)  # (batch, 8, 8, f1)
    x = keras.layers.MaxPooling2D(2)(x)  # (batch, 4, 4, f1)
    x = keras.layers.Flatten()(x)  # (batch, 16 * f1)
    x = keras.layers.Dense(hparams.get("dense", 256), activation="relu")(x)
    outputs = keras.layers.Dense(features.num_classes, activation="softmax")(x)  # (batch, 10)
    return keras.Model(inputs=inputs, outputs=outputs)

"""A small convolutional network for pictures, used by pipelines/digits_images.toml.

keel hands build_model each picture feature as a float32 input of shape (height, width, channels)
in [0, 1] (`features.images` names them and gives the shape): Transform decoded and resized the PNG
or JPEG bytes inside the graph, so the same model serves encoded pictures over TF Serving's REST
API and decoded camera frames on a phone.
"""

import keras


def build_model(hparams: dict, features) -> keras.Model:
    (name, shape), *others = features.images.items()
    if others:
        raise ValueError(f"image_cnn takes one picture feature; this spec has {len(features.images)}")
    inputs = keras.Input(shape=tuple(shape), name=name, dtype="float32")
    x = inputs
    for filters in hparams.get("filters", [32, 64]):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hparams.get("dense", 128), activation="relu")(x)
    outputs = keras.layers.Dense(features.num_classes, activation="softmax")(x)
    return keras.Model(inputs={name: inputs}, outputs=outputs)

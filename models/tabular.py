"""A multilayer perceptron for tabular data, used by pipelines/penguin.toml, taxi.toml, taxi_fare.toml
and breast_cancer.toml.

keel calls build_model(hparams, features) with the spec's [model] hparams and a keel.data.features.FeatureSet:
numeric features arrive z-scored as float32 of shape (1,), categorical ones as int64 indices of
shape (1,). Return an uncompiled keras.Model with one softmax output per class (classification) or
one linear unit (regression); keel compiles it.
"""

import keras


def build_model(hparams: dict, features) -> keras.Model:
    inputs, encoded = {}, []
    for name in features.numeric:
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="float32")
        encoded.append(inputs[name])
    for name, size in features.categorical.items():
        inputs[name] = keras.Input(shape=(1,), name=name, dtype="int64")
        encoded.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(inputs[name]))
    x = keras.layers.Concatenate()(encoded) if len(encoded) > 1 else encoded[0]  # (batch, n_inputs)
    for units in hparams.get("hidden", [32, 16]):
        x = keras.layers.Dense(units, activation="relu")(x)
    if features.task == "regression":
        outputs = keras.layers.Dense(1)(x)  # (batch, 1), in z-score units: keel scales it back
    else:
        outputs = keras.layers.Dense(features.num_classes, activation="softmax")(x)  # (batch, classes)
    return keras.Model(inputs=inputs, outputs=outputs)

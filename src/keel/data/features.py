"""What the model sees: feature names and kinds, resolved from the spec and the data's schema."""

import dataclasses

LABEL_VOCABULARY = "keel_label"  # the vocabulary file TFT writes for the label's classes
# Transform's output beside a regression label: 1.0 where the row has a label, 0.0 where it is missing
# (the label is then 0.0). The Trainer leaves weight-0 rows out; TFMA weighs examples by it.
LABEL_WEIGHT = "keel_label_weight"


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """The transformed inputs handed to `build_model(hparams, features)`.

    numeric: names of float32 inputs of shape (1,), z-scored.
    categorical: name -> number of distinct int64 index values of an input of shape (1,)
        (vocabulary size plus one out-of-vocabulary index).
    label: the label's name; label_vocabulary: class names in class-index order (empty for regression).
    raw_inputs: the raw columns a serving request must carry.
    task: "classification" (the model outputs one probability per class) or "regression" (one number).
    images: name -> [height, width, channels] of a float32 picture input in [0, 1].
    """

    numeric: list[str]
    categorical: dict[str, int]
    label: str
    label_vocabulary: list[str]
    raw_inputs: list[str]
    task: str = "classification"
    images: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.label_vocabulary)

    @property
    def output_units(self) -> int:
        """The width build_model's output must have: one per class, or 1 for regression."""
        return 1 if self.task == "regression" else self.num_classes

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.images]


def split_features(kinds: dict[str, str], label: str, numeric: list[str], categorical: list[str]):
    """Returns (numeric, categorical) feature names.

    `kinds` maps each raw column to "string", "float" or "int". When the spec lists no features,
    every column but the label is used: strings categorical, numbers numeric.
    """
    if numeric or categorical:
        return list(numeric), list(categorical)
    columns = sorted(c for c in kinds if c != label)
    return ([c for c in columns if kinds[c] != "string"], [c for c in columns if kinds[c] == "string"])


def dtype_kind(dtype) -> str:
    """Maps a tf.DType to "string", "float" or "int"."""
    if dtype.is_floating:
        return "float"
    return "int" if dtype.is_integer else "string"

"""keel: production machine learning on the real TensorFlow stack, from one TOML spec."""

__version__ = "0.1.0"

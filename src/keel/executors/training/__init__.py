"""Where and how the Trainer trains: distribution strategy, XLA choice and precision policy.

- `strategy`: `train.accelerator` / `train.tpu` -> a tf.distribute strategy (TPU, several GPUs,
  several workers, or the default one) and its replica count.
- `jit`: `train.jit_compile` -> XLA on or off; "auto" times both on the real model and input.
- `probe_cache`: that measurement kept in WORKDIR/cache/xla_probe/ per model and device, and reused.
- `precision`: `train.precision` -> a Keras dtype policy, with a default per device.
- `cluster`, `workers`, `worker`, `keras_multi_worker`: `train.workers` -> TF_CONFIG per process, the
  local training processes (what a Vertex AI pool runs), and Keras 3's fit across them.
"""

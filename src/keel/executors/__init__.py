"""Code TFX runs inside its executors, on whatever machine runs the component.

- `trainer`: the Trainer's `run_fn` (fit, then the serving, transform and mobile signatures).
- `transform`: the Transform's `preprocessing_fn` (z-scores, vocabularies, the label's class index).
- `signatures`: the SavedModel signatures serving, TFMA and the LiteRT export call.
- `warm_start`: borrowed weights loaded into a fresh model.
- `training/`: placement (strategy), the XLA choice and the precision policy.
"""

"""Mobile export: a keel SavedModel converted to LiteRT variants, each checked against the SavedModel.

- `mobile`: the dense-input signature a phone app calls (raw features in, probabilities out, the
  transform graph inside), built from the SavedModel and checked for what LiteRT can run.
- `variants`: float32, float16, dynamic-range int8 and full int8 conversion with TFLiteConverter.
- `parity`: runs each variant with LiteRT's interpreter on the eval split next to the SavedModel.
- `report`: the comparison table (report.md / report.json) and the variant the policy picks.
- `exporter`: the whole step, shared by the LiteExporter component and `keel export`.
"""

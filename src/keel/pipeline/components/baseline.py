"""The baseline a candidate model is compared with: the latest model blessed before it was trained.

TFX's LatestBlessedModelStrategy picks the latest blessed model at resolve time. On an identical
re-run the cached candidate would then be compared with itself, so the Evaluator and Pusher would
run again and push a duplicate version. Anchoring the baseline to the candidate makes the choice a
pure function of the candidate: a re-run resolves the same baseline, and stays fully cached.
"""

from tfx.components.evaluator import constants
from tfx.dsl.components.common import resolver

CANDIDATE, MODEL, BLESSING = "candidate", "model", "model_blessing"


class LatestBlessedBeforeCandidate(resolver.ResolverStrategy):
    """Resolves `model` / `model_blessing` to the newest blessed model older than `candidate`."""

    def resolve_artifacts(self, store, input_dict):
        candidates = input_dict.get(CANDIDATE, [])
        result = {CANDIDATE: candidates, MODEL: [], BLESSING: []}
        if not candidates:
            return result
        newest_allowed = min(c.id for c in candidates)
        blessed = {
            b.get_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
            for b in input_dict.get(BLESSING, [])
            if b.get_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
        }
        older = [m for m in input_dict.get(MODEL, []) if m.id < newest_allowed and m.id in blessed]
        if older:
            baseline = max(older, key=lambda m: m.id)
            result[MODEL], result[BLESSING] = [baseline], [blessed[baseline.id]]
        return result

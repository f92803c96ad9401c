"""The model registry: pushed versions, their metrics and stages, kept in ML Metadata.

Every version the Pusher pushed (a PushedModel artifact with `pushed` = 1) is in the registry,
numbered 1, 2, ... in push order. Its stage is the `keel_stage` custom property of that artifact:
`candidate` (the default), `production` or `archived`. At most one version is in production; a
promotion or rollback changes every affected artifact in one `put_artifacts` call, which ML
Metadata applies in one transaction, so the production pointer never names two versions or none
half-way through a change. Serving reads the stages with `stage_versions`, as version labels.
"""

import dataclasses
from pathlib import Path

from keel.core.errors import KeelError
from keel.mlmd import lineage, text
from keel.mlmd import store as metadata
from keel.mlmd.evaluation import DIFF_SUFFIX, evaluation_of
from keel.mlmd.lineage import Lineage

CANDIDATE, PRODUCTION, ARCHIVED = "candidate", "production", "archived"
STAGES = (CANDIDATE, PRODUCTION, ARCHIVED)  # every stage a version can be in; `keel models promote --to` offers these
STAGE, PROMOTED_SEQ, ROLLED_BACK = "keel_stage", "keel_promoted_seq", "keel_rolled_back"


class RegistryError(KeelError):
    """A registry request that cannot be carried out (unknown version, nothing to roll back to)."""


@dataclasses.dataclass
class Version:
    """One pushed version of the model."""

    index: int
    version: str
    destination: str
    stage: str
    artifact: object = dataclasses.field(repr=False)

    @property
    def pushed_ms(self) -> int:
        return self.artifact.create_time_since_epoch


def versions(store) -> list[Version]:
    """Every pushed version, oldest first."""
    return [
        Version(
            i,
            metadata.custom(a, "pushed_version"),
            metadata.custom(a, "pushed_destination"),
            metadata.custom(a, STAGE, CANDIDATE),
            a,
        )
        for i, a in enumerate(lineage.pushed_models(store), start=1)
    ]


def find(store, ref: str) -> Version:
    """The version named `ref`: its version directory name, or its registry index."""
    found = versions(store)
    for v in found:
        if v.version == ref:
            return v
    if ref.isdigit() and 1 <= int(ref) <= len(found):
        return found[int(ref) - 1]
    shown = ", ".join(f"{v.index} ({v.version})" for v in found) or "none; nothing has been pushed yet"
    raise RegistryError(f"model version {ref!r} is not in the registry; expected an index or version: {shown}")


def stage_versions(workdir: Path, model_name: str) -> dict[str, str]:
    """{stage: version directory name under WORKDIR/serving/MODEL_NAME/}: the production version, and the
    newest version in each other stage that has one; empty without a store. Serving's version labels."""
    if not metadata.store_path(workdir).exists():
        return {}
    found: dict[str, str] = {}
    for v in versions(metadata.open_store(workdir)):  # oldest first, so the newest in each stage wins
        if Path(v.destination).parent.name == model_name:
            found[v.stage] = v.version
    return found


def production_version(workdir: Path, model_name: str) -> str | None:
    """The version directory name (under WORKDIR/serving/MODEL_NAME/) marked production, or None."""
    return stage_versions(workdir, model_name).get(PRODUCTION)


def _with(artifact, **values):
    for key, value in values.items():
        if value is None:
            artifact.custom_properties.pop(key, None)
        elif isinstance(value, int):
            artifact.custom_properties[key].int_value = value
        else:
            artifact.custom_properties[key].string_value = value
    return artifact


def promote(workdir: Path, ref: str, to: str = PRODUCTION) -> Version:
    """Moves version `ref` to stage `to`; promoting to production archives the current production version."""
    if to not in STAGES:
        raise RegistryError(f"--to {to!r}: unknown stage; expected one of: {', '.join(STAGES)}")
    store = metadata.open_store(workdir)
    target = find(store, ref)
    changed = []
    if to == PRODUCTION:
        everything = versions(store)
        seq = 1 + max((metadata.custom(v.artifact, PROMOTED_SEQ, 0) for v in everything), default=0)
        changed = [
            _with(v.artifact, **{STAGE: ARCHIVED})
            for v in everything
            if v.stage == PRODUCTION and v.version != target.version
        ]
        changed.append(_with(target.artifact, **{STAGE: PRODUCTION, PROMOTED_SEQ: seq, ROLLED_BACK: None}))
    else:
        changed.append(_with(target.artifact, **{STAGE: to}))
    store.put_artifacts(changed)  # one transaction: the pointer moves at once
    return find(store, target.version)


def rollback(workdir: Path) -> tuple[Version, Version]:
    """Returns production to the version promoted before the current one; returns (from, to)."""
    store = metadata.open_store(workdir)
    everything = versions(store)
    current = next((v for v in everything if v.stage == PRODUCTION), None)
    if current is None:
        raise RegistryError("nothing to roll back: no version is in production (keel models promote V)")
    seq = metadata.custom(current.artifact, PROMOTED_SEQ, 0)
    earlier = [
        v
        for v in everything
        if v.stage != PRODUCTION
        and not metadata.custom(v.artifact, ROLLED_BACK, 0)
        and 0 < metadata.custom(v.artifact, PROMOTED_SEQ, 0) < seq
    ]
    if not earlier:
        raise RegistryError(
            f"nothing to roll back to: version {current.version} is the first one promoted to production"
        )
    previous = max(earlier, key=lambda v: metadata.custom(v.artifact, PROMOTED_SEQ, 0))
    store.put_artifacts(
        [_with(current.artifact, **{STAGE: ARCHIVED, ROLLED_BACK: 1}), _with(previous.artifact, **{STAGE: PRODUCTION})]
    )
    return find(store, current.version), find(store, previous.version)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of the registry: a pushed version, its stage and metrics; `show` adds its full lineage."""

    index: int
    version: str
    stage: str
    destination: str
    pushed_ms: int
    model_artifact_id: int
    metrics: dict[str, float]
    lineage: Lineage | None = None

    def to_dict(self) -> dict:
        """The entry as plain JSON-ready data (what `keel models list|show --json` prints)."""
        found = dataclasses.asdict(self)
        if self.lineage is None:
            del found["lineage"]
        return found


def _entry(store, version: Version, full: bool = False) -> Entry:
    model = lineage.trained_model_of(store, version.artifact)
    return Entry(
        index=version.index,
        version=version.version,
        stage=version.stage,
        destination=version.destination,
        pushed_ms=version.pushed_ms,
        model_artifact_id=model.id,
        metrics=evaluation_of(store, model).metrics,
        lineage=lineage.lineage(store, model) if full else None,
    )


def list_versions(workdir: Path) -> list[Entry]:
    """Every pushed version with its stage and metrics, oldest first."""
    store = metadata.open_store(workdir)
    return [_entry(store, v) for v in versions(store)]


def show(workdir: Path, ref: str) -> Entry:
    """One version: its stage, metrics and full lineage."""
    store = metadata.open_store(workdir)
    return _entry(store, find(store, ref), full=True)


def render_list(rows: list[Entry]) -> str:
    """The registry as a table."""
    if not rows:
        return "no pushed versions yet (a run pushes its model when it is blessed)"
    names = sorted({k for r in rows for k in r.metrics if not k.endswith(DIFF_SUFFIX)})
    header = f"{'#':>3}  {'version':<12} {'stage':<11} {'pushed (UTC)':<20} " + " ".join(names)
    lines = [header.rstrip()]
    for r in rows:
        shown = " ".join(f"{text.number(r.metrics.get(n)):>{len(n)}}" for n in names)
        lines.append(f"{r.index:>3}  {r.version:<12} {r.stage:<11} {text.utc(r.pushed_ms):<20} {shown}".rstrip())
    return "\n".join(lines)


def render_entry(entry: Entry) -> str:
    """One version as text: its stage, then its lineage."""
    return f"version {entry.version} (#{entry.index}): {entry.stage}\n{lineage.render(entry.lineage)}"

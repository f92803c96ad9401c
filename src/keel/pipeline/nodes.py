"""The node ids of keel's pipeline: how ML Metadata names each component's executions.

The factory gives every component one of these ids, and everything that reads ML Metadata (lineage,
registry, monitoring, export, the run summary) finds executions by them, never by a literal string.
"""

EXAMPLE_GEN_CSV = "CsvExampleGen"
EXAMPLE_GEN_IMPORT = "ImportExampleGen"
STATISTICS = "StatisticsGen"
SCHEMA = "SchemaGen"
SCHEMA_IMPORT = "ImportSchemaGen"
VALIDATOR = "ExampleValidator"
DATA_GATE = "DataGate"
TRANSFORM = "Transform"
WARM_START = "warm_start"
TRAINER = "Trainer"
BASELINE = "baseline"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
LITE_EXPORTER = "LiteExporter"

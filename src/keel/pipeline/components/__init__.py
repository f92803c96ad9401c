"""keel's own TFX components: real components that cache, appear in ML Metadata and run on Vertex."""

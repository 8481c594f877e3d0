"""The platform every modality uses: table declarations, Delta storage, DuckDB connections, ingest, quality checks, configuration."""

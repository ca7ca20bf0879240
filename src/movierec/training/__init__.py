"""Learning what a model serves (scipy): used by ingest and evaluate only, never by the service."""

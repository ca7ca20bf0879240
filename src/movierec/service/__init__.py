"""The HTTP API: a thin FastAPI layer over movierec.recommend (create_app, serve)."""

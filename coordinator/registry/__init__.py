"""The registry: SQLAlchemy models, engines and migrations."""

"""Alembic migrations of the coordinator's registry."""

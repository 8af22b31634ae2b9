"""The prediction log: what the service answered, kept in a database for monitoring.

A room of its own so the service (which writes it) and the pipeline's `monitor` (which reads it)
share one schema without either importing the other. It needs only SQLAlchemy and Alembic, both
in the `serve` install, so a slim deployment can create and migrate its own tables.
"""

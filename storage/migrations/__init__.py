"""Alembic migrations, shipped inside the package (see ``storage.migrate``)."""

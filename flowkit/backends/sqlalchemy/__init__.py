"""The SQL store: SQLite (the default store), PostgreSQL and MySQL/MariaDB, via SQLAlchemy.

Selected by the URL schemes ``sqlite``, ``postgresql`` / ``postgres`` (psycopg 3
by default), ``mysql`` and ``mariadb`` (PyMySQL by default); see
:class:`SQLStore` and the Stores page of the documentation.
"""

from ._schema import MIGRATIONS, SCHEMA_VERSION, Migration
from ._store import SQLStore

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "SQLStore"]

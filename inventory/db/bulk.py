"""Bulk inserts for the ledger's large movements: COPY on PostgreSQL (one stream for thousands
of rows), batched multi-row INSERTs on SQLite (see db/engine.py) and for a few rows anywhere."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, Insert, Table, any_, bindparam, insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute, Session

from .engine import psycopg_of

# Below this many rows an INSERT is cheaper: COPY costs extra round trips to start and end.
COPY_FROM = 50


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys, values already in database form: no type
    decorators are applied on the COPY path) into `table`, in the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql" or len(rows) < COPY_FROM:
        connection.execute(_insert(table), rows[0] if len(rows) == 1 else rows)
        return
    columns = list(rows[0])
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with psycopg_of(session).cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


@functools.cache
def _insert(table: Table) -> Insert:
    return insert(table)


def among(
    session: Session, column: ColumnElement[Any] | QueryableAttribute[Any], values: list[Any]
) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL the values go as one array parameter: an IN list of a
    thousand parameters costs more to build, send and parse than the lookup itself."""
    return among_param(session.get_bind().dialect.name, column, None, values)


def among_param(
    dialect: str,
    column: ColumnElement[Any] | QueryableAttribute[Any],
    name: str | None,
    values: list[Any] | None = None,
) -> ColumnElement[bool]:
    """`column IN :name` as `among` writes it; without `values`, for a statement built once
    per dialect and executed with the list of values under `name`."""
    if dialect != "postgresql":
        return column.in_(bindparam(name, values, expanding=True))
    return column == any_(bindparam(name, values, type_=ARRAY(column.expression.type)))

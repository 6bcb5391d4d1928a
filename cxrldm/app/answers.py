"""The reader study's answers: one table, rows only ever appended (a changed answer is a new row), each
committed before the server replies. SQLite by default; any SQLAlchemy URL for a shared server."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
)

metadata = MetaData()
answers = Table(
    "answers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # append order
    Column("study", String(32), nullable=False, index=True),
    Column("reader", String(64), nullable=False),  # the reader's label, never the token
    Column("film", String(32), nullable=False),
    Column("answer", String(16), nullable=False),  # real | synthetic
    Column("confidence", Integer, nullable=False),  # 1..5
    Column("findings_given", Integer, nullable=False),  # 1 if the findings part was submitted
    Column("findings_answered", String(256), nullable=False),  # ticked findings joined by ";"
    Column("answered_at", String(32), nullable=False),  # ISO 8601 UTC
)


def connect(url: str):
    """An engine on the database, its table created if missing. SQLite waits up to 30 s for a lock, so
    concurrent readers queue instead of failing."""
    engine = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    metadata.create_all(engine)
    return engine


def add(engine, row: dict) -> None:
    """Append one answer and commit it (the transaction ends before this returns)."""
    with engine.begin() as connection:
        connection.execute(insert(answers).values(**row))


def answered(engine, study: str, reader: str) -> dict[str, dict]:
    """The reader's latest answer per film."""
    query = select(answers).where(answers.c.study == study, answers.c.reader == reader).order_by(answers.c.id)
    with engine.connect() as connection:
        return {row.film: dict(row._mapping) for row in connection.execute(query)}


def rows(engine, study: str) -> list[dict]:
    """Every answer of the study in the order given."""
    with engine.connect() as connection:
        return [
            dict(r._mapping)
            for r in connection.execute(select(answers).where(answers.c.study == study).order_by(answers.c.id))
        ]


def count(engine, study: str) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(answers).where(answers.c.study == study)).scalar()

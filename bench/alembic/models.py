"""The original app's Todo model (app/models/todo.py), as its Alembic env.py
imports it for target_metadata. A fixture of bench/migrate.sh: the reference
for `migrate.lua check` and `revision --autogenerate`; not part of todohost."""
from sqlalchemy import Boolean, Column, DateTime, Integer, String, Text, false, func
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class Todo(Base):
    __tablename__ = "todos"

    id = Column(Integer, primary_key=True, index=True)
    title = Column(String(200), nullable=False)
    description = Column(Text, nullable=True)
    is_completed = Column(Boolean, nullable=False, default=False, server_default=false())
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at = Column(DateTime(timezone=True), nullable=True, onupdate=func.now())
    deleted_at = Column(DateTime(timezone=True), nullable=True)

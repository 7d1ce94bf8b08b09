"""The original app's alembic/env.py (after ORIGINAL-GUIDE.md section 5:
render_as_batch removed), with target_metadata from the models. A fixture of
bench/migrate.sh, not part of todohost.

Additions for the benchmark: the URL is DATABASE_URL (the app's settings read
it from .env); `-x compare_type=true -x compare_server_default=true` turn on
those options (off by default, as in Alembic 1.8) for bench/alembic/detect.sh."""
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

from models import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata
url = os.environ["DATABASE_URL"]
if url.startswith("postgresql://"):
    url = "postgresql+psycopg2://" + url[len("postgresql://"):]
config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))

x = context.get_x_argument(as_dictionary=True)
options = {k: x.get(k) == "true" for k in ("compare_type", "compare_server_default")}


def process_revision_directives(context, revision, directives):
    # The Alembic cookbook's hook: no empty revision file when autogenerate
    # finds nothing to do.
    if config.cmd_opts and getattr(config.cmd_opts, "autogenerate", False):
        script = directives[0]
        if script.upgrade_ops.is_empty():
            directives[:] = []


def run_migrations_offline():
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        process_revision_directives=process_revision_directives,
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connectable = engine_from_config(
        config.get_section(config.config_ini_section),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            process_revision_directives=process_revision_directives,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

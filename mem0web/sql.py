"""SQL helpers for the few statements the ORM cannot express (conditional inserts on PostgreSQL)."""

from django.db import connection
from django.db.models.sql import UpdateQuery


def insert_from(instance, source: str) -> tuple[str, list]:
    """`INSERT INTO <table> (...) SELECT <values> FROM <source>`: the model's own insert of an unsaved
    `instance`, made conditional on `source` (a CTE) having a row. Call `mark_saved` once it inserted."""
    fields = instance._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(instance._meta.db_table)} ({columns}) SELECT {placeholders} FROM {source}", values


def conditional_insert(update, instance) -> bool:
    """Run `update` (a QuerySet.update()-able queryset plus its field values: (queryset, {field: value}))
    and, in the same statement, insert `instance` if and only if it updated a row (PostgreSQL)."""
    queryset, values = update
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    update_sql, update_params = query.get_compiler(connection=connection).as_sql()
    insert_sql, insert_params = insert_from(instance, "updated")
    with connection.cursor() as cursor:
        cursor.execute(f"WITH updated AS ({update_sql} RETURNING 1) {insert_sql}", [*update_params, *insert_params])
        inserted = cursor.rowcount == 1
    if inserted:
        mark_saved(instance)
    return inserted


def mark_saved(instance) -> None:
    instance._state.adding, instance._state.db = False, connection.alias

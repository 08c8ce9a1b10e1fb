"""SQL helpers for the few statements the ORM cannot express (conditional inserts on PostgreSQL)."""

from django.db import connection, transaction
from django.db.models.sql import UpdateQuery


def insert_from(instance, source: str) -> tuple[str, list]:
    """`INSERT INTO <table> (...) SELECT <values> FROM <source>`: the model's own insert of an unsaved
    `instance`, made conditional on `source` (a CTE) having a row. Call `mark_saved` once it inserted."""
    meta, quote = instance._meta, connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field]  # the database numbers those
    columns = ", ".join(quote(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {placeholders} FROM {source}"
    return sql + f" RETURNING {quote(meta.pk.column)}", values


def update_sql(queryset, values: dict, returning: str) -> tuple[str, list]:
    """The SQL of `queryset.update(**values)` with `RETURNING <returning>`, to use as a CTE."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(connection=connection).as_sql()
    return f"{sql} RETURNING {returning}", list(params)


def conditional_insert(queryset, values: dict, instance) -> bool:
    """`queryset.update(**values)` and, in the same statement, the insert of `instance` if and only if the
    update matched a row (PostgreSQL)."""
    return _update_then_insert(queryset, values, instance, "updated")


def update_and_insert(queryset, values: dict, instance) -> None:
    """`queryset.update(**values)` and the insert of `instance` (whatever the update matched), in one
    statement on PostgreSQL (a data-modifying CTE always runs), in one transaction elsewhere."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            queryset.update(**values)
            instance.save(force_insert=True)
        return
    _update_then_insert(queryset, values, instance, "(SELECT 1) AS one")


def _update_then_insert(queryset, values: dict, instance, source: str) -> bool:
    update, update_params = update_sql(queryset, values, "1")
    insert, insert_params = insert_from(instance, source)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH updated AS ({update}) {insert}", [*update_params, *insert_params])
        row = cursor.fetchone()
    if row is not None:
        mark_saved(instance, row[0])
    return row is not None


def mark_saved(instance, pk) -> None:
    instance.pk = pk
    instance._state.adding, instance._state.db = False, connection.alias

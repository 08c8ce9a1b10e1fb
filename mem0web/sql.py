"""SQL helpers: statements the ORM cannot express (conditional inserts on PostgreSQL), and the hot-path
statements whose text is built once per shape instead of compiled by the ORM on every request.

Compiling a queryset is most of a simple statement's cost here (cProfile, CPU clock: `sandbox_by_id` was
23 % of a run request's CPU, three quarters of it building the SQL). `rows_where` and `update_where` build
the text of a shape once per process and only prepare the values on each call."""

import functools

from django.db import connection, transaction
from django.db.models import F


class Increment:
    """A value for `update_where`: `column = column + n`."""

    def __init__(self, n):
        self.n = n


def rows_where(model, **equal) -> list:
    """The `model` instances whose columns equal the given values (attnames: `organization_id=...`)."""
    names = tuple(equal)
    sql, attnames, converters = _select(model, names, connection.vendor)
    params = [_field(model, n).get_db_prep_value(v, connection, prepared=False) for n, v in equal.items()]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = []
    for row in rows:
        if converters:
            row = list(row)
            for pos, (funcs, expression) in converters:
                for convert in funcs:
                    row[pos] = convert(row[pos], expression, connection)
        found.append(model.from_db(connection.alias, attnames, row))
    return found


@functools.cache
def _select(model, names: tuple[str, ...], vendor: str):
    meta, quote = model._meta, connection.ops.quote_name
    fields = meta.concrete_fields
    compiler = model._default_manager.all().query.get_compiler(connection=connection)
    converters = list(compiler.get_converters([f.get_col(meta.db_table) for f in fields]).items())
    where = " AND ".join(f"{quote(_field(model, n).column)} = %s" for n in names)
    sql = f"SELECT {', '.join(quote(f.column) for f in fields)} FROM {quote(meta.db_table)} WHERE {where}"
    return sql, [f.attname for f in fields], converters


def update_where(model, values: dict, returning: str, **where) -> tuple[str, list]:
    """`UPDATE <model> SET <values> WHERE <where> RETURNING <returning>`, to run or use as a CTE.

    values: {attname: value | Increment(n)}; where: {attname: value, attname__in: [...], attname__lt: value}."""
    shape = (tuple((n, isinstance(v, Increment)) for n, v in values.items()),
             tuple((n, len(v) if n.endswith("__in") else 0) for n, v in where.items()))
    sql = _update(model, shape, returning, connection.vendor)
    params = [_field(model, n).get_db_prep_save(v.n if isinstance(v, Increment) else v, connection)
              for n, v in values.items()]
    for name, value in where.items():
        field = _field(model, name.split("__")[0])
        for v in (value if name.endswith("__in") else [value]):
            params.append(field.get_db_prep_value(v, connection, prepared=False))
    return sql, params


@functools.cache
def _update(model, shape, returning: str, vendor: str) -> str:
    quote = connection.ops.quote_name
    sets = []
    for name, increment in shape[0]:
        column = quote(_field(model, name).column)
        sets.append(f"{column} = {column} + %s" if increment else f"{column} = %s")
    conditions = []
    for name, count in shape[1]:
        attname, _, lookup = name.partition("__")
        column = quote(_field(model, attname).column)
        if lookup == "in":
            conditions.append(f"{column} IN ({', '.join(['%s'] * count)})")
        elif lookup in _OPERATORS:
            conditions.append(f"{column} {_OPERATORS[lookup]} %s")
        else:
            raise ValueError(f"update_where: unsupported lookup {name!r}")
    return (f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} WHERE {' AND '.join(conditions)}"
            f" RETURNING {returning}")


_OPERATORS = {"": "=", "lt": "<", "gt": ">"}  # Django's lookups of the same names (orm_update's path)


def _field(model, attname: str):
    return model._meta.get_field(attname)


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


def conditional_insert(model, values: dict, instance, **where) -> bool:
    """`update_where(model, values, **where)` and, in the same statement, the insert of `instance` if and
    only if the update matched a row (PostgreSQL)."""
    return _update_then_insert(model, values, where, instance, "updated")


def update_and_insert(model, values: dict, instance, **where) -> None:
    """The update of `update_where(model, values, **where)` and the insert of `instance` (whatever the
    update matched), in one statement on PostgreSQL (a data-modifying CTE always runs), in one transaction
    elsewhere."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            orm_update(model, values, **where)
            instance.save(force_insert=True)
        return
    _update_then_insert(model, values, where, instance, "(SELECT 1) AS one")


def orm_update(model, values: dict, **where) -> int:
    """What `update_where` says, through the ORM (any database)."""
    return model._default_manager.filter(**where).update(
        **{n: F(n) + v.n if isinstance(v, Increment) else v for n, v in values.items()})


def _update_then_insert(model, values: dict, where: dict, instance, source: str) -> bool:
    update, update_params = update_where(model, values, "1", **where)
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

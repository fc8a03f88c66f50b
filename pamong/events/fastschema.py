"""A fast path through a marshmallow schema for the plain values events carry.

Every event is dumped and checked by its contract when it is written and loaded by it again
when it is consumed; marshmallow spends about 0.1 ms per field-rich event on each, more than
the rest of publishing. ``compile_schema(schema)`` turns a schema into plain functions that
give marshmallow's own answer for *plain* input (a ``str`` for a String, an ``int`` for an
Integer, an ISO string for a Date, a ``dict`` for a Nested, every required key present, no
unknown key) and raise ``Unsure`` for anything else: a missing or extra key, another type, a
value a validator refuses. The caller then asks marshmallow, which returns the right result
or the right error messages. So the fast path never decides a failure and only has to be
right when it answers; ``tests/unit/test_fastschema.py`` compares the two on generated data.

A schema with anything this module does not know (hooks such as ``@validates`` or
``@post_load``, a field's ``pre_load``/``post_load``, ``data_key``, defaults, ``load_only``,
another field class, an overridden ``get_attribute``) compiles to
``None`` and always goes through marshmallow. Validators are marshmallow's own objects,
called as marshmallow calls them.
"""

import math
import re
import uuid
from datetime import date, datetime

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow.utils import missing

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# a schema overriding any of these reads or shapes data its own way
OWN_SCHEMA_METHODS = ("load", "dump", "get_attribute", "_deserialize", "_serialize",
                      "_do_load", "handle_error", "validate")
PLAIN_FIELD_CLASSES = (fields.String, fields.Integer, fields.Float, fields.Boolean, fields.Date,
                       fields.DateTime, fields.AwareDateTime, fields.NaiveDateTime, fields.UUID,
                       fields.Dict, fields.List, fields.Nested)


class Unsure(Exception):
    """Not a plain value: ask marshmallow."""


class FastSchema:
    def __init__(self, load, dump):
        self.load = load  # data -> what schema.load(data) returns
        self.dump = dump  # data -> what schema.dump(data) returns, when schema.load accepts it


def compile_schema(schema):
    """A ``FastSchema`` for a schema instance, or ``None`` if it uses something unsupported."""
    try:
        return _compile(schema, set())
    except _Unsupported:
        return None


class _Unsupported(Exception):
    pass


def _compile(schema, compiling):
    if type(schema) in compiling or any(schema._hooks.values()) or schema.unknown != RAISE \
            or schema.many or schema.partial or set(schema.load_fields) != set(schema.fields) \
            or set(schema.dump_fields) != set(schema.fields) or schema.dict_class is not dict \
            or any(getattr(type(schema), name) is not getattr(Schema, name)
                   for name in OWN_SCHEMA_METHODS):
        raise _Unsupported
    compiling = compiling | {type(schema)}  # a schema nested in itself: not plain
    plan = [(name, *_compile_field(name, field, compiling))
            for name, field in schema.fields.items()]
    known = frozenset(schema.fields)

    def load(data):
        if type(data) is not dict or not known.issuperset(data):
            raise Unsure
        out = {}
        for name, load_value, _, required, allow_none, check in plan:
            value = data.get(name, missing)
            if value is missing:
                if required:
                    raise Unsure
                continue
            if value is None:
                if not allow_none:
                    raise Unsure
                out[name] = None
                continue
            out[name] = check(load_value(value))
        return out

    def dump(data):
        if type(data) is not dict:
            raise Unsure
        out = {}
        for name, _, dump_value, _, _, _ in plan:
            value = data.get(name, missing)
            if value is missing:
                if hasattr(data, name):  # marshmallow would read the dict's attribute
                    raise Unsure
                continue
            out[name] = None if value is None else dump_value(value)
        load(out)  # what marshmallow's load of the dumped data would refuse
        return out

    return FastSchema(load, dump)


def _compile_field(name, field, compiling):
    """(load, dump, required, allow_none, check) for one field."""
    if type(field) not in PLAIN_FIELD_CLASSES or "." in name or field.data_key is not None \
            or field.attribute is not None or field.load_default is not missing \
            or field.dump_default is not missing or field.load_only or field.dump_only \
            or field.pre_load or field.post_load:
        raise _Unsupported
    load, dump = _converters(field, compiling)
    validators = list(field.validators)

    def check(value):
        for validator in validators:
            try:
                if validator(value) is False:
                    raise Unsure
            except ValidationError:
                raise Unsure from None
        return value

    return load, dump, field.required, field.allow_none, check if validators else _same


def _converters(field, compiling):
    """(load, dump) of one non-None value."""
    kind = type(field)
    if kind is fields.String:
        return _typed(str), _typed(str)
    if kind is fields.Integer:
        if field.as_string:
            raise _Unsupported
        return _typed(int), _typed(int)
    if kind is fields.Float:
        if field.as_string:
            raise _Unsupported
        return _float(field.allow_nan), _float(True)
    if kind is fields.Boolean:
        if True not in field.truthy or False not in field.falsy or False in field.truthy:
            raise _Unsupported
        return _typed(bool), _typed(bool)
    if kind is fields.Date:
        if field.format not in (None, "iso", "iso8601"):
            raise _Unsupported
        return _load_date, _dump_temporal(date)
    if kind in (fields.DateTime, fields.AwareDateTime, fields.NaiveDateTime):
        if field.format not in (None, "iso", "iso8601"):
            raise _Unsupported
        return _load_datetime(kind), _dump_temporal(datetime)
    if kind is fields.UUID:
        return _load_uuid, _dump_uuid
    if kind is fields.Dict:
        if field.key_field is not None or field.value_field is not None:
            raise _Unsupported
        return _copy_dict, _copy_dict
    if kind is fields.List:
        inner_load, inner_dump, _, allow_none, check = _compile_field("item", field.inner,
                                                                      compiling)
        return _list_of(inner_load, check, allow_none), _list_of(inner_dump, _same, True)
    if field.many or field.unknown not in (None, RAISE):  # Nested
        raise _Unsupported
    nested = _compile(field.schema, compiling)
    return _nested(nested.load), _nested(nested.dump)


def _same(value):
    return value


def _typed(cls):
    def convert(value):
        if type(value) is not cls:
            raise Unsure
        return value
    return convert


def _float(allow_nan):
    def convert(value):
        if type(value) not in (float, int):
            raise Unsure
        try:
            value = float(value)
        except OverflowError:  # an int beyond float: marshmallow says "too large"
            raise Unsure from None
        if not allow_nan and not math.isfinite(value):
            raise Unsure
        return value
    return convert


def _load_date(value):
    if type(value) is date:
        return value
    if type(value) is not str or not ISO_DATE.fullmatch(value):
        raise Unsure
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Unsure from None


def _load_datetime(kind):
    def convert(value):
        if type(value) is str:
            try:
                value = datetime.fromisoformat(value)  # what marshmallow calls for "iso"
            except ValueError:
                raise Unsure from None
        elif type(value) is not datetime:
            raise Unsure
        aware = value.tzinfo is not None and value.tzinfo.utcoffset(value) is not None
        if (kind is fields.AwareDateTime and not aware) or \
                (kind is fields.NaiveDateTime and aware):
            raise Unsure
        return value
    return convert


def _dump_temporal(cls):
    def convert(value):
        if type(value) is not cls:
            raise Unsure
        return value.isoformat()
    return convert


def _load_uuid(value):
    if type(value) is uuid.UUID:
        return value
    if type(value) is not str:
        raise Unsure
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Unsure from None


def _dump_uuid(value):
    if type(value) not in (str, uuid.UUID):
        raise Unsure
    return str(value)


def _copy_dict(value):
    if type(value) is not dict:
        raise Unsure
    return dict(value)


def _list_of(convert, check, allow_none):
    def convert_all(value):
        if type(value) is not list:
            raise Unsure
        out = []
        for item in value:
            if item is None:
                if not allow_none:
                    raise Unsure
                out.append(None)
            else:
                out.append(check(convert(item)))
        return out
    return convert_all


def _nested(convert):
    def convert_one(value):
        if type(value) is not dict:
            raise Unsure
        return convert(value)
    return convert_one

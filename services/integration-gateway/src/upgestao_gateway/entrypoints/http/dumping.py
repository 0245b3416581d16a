"""A response schema's ``dump``, compiled once: what marshmallow's ``Schema.dump`` returns, for less CPU.

``Schema.dump`` walks every field of every item through several generic calls (the accessor, the default,
the field's ``serialize`` and ``_serialize``), and a page of 50 messages cost the gateway more CPU to dump
than to encode as JSON. :func:`compile_dump` reads a schema's fields once and returns a function that
gives exactly what ``schema.dump(obj)`` gives, doing the common case directly: a ``dict`` item holding the
field's key, whose value already is of the field's type (a ``str`` for ``String``, an ``int`` for
``Integer``, a ``bool`` for ``Boolean``, ``None``), and ``List`` and ``Nested`` of those. Anything else
is marshmallow's own code for that value or field (``field._serialize``, ``field.serialize``: a missing
key, a default, a value to convert, another field type), and a schema with dump hooks or its own
serialization is dumped by ``schema.dump`` itself: the result never differs, only the cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import missing

Dump = Callable[..., Any]  # dump(obj, many=None) -> what schema.dump(obj, many=many) returns
_Convert = Callable[[Any, str, Any], Any]  # (value, attr, obj) -> what field._serialize(value, attr, obj) returns

_DEFAULT_TRUTHY, _DEFAULT_FALSY = fields.Boolean.truthy, fields.Boolean.falsy


def compile_dump(schema: Schema) -> Dump:
    """``dump(obj, many=None)``, equal to ``schema.dump(obj, many=many)`` (see the module docstring)."""
    cls = type(schema)
    if (schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP] or schema.dict_class is not dict
            or cls.dump is not Schema.dump or cls._serialize is not Schema._serialize
            or cls.get_attribute is not Schema.get_attribute):
        return schema.dump
    # one function per schema, its fields in order, generated once: the common case is a few inline checks
    namespace: dict[str, Any] = {"missing": missing, "accessor": schema.get_attribute}
    lines = ["def one(obj):", "    ret = {}", "    is_dict = type(obj) is dict"]
    for n, (attr_name, field) in enumerate(schema.dump_fields.items()):
        key = field.data_key if field.data_key is not None else attr_name
        check_key = attr_name if field.attribute is None else field.attribute
        namespace[f"serialize{n}"] = field.serialize
        slow = [f"        value = serialize{n}({attr_name!r}, obj, accessor=accessor)",
                "        if value is not missing:",
                f"            ret[{key!r}] = value"]
        direct = _direct(field, f"convert{n}", namespace)
        if direct is None or not isinstance(check_key, str) or "." in check_key:
            lines += ["    if True:", *slow]
            continue
        lines += [f"    if is_dict and {check_key!r} in obj and (value := obj[{check_key!r}]) is not missing:",
                  f"        ret[{key!r}] = {direct.format(attr=repr(attr_name))}",
                  "    else:", *slow]
    lines.append("    return ret")
    exec(compile("\n".join(lines), f"<dump {cls.__module__}.{cls.__qualname__}>", "exec"), namespace)
    one = namespace["one"]
    default_many = schema.many

    def dump(obj: Any, many: bool | None = None) -> Any:
        if (default_many if many is None else many) and obj is not None:
            return [one(item) for item in obj]
        return one(obj)

    return dump


def _direct(field: fields.Field, name: str, namespace: dict[str, Any]) -> str | None:
    """The expression of ``field._serialize(value, {attr}, obj)`` with a shortcut for a value already of the
    field's type (``convert`` functions it needs go into ``namespace`` under ``name``); None for a field whose
    value is not read as marshmallow's plain fields read it (left entirely to ``field.serialize``)."""
    convert = _converter(field)
    if convert is None:
        return None
    namespace[name] = convert
    kind = type(field)
    if kind is fields.String:
        return f"value if type(value) is str or value is None else {name}(value, {{attr}}, obj)"
    if kind is fields.Integer and not field.as_string:
        return f"value if type(value) is int or value is None else {name}(value, {{attr}}, obj)"
    if kind is fields.Boolean and field.truthy is _DEFAULT_TRUTHY and field.falsy is _DEFAULT_FALSY:
        return f"value if value is True or value is False or value is None else {name}(value, {{attr}}, obj)"
    return f"{name}(value, {{attr}}, obj)"


def _converter(field: fields.Field) -> _Convert | None:
    """``field._serialize`` with a shortcut for values already of the field's type; None for a field whose
    value is not read as marshmallow's plain fields read it (left entirely to ``field.serialize``)."""
    kind = type(field)
    serialize = field._serialize
    if kind is fields.List:
        inner = _converter(field.inner) or field.inner._serialize

        def convert_list(value: Any, attr: str, obj: Any) -> Any:
            if value is None:
                return None
            return [inner(each, attr, obj) for each in value]

        return convert_list
    if kind is fields.Nested:
        nested = field.schema
        dump = compile_dump(nested)
        many = bool(nested.many or field.many)
        return lambda value, attr, obj: None if value is None else dump(value, many=many)
    if kind is fields.String:
        return lambda value, attr, obj: value if type(value) is str else serialize(value, attr, obj)
    if kind is fields.Integer and not field.as_string:
        return lambda value, attr, obj: value if type(value) is int else serialize(value, attr, obj)
    if kind is fields.Boolean and field.truthy is _DEFAULT_TRUTHY and field.falsy is _DEFAULT_FALSY:
        return lambda value, attr, obj: value if value is True or value is False else serialize(value, attr, obj)
    return serialize if _reads_plainly(field) else None


def _reads_plainly(field: fields.Field) -> bool:
    """Whether the field reads its value as ``Field.serialize`` does (by key or attribute, a default when
    missing), so that a value found in a ``dict`` may go straight to its ``_serialize``."""
    kind = type(field)
    return (field._CHECK_ATTRIBUTE and kind.serialize is fields.Field.serialize
            and kind.get_value is fields.Field.get_value)

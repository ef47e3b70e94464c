"""The base of the generated wire types, and the route descriptor.

A model is a dataclass whose _fields list, for each attribute, its JSON
name and its kind: str, int, float, bool, any, a model name, [KIND] for a
list or {KIND} for a map with string keys. from_dict and to_dict convert
with the API's JSON; fields a newer daemon sends that this client does not
know are kept (unknown_fields) and sent back by to_dict.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple, Optional


class Route(NamedTuple):
    """One operation of the API, as /openapi.json describes it: params are
    the path parameters, query maps query parameters to their kinds."""

    method: str
    path: str
    params: tuple = ()
    query: dict = {}
    headers: tuple = ()
    body: Optional[str] = None
    body_required: bool = False
    status: int = 200
    returns: Optional[str] = None
    content: Optional[str] = None


_SCALARS = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _models():
    from ._generated import MODELS

    return MODELS


def decode(kind: str, value: Any) -> Any:
    """Converts a JSON value to the Python value of kind."""
    if value is None or kind == "any":
        return value
    if kind.startswith("["):
        return [decode(kind[1:-1], v) for v in value]
    if kind.startswith("{"):
        return {k: decode(kind[1:-1], v) for k, v in value.items()}
    if kind in _SCALARS:
        return value
    return _models()[kind].from_dict(value)


def encode(value: Any) -> Any:
    """Converts a Python value (models, lists, dicts) to JSON data."""
    if isinstance(value, Model):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


class Model:
    """Base of the wire types: dataclasses that convert to and from JSON."""

    _fields: ClassVar[tuple] = ()

    @classmethod
    def from_dict(cls, data: dict):
        """Builds the model from the API's JSON object."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError("%s: want a JSON object, got %s" % (cls.__name__, type(data).__name__))
        kwargs, known = {}, set()
        for py, js, kind in cls._fields:
            known.add(js)
            if js in data:
                kwargs[py] = decode(kind, data[js])
            elif py in data:
                # Python names are accepted too: VMSpec.from_dict({"cloud_init": ...}).
                known.add(py)
                kwargs[py] = decode(kind, data[py])
        obj = cls(**kwargs)
        obj._unknown = {k: v for k, v in data.items() if k not in known}
        return obj

    def to_dict(self) -> dict:
        """The model as the API's JSON object; unset (None) fields are left out."""
        out = {}
        for py, js, _ in self._fields:
            v = getattr(self, py)
            if v is not None:
                out[js] = encode(v)
        out.update(self.unknown_fields)
        return out

    @property
    def unknown_fields(self) -> dict:
        """Fields the daemon sent that this client's models do not have."""
        return getattr(self, "_unknown", None) or {}

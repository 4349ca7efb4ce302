"""A snapshot's people and units as plain rows, turned into models only when read.

Unpickling 100,000 people as pydantic models (220,000 ``__setstate__`` calls with their platform
ids) took 0.5–0.8 s in every command that needed any of them; a command that fires for 20,000
secretaries does not need the other 80,000. :class:`Rows` is the section's mapping (id → model,
in file order) over tuples that pickle and unpickle in C; each model is built on its first read
(``BaseModel.__new__`` and the row's values: the data was validated when the snapshot was
written, exactly as unpickling a model does not validate it again) and kept. The membership
index (``Membership`` in models.py) reads the rows' columns without building a model.

A row is the model's field values in field order, then the index of its set of given fields in
the mapping's ``sets``; a field holding a nested model (``Person.ids``) holds that model's row
the same way. Equality, pickling and mutation behave as for the dict it replaces.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from pydantic import BaseModel

_set = object.__setattr__
_new = object.__new__  # pydantic's BaseModel has no __new__ of its own


_SPECS: dict[type[BaseModel], tuple[tuple[str, ...], dict[int, type[BaseModel]]]] = {}


def _spec(model: type[BaseModel]) -> tuple[tuple[str, ...], dict[int, type[BaseModel]]]:
    """The model's field names in order, and the positions of fields whose values are models."""
    found = _SPECS.get(model)
    if found is None:
        nested: dict[int, type[BaseModel]] = {}
        for i, info in enumerate(model.model_fields.values()):
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                nested[i] = kind
        found = _SPECS[model] = (tuple(model.model_fields), nested)
    return found


class Rows(MutableMapping[str, Any]):
    """id → model over plain rows (see the module's docstring). ``model`` is the pydantic class."""

    __slots__ = ("at_field", "built", "fields", "model", "pos", "rows", "sets")

    def __init__(self, model: type[BaseModel], keys: list[str], rows: list[tuple[Any, ...] | None],
                 sets: list[frozenset[str]]) -> None:
        self.model = model
        self.fields = _spec(model)[0]
        self.at_field = {name: i for i, name in enumerate(self.fields)}  # a field's place in a row
        self.pos: dict[str, int] = {key: i for i, key in enumerate(keys)}
        self.rows = rows
        self.sets = [set(s) for s in sets]
        self.built: dict[str, Any] = {}

    # ---------------------------------------------------------------- from models, to pickle

    @classmethod
    def encode(cls, model: type[BaseModel], items: Any, sets: list[set[str]] | None = None) -> tuple[Any, ...]:
        """The pickled form of ``items`` (pairs id → model, or ``_Raw`` rows whose set indexes are
        into ``sets``): model, keys, rows, field sets."""
        known: dict[frozenset[str], int] = {frozenset(s): i for i, s in enumerate(sets or [])}
        strings: dict[str, str] = {}  # equal strings as one object: pickled once, unpickled once
        keys: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for key, value in items:
            keys.append(strings.setdefault(key, key))
            rows.append(_row(value, model, known, strings))
        return model, keys, rows, list(known)

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, self.encode(self.model, self._pairs(), self.sets)

    def _pairs(self) -> Iterator[tuple[str, Any]]:
        """(id, model or row) in order: rows stay rows, built models are encoded afresh (they may
        have been changed)."""
        for key in self.pos:
            yield key, self.built[key] if key in self.built else _Raw(self.rows[self.pos[key]])

    # ---------------------------------------------------------------- reading

    def __getitem__(self, key: str) -> Any:
        found = self.built.get(key)
        if found is not None:
            return found
        i = self.pos[key]
        row = self.rows[i]
        if row is None:  # built meanwhile (another thread read it between the two lookups)
            return self.built[key]
        value = self.built[key] = self._make(self.model, row)
        self.rows[i] = None  # the model holds the values now
        return value

    def _make(self, model: type[BaseModel], row: tuple[Any, ...]) -> Any:
        fields, nested = _SPECS.get(model) or _spec(model)
        data = dict(zip(fields, row))  # noqa: B905 (the row's last item is its set's index)
        for i, kind in nested.items():
            inner = row[i]
            if inner is not None:
                data[fields[i]] = self._make(kind, inner)
        obj = _new(model)
        _set(obj, "__dict__", data)
        _set(obj, "__pydantic_fields_set__", self.sets[row[-1]])
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    def at(self, positions: list[int], keys: list[str]) -> list[Any]:
        """The models at these positions (``keys``: the key at each position), each built on its first
        read and kept, as ``self[keys[i]]`` would, for a selection of thousands: one call, not one each."""
        built, rows, pos, make, model = self.built, self.rows, self.pos, self._make, self.model
        out: list[Any] = []
        for i in positions:
            key = keys[i]
            value = built.get(key)
            if value is None:
                n = pos[key]
                row = rows[n]
                if row is None:
                    value = built[key]
                else:
                    value = built[key] = make(model, row)
                    rows[n] = None
            out.append(value)
        return out

    def field(self, key: str, name: str, default: Any = None) -> Any:
        """One field of one entry, without building its model; ``default`` when there is no such entry."""
        i = self.pos.get(key)
        if i is None:
            return default
        row = self.rows[i]
        if row is not None:
            return row[self.at_field[name]]
        return getattr(self.built[key], name)

    def column(self, name: str) -> list[Any]:
        """One field's values for every entry, in order, without building a model."""
        i = self.fields.index(name)
        if not self.built:
            return [row[i] for row in self.rows]  # type: ignore[index]
        return [getattr(self.built[key], name) if row is None else row[i]
                for key, row in zip(self.pos, self.rows, strict=True)]

    def __contains__(self, key: object) -> bool:
        return key in self.pos

    def __iter__(self) -> Iterator[str]:
        return iter(self.pos)

    def __len__(self) -> int:
        return len(self.pos)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rows | dict):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rows({self.model.__name__}, {len(self)} entries, {len(self.built)} built)"

    # ---------------------------------------------------------------- changing (tests, reloads)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.pos:
            self.pos[key] = len(self.rows)
            self.rows.append(None)
        self.built[key] = value
        self.rows[self.pos[key]] = None

    def __delitem__(self, key: str) -> None:
        i = self.pos.pop(key)
        self.built.pop(key, None)
        del self.rows[i]
        self.pos = {k: n - (n > i) for k, n in self.pos.items()}


class _Raw:
    """A row not built into a model yet, passed through ``encode`` as it is."""

    __slots__ = ("row",)

    def __init__(self, row: tuple[Any, ...] | None) -> None:
        self.row = row


def _row(value: Any, model: type[BaseModel], sets: dict[frozenset[str], int],
         strings: dict[str, str]) -> tuple[Any, ...]:
    """A model's row. Its strings, and those in its lists, are replaced by equal ones seen before
    (``strings``): 100,000 people name a few roles, 20,000 units and 500 channels, and pickle writes
    (and reads back) a shared string once. Lists stay one per row: a model may change its own."""
    if isinstance(value, _Raw):
        assert value.row is not None
        return value.row
    fields, nested = _spec(model)
    data = value.__dict__
    values = [_shared(data[name], strings) for name in fields]
    for i, kind in nested.items():
        if values[i] is not None:
            values[i] = _row(values[i], kind, sets, strings)
    given = frozenset(value.__pydantic_fields_set__)
    index = sets.setdefault(given, len(sets))
    return (*values, index)


def _shared(value: Any, strings: dict[str, str]) -> Any:
    kind = type(value)
    if kind is str:
        return strings.setdefault(value, value)
    if kind is list:
        return [strings.setdefault(item, item) if type(item) is str else item for item in value]
    return value


def _rebuild(model: type[BaseModel], keys: list[str], rows: list[tuple[Any, ...] | None],
             sets: list[frozenset[str]]) -> Rows:
    return Rows(model, keys, rows, sets)

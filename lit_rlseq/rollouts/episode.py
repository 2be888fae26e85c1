"""One recorded episode: named per-step fields plus the tags that say where it came from.

An episode of ``L`` transitions has two kinds of fields, told apart by their leading dimension:

* per-transition fields have ``L`` rows (actions, rewards, logits, actions in words, ...);
* per-state fields have ``L + 1`` rows (observations including the final one, recurrent hidden states).

Field types (``FieldSpec.dtype``):

* numeric: a numpy array of any bool/int/uint/float dtype and trailing shape (uint8 frames, float hidden
  states, int64 token ids, bool masks); the spec's dtype is the numpy dtype string (``"|u1"``, ``"<f4"``);
* text, ``"str"``: ``list[str]``, one string per row (the observation text, the action in words);
* text lists, ``"str_list"``: ``list[list[str]]``, a list of any number of strings per row, each of any length
  (the valid actions at each step, the inventory items).

Strings may be empty and hold any unicode; they are stored as UTF-8 and read back exactly. A field named with
"/" (``"obs/name"``) is stored nested in HDF5 groups.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields as dataclass_fields
from typing import Any, Literal

import numpy as np

from lit_rlseq.errors import DataError

FieldValue = np.ndarray | list[str] | list[list[str]]
FieldKind = Literal["transition", "state"]

TEXT = "str"  # FieldSpec.dtype of a text field: one string per row
TEXT_LIST = "str_list"  # FieldSpec.dtype of a text-list field: a list of strings per row

NUMERIC_DTYPE_KINDS = "biuf"  # bool, signed int, unsigned int, float


@dataclass
class EpisodeTags:
    """Where an episode came from; every store query filters on these."""

    run_id: str
    epoch: int = 0
    partition: str = ""  # e.g. TTM's "teacher" / "student_train" / "student_test"
    env: str = ""
    split: str = ""  # e.g. "train" / "dev" / "test" env split
    agent: str = ""
    seed: int = -1
    metadata: dict[str, Any] = field(default_factory=dict)  # anything JSON-serialisable (numpy values too)

    def __post_init__(self) -> None:
        self.epoch, self.seed = int(self.epoch), int(self.seed)  # numpy integers compare and serialise as ints

    def to_json(self) -> str:
        try:
            return json.dumps(asdict(self), sort_keys=True, default=_numpy_to_json)
        except TypeError as e:
            raise DataError(f"episode tags of run {self.run_id!r} are not JSON-serialisable: {e}") from e

    @classmethod
    def from_json(cls, text: str) -> EpisodeTags:
        return cls(**json.loads(text))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclass_fields(cls)]


def _numpy_to_json(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serialisable")


@dataclass(frozen=True)
class FieldSpec:
    """What one field looks like in every episode of a shard: its kind, dtype and trailing shape."""

    kind: FieldKind
    dtype: str  # numpy dtype string such as "<f4"; TEXT ("str") or TEXT_LIST ("str_list") for text fields
    shape: tuple[int, ...]  # trailing shape (after the leading row dimension); () for text

    @property
    def is_text(self) -> bool:
        """Text of either kind: one string per row, or a list of strings per row."""
        return self.dtype in (TEXT, TEXT_LIST)

    @property
    def is_text_list(self) -> bool:
        return self.dtype == TEXT_LIST

    def describe(self) -> str:
        rows = "L" if self.kind == "transition" else "L+1"
        if self.is_text_list:
            return f"{rows} lists of strings"
        if self.is_text:
            return f"{rows} strings"
        return f"{np.dtype(self.dtype).name}[{', '.join([rows, *map(str, self.shape)])}]"


Schema = dict[str, FieldSpec]


def schema_to_json(schema: Schema) -> str:
    return json.dumps(
        {name: {"kind": s.kind, "dtype": s.dtype, "shape": list(s.shape)} for name, s in sorted(schema.items())}
    )


def schema_from_json(text: str) -> Schema:
    return {
        name: FieldSpec(kind=s["kind"], dtype=s["dtype"], shape=tuple(s["shape"]))
        for name, s in json.loads(text).items()
    }


@dataclass
class Episode:
    """Named per-step fields of one episode plus its tags, checked for consistent lengths on construction.

    ``length`` (the number of transitions ``L``) is inferred as the smallest leading dimension among the
    fields, so an episode with at least one per-transition field needs no explicit length. Pass it when every
    field is per-state (e.g. only observations), otherwise those fields would be taken as per-transition.
    """

    fields: dict[str, FieldValue]
    tags: EpisodeTags
    length: int | None = None

    def __post_init__(self) -> None:
        if not self.fields:
            raise DataError(f"episode of run {self.tags.run_id!r} has no fields")
        self.fields = {name: _normalise_field(name, value) for name, value in self.fields.items()}
        _check_field_names(list(self.fields))
        rows = {name: len(value) for name, value in self.fields.items()}
        if self.length is None:
            self.length = min(rows.values())
        if self.length < 1:
            raise DataError(f"episode of run {self.tags.run_id!r} has no transitions (length {self.length})")
        for name, n in rows.items():
            if n not in (self.length, self.length + 1):
                raise DataError(
                    f"episode field {name!r} has {n} rows but the episode has {self.length} transitions: a field "
                    f"needs {self.length} rows (per transition) or {self.length + 1} rows (per state)"
                )

    def kind(self, name: str) -> FieldKind:
        return "transition" if len(self.fields[name]) == self.length else "state"

    def schema(self) -> Schema:
        """The field specs a store checks every appended episode against."""
        specs = {}
        for name, value in self.fields.items():
            if isinstance(value, list):
                is_list = bool(value) and isinstance(value[0], list)
                specs[name] = FieldSpec(self.kind(name), TEXT_LIST if is_list else TEXT, ())
            else:
                specs[name] = FieldSpec(self.kind(name), value.dtype.str, tuple(value.shape[1:]))
        return specs


def _normalise_field(name: str, value: Any) -> FieldValue:
    """Accept numeric arrays, lists of str and lists of lists of str; turn numpy string arrays into lists;
    reject the rest."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        if value.ndim != 1:
            raise DataError(f"episode field {name!r}: a text field must be one string per row, got shape {value.shape}")
        return value.tolist()
    if isinstance(value, list | tuple) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, list | tuple) for v in value):
            rows = [list(v) for v in value]
            is_str = [[isinstance(s, str) for s in row] for row in rows]
            if all(map(all, is_str)):  # rows of strings (some maybe empty): a text-list field
                return rows
            if any(map(any, is_str)):  # strings mixed with something else
                row = next(i for i, flags in enumerate(is_str) if not all(flags))
                bad = next(s for s in rows[row] if not isinstance(s, str))
                raise DataError(
                    f"episode field {name!r}: row {row} of a text-list field holds {type(bad).__name__} {bad!r}; "
                    "every element of every row must be a str"
                )
            # No strings at all: nested lists of numbers, handled as a numeric array below.
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        array = None
    if array is None or array.dtype.kind not in NUMERIC_DTYPE_KINDS or array.ndim == 0:
        described = (
            f"dtype {array.dtype} and shape {array.shape}" if array is not None else f"ragged value {_preview(value)}"
        )
        raise DataError(
            f"episode field {name!r} has {described}: a field must be a numeric (bool/int/uint/float) array "
            "with one row per step, a list of str with one string per step, or a list of lists of str with a "
            "list of strings per step"
        )
    if not array.dtype.isnative:  # e.g. big-endian data from an HDF5 file: one byte order in every store
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_field_names(names: list[str]) -> None:
    for name in names:
        if not name or name.startswith("/") or name.endswith("/") or "//" in name:
            raise DataError(f"episode field name {name!r} is invalid: use non-empty names like 'obs' or 'obs/image'")
    for name in names:
        for other in names:
            if other.startswith(name + "/"):
                raise DataError(
                    f"episode fields {name!r} and {other!r} clash: HDF5 cannot hold a field and a group of the "
                    "same name; rename one of them"
                )

"""Read-only sequences of texts made one Python string at a time from a column already held (an
Arrow string array, a pandas Series), so no list of all the strings is ever built."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, cast, overload

from audit_agent.features.text import normalize


class TextView(Sequence[str]):
    """`len(source)` texts; a subclass says how one text, a slice and a pass over all are made."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return self._slice(i)
        return self._item(int(i))

    @abstractmethod
    def _item(self, i: int) -> str: ...

    @abstractmethod
    def _slice(self, s: slice) -> list[str]: ...

    @abstractmethod
    def __iter__(self) -> Iterator[str]: ...


class ArrowTexts(TextView):
    """Texts of an Arrow string array as Python strings, one at a time."""

    def _item(self, i: int) -> str:
        return cast(str, self._source[i].as_py())

    def _slice(self, s: slice) -> list[str]:
        return cast(list[str], self._source[s].to_pylist())

    def __iter__(self) -> Iterator[str]:
        return iter(self._source.to_pylist())


class LazyNormalized(TextView):
    """`normalize(text)` of each text of a pandas Series, computed when asked (the driver keeps no copy)."""

    def _item(self, i: int) -> str:
        return normalize(str(self._source.iat[i]))

    def _slice(self, s: slice) -> list[str]:
        return [normalize(str(t)) for t in self._source.iloc[s]]

    def __iter__(self) -> Iterator[str]:
        return (normalize(str(t)) for t in self._source)

"""Named registries: register a criterion or a lottery method once, use its name everywhere.

A :class:`Registry` maps names to factories (usually classes). ``trim``, ``LotteryTrimmer``,
``LotteryConfig`` and the experiment runner look names up here, so a user's own entry works
exactly like a built-in one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, Callable[..., T]], Generic[T]):
    """A read-only mapping of names to factories, with :meth:`register` to add entries."""

    def __init__(self, kind: str, base: type) -> None:
        self.kind = kind  # what the entries are, for messages ("criterion", "method")
        self.base = base  # the class every built entry must be an instance of
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T] | None = None) -> Any:
        """Add ``factory`` under ``name``; without ``factory``, a decorator that does it.

        ``factory`` is a subclass of the registry's base class or a callable that returns an
        instance of it. Names are unique: registering a taken name raises ``ValueError``.
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"a {self.kind} name is a non-empty string without '/': {name!r}")

        def add(entry: Callable[..., T]) -> Callable[..., T]:
            if not callable(entry):
                raise TypeError(f"{self.kind} {name!r} must be a class or a factory function")
            wrong_class = isinstance(entry, type) and not issubclass(entry, self.base)
            if wrong_class:
                raise TypeError(
                    f"{self.kind} {name!r} must subclass {self.base.__name__}, got {entry!r}"
                )
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered already")
            self._entries[name] = entry
            return entry

        return add if factory is None else add(factory)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. at the end of a test)."""
        self._entries.pop(name)

    def lookup(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; ``ValueError`` naming the known ones if none."""
        if name not in self._entries:
            raise ValueError(
                f"unknown {self.kind} {name!r}: use one of {sorted(self._entries)} or register "
                "your own"
            )
        return self._entries[name]

    def build(self, name: str, **options: Any) -> T:
        """A new instance of the entry ``name``, built with ``options``."""
        obj = self.lookup(name)(**options)
        if not isinstance(obj, self.base):
            raise TypeError(
                f"{self.kind} {name!r} built a {type(obj).__name__}, not a {self.base.__name__}"
            )
        return obj

    def __getitem__(self, name: str) -> Callable[..., T]:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {sorted(self._entries)})"

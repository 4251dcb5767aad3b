"""Registries: register a criterion, a lottery method or a layer adapter once, use it everywhere.

A :class:`Registry` maps keys to factories (usually classes): names for criteria and methods,
layer types for adapters. ``trim``, ``LotteryTrimmer``, ``LotteryConfig``, the experiment runner
and the graph engine look entries up here, so a user's own entry works like a built-in one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

K = TypeVar("K")  # a name, or a layer type
T = TypeVar("T")


class Registry(Mapping[K, Callable[..., T]], Generic[K, T]):
    """A read-only mapping of keys to factories, with :meth:`register` to add entries.

    Keys are names (``key_type=None``) or subclasses of ``key_type`` (layer types). A key is
    registered once: taking it again needs ``replace=True``, so no entry is lost by accident.
    """

    def __init__(self, kind: str, base: type, key_type: type | None = None) -> None:
        self.kind = kind  # what the entries are, for messages ("criterion", "method")
        self.base = base  # the class every built entry must be an instance of
        self.key_type = key_type  # None: keys are names; a class: keys are its subclasses
        self._entries: dict[K, Callable[..., T]] = {}

    def register(
        self, key: K, factory: Callable[..., T] | None = None, *, replace: bool = False
    ) -> Any:
        """Add ``factory`` under ``key``; without ``factory``, a decorator that does it.

        ``factory`` is a subclass of the registry's base class or a callable that returns an
        instance of it. Keys are unique: registering a taken key raises ``ValueError`` and
        changes nothing, unless ``replace=True`` swaps the entry.
        """
        self._check_key(key)

        def add(entry: Callable[..., T]) -> Callable[..., T]:
            what = self.describe(key)
            if not callable(entry):
                hint = ": pass the class, not an instance" if isinstance(entry, self.base) else ""
                raise TypeError(
                    f"{what} must be a subclass of {self.base.__name__} or a factory function, "
                    f"got {entry!r}{hint}"
                )
            wrong_class = isinstance(entry, type) and not issubclass(entry, self.base)
            if wrong_class:
                raise TypeError(f"{what} must subclass {self.base.__name__}, got {entry!r}")
            if key in self._entries and not replace:
                raise ValueError(
                    f"{what} is registered already ({self._entries[key]!r}): pass "
                    "replace=True to replace it"
                )
            self._entries[key] = entry
            return entry

        return add if factory is None else add(factory)

    def unregister(self, key: K) -> None:
        """Remove ``key`` (e.g. at the end of a test)."""
        self._entries.pop(key)

    def lookup(self, key: K) -> Callable[..., T]:
        """The factory registered under ``key``; ``ValueError`` naming the known ones if none."""
        if key not in self._entries:
            raise ValueError(
                f"unknown {self.describe(key)}: use one of {self._known()} or register your own"
            )
        return self._entries[key]

    def build(self, key: K, **options: Any) -> T:
        """A new instance of the entry under ``key``, built with ``options``."""
        obj = self.lookup(key)(**options)
        if not isinstance(obj, self.base):
            raise TypeError(
                f"{self.describe(key)} built a {type(obj).__name__}, not a {self.base.__name__}"
            )
        return obj

    def describe(self, key: Any) -> str:
        """How messages name an entry: ``criterion 'magnitude'``, ``adapter for Linear``."""
        if isinstance(key, type):
            return f"{self.kind} for {key.__qualname__}"
        return f"{self.kind} {key!r}"

    def _check_key(self, key: Any) -> None:
        if self.key_type is None:
            if not isinstance(key, str) or not key or "/" in key:
                raise ValueError(f"a {self.kind} name is a non-empty string without '/': {key!r}")
        elif not (isinstance(key, type) and issubclass(key, self.key_type)):
            raise TypeError(
                f"{self.kind} keys are {self.key_type.__name__} subclasses, got {key!r}"
            )

    def _known(self) -> list[str]:
        return sorted(k.__qualname__ if isinstance(k, type) else str(k) for k in self._entries)

    def __getitem__(self, key: K) -> Callable[..., T]:
        return self._entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self._entries  # a dict lookup: the engine asks once per class of every layer

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self._known()})"

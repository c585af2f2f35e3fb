"""Keyring backends for tests, written against keyring's own backend interface (third-party API):
one that keeps passwords like an OS keyring would, one whose keyring is locked, and one that writes
plain text like keyrings.alt's file backend does."""

from __future__ import annotations

from jaraco.classes.properties import classproperty
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError


class _TestOnly(KeyringBackend):
    """keyring auto-registers every backend class: these must never be picked as the machine's default."""

    @classproperty
    def priority(cls) -> float:  # noqa: N805 (keyring's classproperty)
        raise RuntimeError("a test backend is only used when a test passes it explicitly")


class MemoryKeyring(_TestOnly):

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")


class LockedKeyring(_TestOnly):

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the keyring is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the keyring is locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("the keyring is locked")


class PlaintextKeyring(MemoryKeyring):
    """Named like keyrings.alt.file.PlaintextKeyring, which stores tokens readable on disk."""

"""Where remote servers' tokens are kept: `TokenStore`, over the OS keyring, never in settings or files.

It uses the `keyring` package's backend (Secret Service, macOS Keychain, Windows Credential Locker).
When there is no secure backend — keyring's `fail` or `null` backends, or a plain-text file backend
such as keyrings.alt's — or when the keyring fails at run time (locked, D-Bus gone), the token is kept
in this process's memory only, until the app quits, and `storage_notice()` gives the sentence to tell
the user so. The local server's token is not handled here: it is re-read from its server.json.
The default backend is looked up on first use, not when the store is made: importing keyring and
detecting its backends (D-Bus, Secret Service) costs about 100 ms, and most starts never need a token.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

__all__ = ["TokenStore", "TokenLocation", "SERVICE_NAME", "is_secure_backend"]

log = logging.getLogger(__name__)

SERVICE_NAME = "training-studio"

# Backends that keep nothing, refuse everything, or write secrets to a readable file.
_INSECURE_MODULES = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt.file")
_INSECURE_CLASSES = ("PlaintextKeyring", "EncryptedKeyring", "UncryptedFileKeyring")


class TokenLocation(str, enum.Enum):
    KEYRING = "keyring"
    MEMORY = "memory"  # kept until the app quits, then forgotten


def is_secure_backend(backend: Any) -> bool:
    """True when `backend` is a real OS keyring (a chainer counts if any of its backends is one)."""
    inner = getattr(backend, "backends", None)
    if type(backend).__name__ == "ChainerBackend" and isinstance(inner, (list, tuple)):
        return any(is_secure_backend(b) for b in inner)
    module = type(backend).__module__
    if any(module == name or module.startswith(name + ".") for name in _INSECURE_MODULES):
        return False
    return type(backend).__name__ not in _INSECURE_CLASSES


class TokenStore:
    """Tokens by server URL; see the module docstring. `backend` defaults to keyring's chosen one."""

    def __init__(self, backend: Any | None = None, *, service: str = SERVICE_NAME) -> None:
        self.service = service
        self._memory: dict[str, str] = {}
        self._failure: str | None = None
        self._backend = backend
        self._secure = backend is not None and is_secure_backend(backend)
        self._resolved = backend is not None  # False: keyring's default backend, looked up on first use

    @property
    def backend(self) -> Any | None:
        if not self._resolved:
            self._resolved = True
            try:
                import keyring

                self._backend = keyring.get_keyring()
            except Exception as error:  # no keyring package or a broken configuration
                log.warning("no keyring available: %s", error)
                self._backend = None
            self._secure = self._backend is not None and is_secure_backend(self._backend)
        return self._backend

    @property
    def secure(self) -> bool:
        """True when tokens go to a real OS keyring (see `is_secure_backend`)."""
        self.backend  # noqa: B018 (resolves the default backend on first use)
        return self._secure

    @property
    def backend_name(self) -> str:
        if self.backend is None:
            return "none"
        return getattr(self.backend, "name", type(self.backend).__name__)

    def storage_notice(self) -> str:
        """A sentence for the user saying where tokens go; empty when they go to the OS keyring."""
        if self.secure and self._failure is None:
            return ""
        why = self._failure or "No secure keyring (such as GNOME Keyring or KWallet) is available"
        return (f"{why}: tokens are kept in memory only and forgotten when Training Studio quits. "
                f"You will have to enter them again next time.")

    def get(self, url: str) -> str | None:
        if url in self._memory:
            return self._memory[url]
        if not self.secure:
            return None
        try:
            return self.backend.get_password(self.service, url)
        except Exception as error:
            self._note_failure("reading", error)
            return None

    def set(self, url: str, token: str) -> TokenLocation:
        """Keep `token` for `url`; says where it went (the keyring, or memory only)."""
        if not token:
            self.delete(url)
            return TokenLocation.KEYRING if self.secure else TokenLocation.MEMORY
        if self.secure:
            try:
                self.backend.set_password(self.service, url, token)
            except Exception as error:
                self._note_failure("saving", error)
            else:
                self._memory.pop(url, None)
                return TokenLocation.KEYRING
        self._memory[url] = token
        return TokenLocation.MEMORY

    def delete(self, url: str) -> None:
        self._memory.pop(url, None)
        if not self.secure:
            return
        try:
            self.backend.delete_password(self.service, url)
        except Exception as error:
            # PasswordDeleteError when there was none: nothing to do.
            if type(error).__name__ != "PasswordDeleteError":
                self._note_failure("deleting", error)

    def location_of(self, url: str) -> TokenLocation | None:
        if url in self._memory:
            return TokenLocation.MEMORY
        return TokenLocation.KEYRING if self.get(url) is not None else None

    def _note_failure(self, doing: str, error: BaseException) -> None:
        log.warning("keyring failed while %s a token: %s: %s", doing, type(error).__name__, error)
        self._failure = f"The system keyring failed while {doing} a token ({type(error).__name__})"

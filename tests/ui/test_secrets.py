"""TokenStore: tokens go to a secure keyring, or stay in memory only (and the user is told)."""

from __future__ import annotations

import keyring
from keyring.backends import fail, null

from training_studio.ui.secrets import SERVICE_NAME, TokenLocation, TokenStore, is_secure_backend
from tests.ui.keyring_backends import LockedKeyring, MemoryKeyring, PlaintextKeyring

URL = "https://gpu.example:8765"


def test_a_secure_keyring_keeps_tokens_across_app_runs():
    backend = MemoryKeyring()
    store = TokenStore(backend)
    assert store.secure and store.storage_notice() == ""
    assert store.set(URL, "s3cret") is TokenLocation.KEYRING
    assert backend.passwords == {(SERVICE_NAME, URL): "s3cret"}
    again = TokenStore(backend)  # the next run of the app
    assert again.get(URL) == "s3cret"
    assert again.location_of(URL) is TokenLocation.KEYRING
    again.delete(URL)
    assert again.get(URL) is None and backend.passwords == {}
    again.delete(URL)  # deleting what is not there is fine
    assert again.storage_notice() == ""


def test_without_a_secure_backend_tokens_live_in_memory_only_and_the_user_is_told():
    for backend in (fail.Keyring(), null.Keyring(), PlaintextKeyring()):
        store = TokenStore(backend)
        assert not store.secure, backend
        notice = store.storage_notice()
        assert "memory only" in notice and "forgotten when Training Studio quits" in notice
        assert store.set(URL, "s3cret") is TokenLocation.MEMORY
        assert store.get(URL) == "s3cret"
        assert store.location_of(URL) is TokenLocation.MEMORY
        assert TokenStore(backend).get(URL) is None  # the next run has nothing
    plaintext = PlaintextKeyring()
    TokenStore(plaintext).set(URL, "s3cret")
    assert plaintext.passwords == {}  # never written to the insecure backend


def test_this_machines_default_backend_is_classified_and_usable():
    store = TokenStore()
    assert store.secure == is_secure_backend(keyring.get_keyring())
    location = store.set(URL, "s3cret")
    try:
        assert store.get(URL) == "s3cret"
        if location is TokenLocation.KEYRING:
            assert store.secure and store.storage_notice() == ""
        else:
            # No secure backend here, or a secure one that refused the write (a locked Secret Service on a
            # machine without a desktop session): the token is kept in memory only, and the user is told.
            assert location is TokenLocation.MEMORY
            assert "memory only" in store.storage_notice()
    finally:
        store.delete(URL)


def test_a_locked_keyring_falls_back_to_memory_and_says_why():
    store = TokenStore(LockedKeyring())
    assert store.secure
    assert store.set(URL, "s3cret") is TokenLocation.MEMORY
    assert store.get(URL) == "s3cret"
    notice = store.storage_notice()
    assert "keyring failed while saving a token (KeyringLocked)" in notice and "memory only" in notice
    assert TokenStore(LockedKeyring()).get("https://other.example") is None


def test_an_empty_token_removes_the_stored_one():
    backend = MemoryKeyring()
    store = TokenStore(backend)
    store.set(URL, "s3cret")
    store.set(URL, "")
    assert store.get(URL) is None and backend.passwords == {}


def test_the_keyring_is_only_loaded_when_a_token_is_needed():
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from training_studio.ui.secrets import TokenStore\n"
        "store = TokenStore()\n"
        "print('keyring' in sys.modules)\n"
        "store.get('https://gpu.example:8765')\n"
        "print('keyring' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]

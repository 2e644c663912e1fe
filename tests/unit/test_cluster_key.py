"""The secret key gateways share, and the rows by which they find each other (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cove.gateway import SecretKeyError, check_cluster_key, load_key
from cove.store import Store, announce_gateway, forget_gateway, live_gateway_urls


def test_the_key_comes_from_the_variable_then_the_file_it_names_then_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COVE_SECRET_KEY", raising=False)
    monkeypatch.delenv("COVE_SECRET_KEY_FILE", raising=False)
    own = load_key(tmp_path)
    assert (tmp_path / "secret-key").read_bytes().strip() == own
    mounted = tmp_path / "mounted-key"
    mounted.write_bytes(Fernet.generate_key() + b"\n")
    monkeypatch.setenv("COVE_SECRET_KEY_FILE", str(mounted))
    assert load_key(tmp_path) == mounted.read_bytes().strip()
    monkeypatch.setenv("COVE_SECRET_KEY", "from-the-variable")
    assert load_key(tmp_path) == b"from-the-variable"
    monkeypatch.delenv("COVE_SECRET_KEY")
    monkeypatch.setenv("COVE_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SecretKeyError, match=r"COVE_SECRET_KEY_FILE=.*cannot be read"):
        load_key(tmp_path)


def test_gateways_with_another_key_are_refused_and_peers_are_listed(store_url: str) -> None:
    async def body() -> None:
        store = Store(store_url)
        await store.migrate()
        try:
            key = Fernet.generate_key()
            await check_cluster_key(store, key)
            await check_cluster_key(store, key)  # the same key again: fine
            with pytest.raises(SecretKeyError, match="differs"):
                await check_cluster_key(store, Fernet.generate_key())

            await announce_gateway(store, "gw-a", "http://a:1")
            await announce_gateway(store, "gw-b", "http://b:1")
            await announce_gateway(store, "gw-b", "http://b:2")  # renewed, moved
            assert await live_gateway_urls(store, 30, but="gw-a") == ["http://b:2"]
            await forget_gateway(store, "gw-b")
            assert await live_gateway_urls(store, 30, but="gw-a") == []
        finally:
            await store.close()

    asyncio.run(body())

"""The routes gateways fetch files from each other on: closed to every token, and to paths out of the home.

A peer route answers from the gateway's own home with files by hash, so a
caller who could reach it with a user's (or the admin's) token, or bend a hash
into a path, could read what no API gives out (the secret key sits in the home).
"""

from __future__ import annotations

import hashlib

import httpx
import pytest
from conftest import Server

from cove._wire import peers
from cove.gateway._secretbox import load_key, peer_token

HEX = hashlib.sha256(b"nothing stored under this").hexdigest()
ROUTES = [
    ("GET", peers.code_route(HEX)),
    ("GET", peers.blob_route("default", HEX)),
    ("GET", peers.export_route(HEX, "env")),
    ("POST", peers.DEMAND_ROUTE),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_user_or_admin_token_and_no_guessed_peer_token_passes(server: Server, method: str, path: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as anonymous, server.http() as admin:
        for client, extra in ((anonymous, {}), (admin, {}), (admin, {peers.TOKEN_HEADER: "x" * 43})):
            reply = client.request(method, path, headers=extra, json={} if method == "POST" else None)
            assert reply.status_code == 403, (extra, reply.text)
            assert "only the gateways of this cluster" in reply.text


def test_a_peer_cannot_bend_a_hash_into_a_path(server: Server) -> None:
    token = {peers.TOKEN_HEADER: peer_token(load_key(server.home))}
    secret = (server.home / "secret-key").read_bytes()
    with httpx.Client(base_url=server.url, timeout=30, headers=token) as peer:
        assert peer.get(peers.code_route(HEX)).status_code == 404  # the token works: a missing file is a 404
        for path in (
            peers.code_route("..%2f..%2fsecret-key"),
            peers.code_route(HEX.upper()),
            peers.blob_route("..", HEX),
            peers.blob_route("default", "..%2f..%2f..%2fsecret-key"),
            peers.export_route("..%2f..%2fsecret-key", "env"),
            peers.export_route(HEX, "..%2f..%2fsecret-key"),
        ):
            reply = peer.get(path)
            assert reply.status_code in (400, 404, 422), (path, reply.status_code)
            assert secret not in reply.content

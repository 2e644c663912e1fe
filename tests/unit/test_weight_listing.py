"""What the worker accepts from a reservoir's model info before it becomes a path in the weight cache."""

from __future__ import annotations

from typing import Any

import pytest

from cove._wire.models import ModelRef
from cove.worker._weights import WeightsError, _listing

REF = ModelRef("acme/tiny")
SHA = "a" * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _info(commit: str = COMMIT, path: str = "config.json", sha: str = SHA) -> dict[str, Any]:
    return {"sha": commit, "siblings": [{"rfilename": path, "sha256": sha, "size": 3}]}


def test_a_well_formed_listing_is_taken_as_it_is() -> None:
    assert _listing(REF, _info(path="tokenizer/vocab.txt")) == (COMMIT, [("tokenizer/vocab.txt", SHA, 3)])


@pytest.mark.parametrize("commit", ["", "../../etc", "main", COMMIT + "/x", COMMIT.upper()])
def test_a_commit_that_is_not_an_id_is_refused(commit: str) -> None:
    with pytest.raises(WeightsError, match="invalid commit id"):
        _listing(REF, _info(commit=commit))


@pytest.mark.parametrize("path", ["../escape", "a/../../b", "/etc/passwd", "a//b", "./x", ""])
def test_a_path_leaving_the_snapshot_is_refused(path: str) -> None:
    with pytest.raises(WeightsError, match="unsafe file"):
        _listing(REF, _info(path=path))


def test_a_content_hash_that_is_not_sha256_is_refused() -> None:
    with pytest.raises(WeightsError, match="unsafe file"):
        _listing(REF, _info(sha="../" + "a" * 61))

"""Reading an upstream simple index (PEP 691 JSON, or PEP 503 HTML when that is all it speaks).

Used by ``sync`` and by the proxy cache. Only what a file link states is
kept: URL, sha256, requires-python, yanked and the PEP 700 upload time, which
the reservoir keeps instead of the time it fetched the file.
"""

from __future__ import annotations

import dataclasses
import html.parser
from urllib.parse import urldefrag, urljoin

import httpx

from .errors import ReservoirError
from .names import normalize

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


@dataclasses.dataclass(frozen=True)
class UpstreamFile:
    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: bool
    yank_reason: str | None
    upload_time: str | None
    size: int | None


def project_url(index_url: str, project: str) -> str:
    return urljoin(index_url.rstrip("/") + "/", normalize(project) + "/")


def fetch_project(client: httpx.Client, index_url: str, project: str) -> list[UpstreamFile] | None:
    """The files upstream lists for ``project``; None when upstream does not know it (404)."""
    url = project_url(index_url, project)
    try:
        response = client.get(url, headers={"Accept": ACCEPT}, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ReservoirError(f"upstream {url} unreachable: {exc}", status=502) from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ReservoirError(f"upstream {url} answered {response.status_code}", status=502)
    return parse_page(str(response.url), response.headers.get("content-type", ""), response.content)


def parse_page(page_url: str, content_type: str, body: bytes) -> list[UpstreamFile]:
    if content_type.split(";")[0].strip() == "application/vnd.pypi.simple.v1+json":
        return _parse_json(page_url, body)
    return _parse_html(page_url, body.decode("utf-8", "replace"))


def _parse_json(page_url: str, body: bytes) -> list[UpstreamFile]:
    import json

    try:
        doc = json.loads(body)
        files = []
        for entry in doc["files"]:
            yanked = entry.get("yanked", False)
            files.append(
                UpstreamFile(
                    filename=str(entry["filename"]),
                    url=urljoin(page_url, str(entry["url"])),
                    sha256=(entry.get("hashes") or {}).get("sha256"),
                    requires_python=entry.get("requires-python") or None,
                    yanked=bool(yanked),
                    yank_reason=yanked if isinstance(yanked, str) and yanked else None,
                    upload_time=entry.get("upload-time") or None,
                    size=entry.get("size"),
                )
            )
        return files
    except (ValueError, KeyError, TypeError) as exc:
        raise ReservoirError(f"upstream page {page_url} is not valid PEP 691 JSON: {exc}", status=502) from None


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self._current: dict[str, str | None] | None = None
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base":
            self.base = dict(attrs).get("href")
        if tag == "a":
            self._current = dict(attrs)
            self._current["#text"] = ""

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current["#text"] = (self._current.get("#text") or "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.links.append(self._current)
            self._current = None


def _parse_html(page_url: str, text: str) -> list[UpstreamFile]:
    parser = _Links()
    parser.feed(text)
    base = urljoin(page_url, parser.base) if parser.base else page_url
    files = []
    for link in parser.links:
        href = link.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href))
        filename = url.rsplit("/", 1)[-1]
        sha256 = fragment[7:] if fragment.startswith("sha256=") else None
        yanked = "data-yanked" in link
        files.append(
            UpstreamFile(
                filename=_unquote(filename),
                url=url,
                sha256=sha256,
                requires_python=link.get("data-requires-python"),
                yanked=yanked,
                yank_reason=link.get("data-yanked") or None,
                upload_time=None,
                size=None,
            )
        )
    return files


def _unquote(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)

"""PEP 691 content negotiation for the simple index.

Clients name the formats they take in ``Accept`` with q-values; a missing
header means HTML (what old pip sends), nothing acceptable means 406.
Results are memoised per header value because clients send the same few
headers over and over and this runs on the hot path.
"""

from __future__ import annotations

JSON = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"

# Server preference breaks ties between equal q-values: JSON carries more (PEP 700 fields).
_PREFERENCE = (JSON, HTML_V1, HTML)
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
_cache: dict[bytes, str | None] = {}


def choose(accept: bytes | None) -> str | None:
    """The media type to answer with, or None when nothing the client accepts is available (406)."""
    if not accept:
        return HTML
    try:
        return _cache[accept]
    except KeyError:
        pass
    result = _choose(accept.decode("latin-1"))
    if len(_cache) < 1024:
        _cache[accept] = result
    return result


def _choose(header: str) -> str | None:
    scores: dict[str, tuple[float, int]] = {}
    for _index, item in enumerate(header.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                q = min(max(q, 0.0), 1.0)
        for candidate in _expand(media):
            # The most specific mention of a type wins; among equals, the first one.
            specificity = (
                2 if candidate == media or _ALIASES.get(media) == candidate else (1 if "*" not in media else 0)
            )
            previous = scores.get(candidate)
            if previous is None or specificity > previous[1]:
                scores[candidate] = (q, specificity)
    best: str | None = None
    best_q = 0.0
    for candidate in _PREFERENCE:
        if candidate in scores and scores[candidate][0] > best_q:
            best, best_q = candidate, scores[candidate][0]
    if best is None:
        return None
    # A wildcard alone should not switch an HTML-era client to JSON.
    if scores[best][1] == 0 and all(score[1] == 0 for score in scores.values()):
        return HTML if scores.get(HTML, (0.0, 0))[0] > 0 else best
    return best


def _expand(media: str) -> tuple[str, ...]:
    if media in _ALIASES:
        return (_ALIASES[media],)
    if media == "*/*":
        return _PREFERENCE
    if media == "application/*":
        return (JSON, HTML_V1)
    if media == "text/*":
        return (HTML,)
    if media in _PREFERENCE:
        return (media,)
    return ()

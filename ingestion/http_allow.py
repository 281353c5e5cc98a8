"""The hosts media may be fetched from over http(s): the user's ``--allow-host`` entries, each a host name
(matched case-insensitively, any port), ``host:port`` (that port only; ``[::1]:8080`` for IPv6) or
``*.example.com`` (its subdomains, not example.com itself; ``*.example.com:8443`` for one port).
An empty list allows nothing. A URL must be http or https and carry no ``user:password@``.

``AllowList.refusal`` judges a URL from its text alone (no lookup, no request): the planner asks it for
every catalog row.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from pinembed.errors import UsageError

DEFAULT_PORTS = {"http": 80, "https": 443}


class AllowList:
    """Parsed ``--allow-host`` entries; UsageError for an entry that is not a host."""

    def __init__(self, entries: Sequence[str]) -> None:
        if isinstance(entries, str):  # one host, not its letters
            entries = [entries]
        self.entries = tuple(entries)
        exact: set[tuple[str, int | None]] = set()
        wild: list[tuple[str, int | None]] = []
        for entry in self.entries:
            host, port = parse_entry(entry)
            if host.startswith("*."):
                wild.append((host[1:], port))
            else:
                exact.add((host, port))
        self._exact, self._wild = frozenset(exact), tuple(wild)

    def __repr__(self) -> str:
        return f"AllowList({list(self.entries)!r})"

    def matches(self, host: str, port: int) -> bool:
        """Whether ``host`` (lower case, no trailing dot) on ``port`` is allowed."""
        return (host, None) in self._exact or (host, port) in self._exact or any(
            host.endswith(suffix) and wild_port in (None, port) for suffix, wild_port in self._wild)

    def refusal(self, url: str) -> tuple[str, str] | None:
        """(why, hint) when ``url`` may not be fetched, else None."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except (ValueError, TypeError, AttributeError):
            return "not a valid URL", "check the media URL in the catalog"
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            return "not an http(s) URL", "media URLs over the web start with http:// or https://"
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            return ("the URL carries credentials (user:password@), which are never sent",
                    "serve the media without credentials in the URL (a signed URL keeps its token in the query)")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            return "the URL names no host", "check the media URL in the catalog"
        if self.matches(host, port if port is not None else DEFAULT_PORTS[scheme]):
            return None
        hint = f"to fetch from it, pass --allow-host {f'[{host}]' if ':' in host else host}"
        if not self.entries:
            return "no --allow-host was given: media is fetched only from hosts on the allow-list", hint
        return f"its host {host!r} is not on the allow-list", hint


def parse_entry(entry: str) -> tuple[str, int | None]:
    """One ``--allow-host`` entry as (host in lower case, port or None); UsageError when it is not a host."""
    text = str(entry).strip().lower()
    bad = UsageError(f"--allow-host {entry!r} is not a host", "give a host name (cdn.example.com), host:port for "
                     "one port (cdn.example.com:8443) or *.example.com for its subdomains")
    if not text or "://" in text or any(c in text for c in "/@?#\\ \t"):
        raise bad
    port_text = ""
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise bad
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    host = host.rstrip(".")
    name = host[2:] if host.startswith("*.") else host
    if not name or "*" in name or not all(c.isalnum() or c in "-._:" for c in name):
        raise bad
    if port_text == "":
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise bad
    return host, int(port_text)


def shown(url: str) -> str:
    """``url`` with any password hidden (for messages)."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            return url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return url

"""``--server URL``: ``related`` and ``search`` asked of a running ``pinembed serve`` over its HTTP API
(docs/serve.md), so this process loads no model and opens no database. The standard library only
(urllib), with a timeout; no proxy for a loopback server and no redirects (the token goes nowhere
else). The server's answers are hostile input too: sizes are bounded, fields checked, and its messages
printed escaped and cut. An unreachable server is an error (exit 1), never a silent fallback to the
local path: that would load the model the user asked to avoid."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from pinembed.cli.shown import shown, unescape
from pinembed.controls import MAX_K, MAX_K_SERVED
from pinembed.errors import PinembedError, PinNotFoundError, UsageError
from pinembed.results import Related

TIMEOUT_S = 120.0  # seconds a request may take (the server's own limit is 30 s by default: then a 504)
MAX_ANSWER_BYTES = 64 << 20
MAX_IMAGE_BYTES = 1 << 30  # the server's largest upload limit (--max-upload-mb 1024)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_START_ONE = ("start one with `pinembed serve --db DB` (it prints its URL), or leave out --server (and unset "
              "PINEMBED_SERVER) to query the database here, which loads the model")


class ServerError(PinembedError):
    """The server named by --server cannot be reached, or its answer is no pinembed answer."""

    exit_code = 1


def _clean(text: Any, limit: int = 500) -> str:
    """A string from the server, safe to print: control characters escaped, at most ``limit`` characters."""
    out = shown(text if isinstance(text, str) else "")
    return out if len(out) <= limit else out[:limit] + " ..."


class Server:
    """A running ``pinembed serve`` at ``url`` (``http://host:port``, a path prefix allowed; a
    ``#token=T`` fragment, as ``serve`` prints it, is the token)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.base, fragment_token = _parse_url(url)
        self.token = token or fragment_token
        if self.token is not None and (not self.token.isprintable() or not self.token.isascii()):
            raise UsageError("the server's token holds characters an HTTP header cannot carry",
                             "give the token that `pinembed serve --token` was started with")
        self.loopback = (urlsplit(self.base).hostname or "") in LOOPBACK

    # -- queries -------------------------------------------------------------------------------
    def related(self, pins: list[str], k: int, kinds: Any, where: Any, dedupe: float | None,
                diversity: float) -> list[Related]:
        """``PinIndex.related`` (one pin) or ``related_to_session`` (several), answered by the server."""
        _check_k(k)
        pins = [self._stored_id(p) for p in pins]
        try:
            if len(pins) == 1:
                doc = self.request("GET", "/api/related", _controls(k, kinds, where, dedupe, diversity,
                                                                    [("pin", pins[0])]))
            else:
                body = {"pins": pins, "k": k, "kinds": list(kinds) if kinds else None, "where": where,
                        "dedupe": dedupe, "diversity": diversity}
                doc = self.request("POST", "/api/session", body=json.dumps(body).encode(),
                                   content_type="application/json")
        except PinNotFoundError as e:
            if any(os.path.exists(p) for p in pins):
                e.hint = ("with --server, a PIN is a pin id (`pinembed pins` lists them): the server does not "
                          "look ids up as files; without --server the path of an ingested file works too")
            raise
        return _results(doc)

    def search(self, texts: list[str], negatives: list[str], images: list[str], k: int, kinds: Any, where: Any,
               dedupe: float | None, diversity: float) -> list[Related]:
        """``PinIndex.search`` of texts and image files minus ``negatives`` (texts), answered by the
        server (the images are uploaded)."""
        _check_k(k)
        fields = [("text", t) for t in texts] + [("negative", t) for t in negatives]
        fields = _controls(k, kinds, where, dedupe, diversity, fields)
        if not images:
            doc = self.request("POST", "/api/search", body=urlencode(fields).encode(),
                               content_type="application/x-www-form-urlencoded")
        else:
            body, ctype = _multipart(fields, [_read_image(p) for p in images])
            doc = self.request("POST", "/api/search", body=body, content_type=ctype)
        return _results(doc)

    def attributes(self) -> dict[str, str]:
        """The served database's attributes, name -> type name (``GET /api/attributes``), so that a
        --where naming one is checked here as the server checks it."""
        doc = self.request("GET", "/api/attributes").get("attributes")
        if not isinstance(doc, dict) or not all(isinstance(n, str) and isinstance(t, str) for n, t in doc.items()):
            raise ServerError("the server's attributes are not name -> type", "is it a `pinembed serve` of this version?")
        return doc

    def check_database(self, db: str, storage_options: dict[str, str] | None = None) -> None:
        """UsageError (exit 2) unless the server serves the database ``db``: the same path or URI, or,
        when the server names a relative path (its working folder is unknown here), a database at
        ``db`` of the same model and sources."""
        stats = self.request("GET", "/api/stats")
        served = stats.get("db")
        if not isinstance(served, str) or not served:
            raise ServerError(f"the server at {self.base} does not say which database it serves",
                              "is it a `pinembed serve`? " + _START_ONE)
        same = _same_place(served, db)
        if same is None:
            same = _same_content(stats, db, storage_options)
        if not same:
            raise UsageError(
                f"the server at {self.base} serves the database {_clean(served)!r}, not --db {shown(db)!r}",
                "leave out --db (and unset PINEMBED_DB) to query the server's database, give the one it serves, "
                "or leave out --server to query --db here",
            )

    # -- HTTP ------------------------------------------------------------------------------------
    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
                body: bytes | None = None, content_type: str | None = None) -> dict[str, Any]:
        """One request; the answer's JSON object, or the server's error as a PinembedError."""
        # imported here: urllib.request loads ssl, email and http.client, a tenth of a second that
        # `pinembed --help` and every query without --server would pay
        import http.client
        import urllib.error
        import urllib.request

        url = self.base + path + (f"?{urlencode(params, quote_via=quote)}" if params else "")
        headers = {"Accept": "application/json", "User-Agent": "pinembed-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        handlers: list[Any] = [_no_redirect()]
        if self.loopback:
            handlers.append(urllib.request.ProxyHandler({}))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(req, timeout=TIMEOUT_S) as resp:
                return self._json(resp.read(MAX_ANSWER_BYTES + 1))
        except urllib.error.HTTPError as e:
            raise self._error(e.code, e.read(1 << 20)) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise self._timeout() from None
            raise ServerError(f"no pinembed server answers at {self.base}: {_clean(str(e.reason), 200)}",
                              _START_ONE) from None
        except TimeoutError:
            raise self._timeout() from None
        except (http.client.HTTPException, OSError) as e:
            raise ServerError(f"the server at {self.base} broke off its answer ({type(e).__name__})",
                              "is it a `pinembed serve`? Try again; " + _START_ONE) from None

    def _timeout(self) -> ServerError:
        return ServerError(f"the server at {self.base} did not answer within {TIMEOUT_S:g} s",
                           "it may be busy or stuck; try again, or leave out --server to query the database here")

    def _json(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > MAX_ANSWER_BYTES:
            raise ServerError(f"the answer of {self.base} is over {MAX_ANSWER_BYTES >> 20} MB", "ask for fewer results (-k)")
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            raise ServerError(f"the server at {self.base} did not answer with a JSON object",
                              "is it a `pinembed serve`? " + _START_ONE)
        return doc

    def _error(self, status: int, raw: bytes) -> PinembedError:
        """The server's ``{"error": {"code", "message", "hint"}}`` as the CLI's error."""
        try:
            err = json.loads(raw).get("error")
        except (ValueError, RecursionError, AttributeError):
            err = None
        if not isinstance(err, dict):
            return ServerError(f"the server at {self.base} answered HTTP {status} without a pinembed error",
                               "is it a `pinembed serve`? " + _START_ONE)
        code, message, hint = _clean(err.get("code"), 40), _clean(err.get("message")), _clean(err.get("hint"))
        if status == 401:
            return UsageError(f"the server at {self.base} needs its token: {message}",
                              "give it with --token T (or PINEMBED_TOKEN, or the URL `pinembed serve` printed, "
                              "with its #token=...)")
        if status == 404 and code == "pin_not_found":
            return PinNotFoundError(message, hint)
        if 400 <= status < 500:
            return UsageError(f"the server refused the query ({status} {code}): {message}", hint)
        return ServerError(f"the server could not answer ({status} {code}): {message}", hint or "try again")

    def _stored_id(self, ref: str) -> str:
        """``ref``, or the id it is the printed form of (``a\\nb.png``, see ``cli.shown``) when ``ref``
        is no stored id and that one is."""
        back = unescape(ref) if "\\" in ref else None
        if back is None or back == ref:
            return ref
        try:
            self.request("GET", "/api/pin", [("pin", ref)])
            return ref
        except PinNotFoundError:
            return back


def _no_redirect() -> Any:
    """A handler that follows no redirect (a pinembed server gives none; the token is sent nowhere
    else): the 3xx is an HTTPError."""
    import urllib.request  # as in Server.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return NoRedirect()


def _parse_url(url: str) -> tuple[str, str | None]:
    """(base URL without a trailing slash, the token of a ``#token=`` fragment or None)."""
    hint = "give the URL `pinembed serve` printed, e.g. --server http://127.0.0.1:8000"
    if not url or not url.isprintable() or any(c.isspace() for c in url):
        raise UsageError(f"--server {shown(url)!r} is not a URL", hint)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise UsageError(f"--server {shown(url)!r} is not a URL", hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--server {shown(url)!r} is not an http:// or https:// URL", hint)
    if parts.username is not None or parts.password is not None:
        raise UsageError("--server takes no user name or password in the URL", "give the token with --token")
    if parts.query:
        raise UsageError(f"--server {shown(url)!r} has a query (?...)", hint)
    token = None
    if parts.fragment:
        values = parse_qs(parts.fragment).get("token")
        if not values:
            raise UsageError(f"--server {shown(url)!r}: the only fragment it takes is #token=...", hint)
        token = values[0]
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}", token


def _check_k(k: int) -> None:
    if k > MAX_K_SERVED:
        raise UsageError(f"a server gives at most {MAX_K_SERVED} results, not -k {k}",
                         f"ask for -k {MAX_K_SERVED} or fewer, or leave out --server (up to {MAX_K:,} here)")


def _controls(k: int, kinds: Any, where: Any, dedupe: float | None, diversity: float,
              fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The common parameters of the server's result endpoints, after ``fields``."""
    out = [*fields, ("k", str(k))]
    if kinds:
        out.append(("kinds", ",".join(kinds)))
    if where:
        out.append(("where", json.dumps(where)))
    if dedupe is not None:
        out.append(("dedupe", repr(float(dedupe))))
    if diversity:
        out.append(("diversity", repr(float(diversity))))
    return out


def _read_image(path: str) -> bytes:
    try:
        if os.path.getsize(path) > MAX_IMAGE_BYTES:
            raise UsageError(f"the query image {shown(path)!r} is over {MAX_IMAGE_BYTES >> 20} MB",
                             "give a smaller image")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read query image {shown(path)!r}: {e.strerror}") from None


def _multipart(fields: list[tuple[str, str]], images: list[bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body of text ``fields`` and ``image`` files (their names are not sent)."""
    import secrets  # loads hashlib's OpenSSL: only an upload pays it

    boundary = "pinembed-" + secrets.token_hex(16)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode()
             + b"\r\n" for name, value in fields]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="query-{i}"\r\n'
              "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for i, data in enumerate(images)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _results(doc: dict[str, Any]) -> list[Related]:
    """The server's result cards as the CLI's results (the same fields as the local path's)."""
    rows = doc.get("results")
    if not isinstance(rows, list):
        raise ServerError("the server's answer holds no results", "is it a `pinembed serve` of this version?")
    try:
        return [Related(pin_id=_text(c["pin_id"], False), kind=_text(c["kind"], False), score=_number(c["score"]),
                        uri=_text(c.get("uri")), title=_text(c.get("title")), best_t_s=_number(c.get("best_t_s"), True),
                        best_page=_int(c.get("best_page")), duration_s=_number(c.get("duration_s"), True),
                        pages=_int(c.get("pages")), fused=_number(c.get("fused"), True)) for c in rows]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ServerError("the server's results are not pin cards", "is it a `pinembed serve` of this version?") from None


def _text(v: Any, nullable: bool = True) -> Any:
    if (v is None and nullable) or isinstance(v, str):
        return v
    raise TypeError("not a string")


def _number(v: Any, nullable: bool = False) -> Any:
    if v is None and nullable:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError("not a number")
    return float(v)


def _int(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("not an integer")
    return v


def _same_place(served: str, ours: str) -> bool | None:
    """Whether two database names are one place; None when ``served`` is a relative path (relative to
    the server's working folder, unknown here)."""
    if "://" in served or "://" in ours:
        return served.rstrip("/") == ours.rstrip("/")
    served = os.path.expanduser(served)
    if not os.path.isabs(served):
        return None
    return os.path.realpath(served) == os.path.realpath(os.path.expanduser(ours))


def _same_content(stats: dict[str, Any], db: str, storage_options: dict[str, str] | None) -> bool:
    """Whether the database at ``db`` (here) has the served one's model identity and sources."""
    from pinembed.store import Store  # heavy: the store package loads pyarrow

    store = Store(db, storage_options=storage_options)
    if not store.exists():
        return False
    ours = {"space": store.identity,
            "sources": [{"root": r, "id_prefix": p} for r, p in sorted(store.sources().items())]}
    ours = json.loads(json.dumps(ours, default=str))
    return ours == {"space": stats.get("space"), "sources": stats.get("sources")}

"""Object storage: which URIs live there, and an obstore client for one (the lease's, the media's)
configured from LanceDB's storage options, with a deadline on every request."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from .deadline import with_deadlines

#: URI schemes whose databases take the lease (others, ``file://`` and local paths, take the flock).
OBJECT_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss", "adl"})
#: obstore's client options (the rest of the storage options configure the store itself).
CLIENT_KEYS = frozenset({"allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type",
                         "pool_idle_timeout", "pool_max_idle_per_host", "proxy_url", "proxy_ca_certificate",
                         "proxy_excludes", "randomize_addresses", "read_timeout", "timeout", "user_agent"})
#: lance's own options (its retry layer), unknown to obstore.
LANCE_ONLY = frozenset({"client_max_retries", "client_retry_timeout"})
_UNKNOWN_KEY = re.compile(r"Configuration key: '([^']+)' is not valid")


def is_object_store(uri: str) -> bool:
    """True when the database at ``uri`` lives on object storage (and so takes the lease)."""
    return "://" in uri and urlsplit(uri).scheme.split("+")[0].lower() in OBJECT_SCHEMES


def object_store(uri: str, storage_options: dict[str, str] | None, retry_s: float) -> Any:
    """An obstore store rooted at ``uri``, configured from LanceDB-style storage options (and the
    environment, as LanceDB reads it). Options that obstore does not know are left to LanceDB."""
    from obstore.exceptions import UnknownConfigurationKeyError
    from obstore.store import from_url

    config: dict[str, str] = {}
    client: dict[str, str] = {}
    for key, value in with_deadlines(storage_options).items():
        bare = re.sub(r"^(aws|google|azure)_", "", key.lower())
        if bare in LANCE_ONLY:
            continue
        if bare in CLIENT_KEYS:
            client[bare] = value
        else:
            config[key] = value
    for key in CLIENT_KEYS - client.keys():  # given client options replace the environment's: keep those
        for var in (f"AWS_{key.upper()}", f"GOOGLE_{key.upper()}", f"AZURE_{key.upper()}"):
            if os.environ.get(var):
                client[key] = os.environ[var]
                break
    retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=max(1.0, retry_s))}
    for _ in range(len(config) + 1):
        try:
            return from_url(uri, config=config or None, client_options=client or None,  # type: ignore[arg-type]
                            retry_config=retry)  # type: ignore[arg-type]
        except UnknownConfigurationKeyError as e:
            unknown = _UNKNOWN_KEY.search(str(e))
            if unknown is None or unknown.group(1) not in config:
                raise
            config.pop(unknown.group(1))
    raise AssertionError("unreachable")

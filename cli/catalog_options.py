"""The options of ``ingest`` and ``refresh`` that a catalog source reads: its column mapping (flags and
their defaults are ``Columns``'), which columns are attributes, and the hosts its http media may come from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from pinembed.cli.common import FloatRange, IntRange

if TYPE_CHECKING:
    from pinembed.ingestion.catalog import CatalogOptions

_KEYS = ("id_col", "media_col", "title_col", "description_col", "kind_col", "page_text_col", "version_col",
         "attr_cols", "allow_host", "http_timeout", "http_concurrency")


def catalog_options(fn: Any) -> Any:
    """Add the catalog options to a command."""
    opts = [
        click.option("--id-col", default="pin_id", show_default=True,
                     help="Catalogs: the column of each row's pin id (under --id-prefix)."),
        click.option("--media-col", default="media", show_default=True,
                     help="Catalogs: the column of each row's media: a path (relative to the catalog file), an "
                          "s3:// gs:// az:// URI or an http(s) URL; a list of them is an idea pin's pages."),
        click.option("--title-col", default="title", show_default=True, help="Catalogs: the title column."),
        click.option("--description-col", default="description", show_default=True,
                     help="Catalogs: the description column."),
        click.option("--kind-col", default=None,
                     help="Catalogs: a column naming each row's kind (image, motion, video, idea) [default: from "
                          "the media's extension; a list of media is an idea pin]."),
        click.option("--page-text-col", default="page_texts", show_default=True,
                     help="Catalogs: idea pins' page texts (a list, one per page)."),
        click.option("--version-col", default=None,
                     help="Catalogs: a column that changes when a row's media change (e.g. updated_at): a refresh "
                          "then compares it and stats no media [default: each media's size/mtime/ETag]."),
        click.option("--attr-cols", default=None,
                     help="Catalogs: the columns that become attributes, comma-separated [default: every other "
                          "column]. Attributes are typed columns you can filter on (--where)."),
        click.option("--allow-host", multiple=True,
                     help="Catalogs: a host http(s) media may be fetched from (repeatable; host, host:port or "
                          "*.domain). No other host is fetched: such rows are failures (host_not_allowed)."),
        click.option("--http-timeout", default=30.0, show_default=True, type=FloatRange(0.1, 3600),
                     help="Catalogs: seconds one http(s) media fetch may take in all."),
        click.option("--http-concurrency", default=16, show_default=True, type=IntRange(1, 1024),
                     help="Catalogs: http(s) fetches in flight at once."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def catalog_opts(kw: dict[str, Any]) -> CatalogOptions:
    """The catalog options the command line gave, taken out of ``kw``."""
    from pinembed.ingestion.catalog import CatalogOptions, Columns  # heavy: loads pyarrow

    v = {k: kw.pop(k) for k in _KEYS}
    attrs = tuple(a.strip() for a in v["attr_cols"].split(",") if a.strip()) if v["attr_cols"] is not None else None
    cols = Columns(id=v["id_col"], media=v["media_col"], title=v["title_col"], description=v["description_col"],
                   kind=v["kind_col"], page_text=v["page_text_col"], version=v["version_col"], attrs=attrs)
    return CatalogOptions(cols, tuple(v["allow_host"]),
                          {"timeout_s": v["http_timeout"], "max_concurrency": v["http_concurrency"]})

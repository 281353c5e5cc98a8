"""The OpenAPI 3 description of the service (served at /api/openapi.json), written out by hand so
that every endpoint and parameter is listed with its limits."""

from __future__ import annotations

import functools
from typing import Any

from pinembed import __version__, controls
from pinembed.ingestion.kinds import NAMES as KINDS
from pinembed.store.attributes import TYPES as ATTRIBUTE_TYPES
from pinembed.store.filters import FILTER_COLUMNS, MAX_VALUE_CHARS, MAX_WHERE_TERMS, MAX_WHERE_VALUES, RANGES

from . import params
from .thumbs import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE


def _q(name: str, schema: dict[str, Any], description: str, required: bool = False, repeat: bool = False) -> dict[str, Any]:
    if repeat:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema,
            **({"style": "form", "explode": True} if repeat else {})}


_PIN_ID = {"type": "string", "minLength": 1, "maxLength": params.MAX_PIN_ID_CHARS, "pattern": "^[^\\x00]*$"}
#: A comma list of kinds, exactly as ``params.kinds`` reads it (items stripped of spaces, empty ones dropped).
_KIND = f"(?:{'|'.join(KINDS)})"
_KINDS = {"type": "string", "pattern": f"^[ \\t]*(?:{_KIND}[ \\t]*)?(?:,[ \\t]*(?:{_KIND}[ \\t]*)?)*$"}
_DEDUPE = {"type": "number", "minimum": -1, "exclusiveMinimum": True, "maximum": 1}  # 3.0: a boolean
_DIVERSITY = {"type": "number", "minimum": 0, "maximum": 1}
_K = {"type": "integer", "minimum": 1, "maximum": controls.MAX_K_SERVED}
_WHERE = {"type": "string", "maxLength": params.MAX_WHERE_CHARS}


def _where_schema() -> dict[str, Any]:
    """The JSON schema of a where filter object (in a JSON body; a query string's is its JSON text, or the
    text form), column by column as ``store.filters`` reads it: a value, a list (any of) or an object of
    operators; numbers within the column's type, also as ASCII digits in a string. Other properties are
    the database's attributes (GET /api/attributes), each a text, a number or true/false in these shapes."""
    cols: dict[str, Any] = {}
    for col, kind in FILTER_COLUMNS.items():
        if kind == "s":
            one: dict[str, Any] = {"anyOf": [{"type": "string", "maxLength": MAX_VALUE_CHARS, "pattern": "^[^\\x00]*$"},
                                             {"type": "number"}]}
        else:
            lo, hi = RANGES[col]
            digits = (r"^\s*[+-]?[0-9]{1,19}\s*$" if kind == "i"  # as store.filters reads them
                      else r"^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?\s*$")
            one = {"anyOf": [{"type": "integer" if kind == "i" else "number", "minimum": lo, "maximum": hi},
                             {"type": "string", "pattern": digits}]}
        many = {"type": "array", "items": one, "maxItems": MAX_WHERE_VALUES}
        ops = {op: one for op in ("eq", "ne", "gt", "gte", "lt", "lte")} | {"in": many}
        if kind == "s":
            ops["contains"] = one
        cols[col] = {"anyOf": [one, many, {"type": "object", "properties": ops, "additionalProperties": False}]}
    one = {"anyOf": [{"type": "string", "maxLength": MAX_VALUE_CHARS, "pattern": "^[^\\x00]*$"}, {"type": "number"},
                     {"type": "boolean"}]}
    many = {"type": "array", "items": one, "maxItems": MAX_WHERE_VALUES}
    ops = {op: one for op in ("eq", "ne", "gt", "gte", "lt", "lte", "contains")} | {"in": many}
    attribute = {"anyOf": [one, many, {"type": "object", "properties": ops, "additionalProperties": False}]}
    return {"type": "object", "properties": cols, "additionalProperties": attribute}


_WHERE_TEXT = ("conditions COLUMN OP VALUE joined by AND (any case), e.g. category = 'shoes' AND price < 50: OP one of "
               "= != < <= > >= ~ (contains, any case) or IN ('a', 'b'); VALUE a 'single-quoted text' ('' is a quote), a "
               "number, true or false; OR, NOT and parentheses are refused. A lone COLUMN=VALUE without quotes "
               "(kind=video) takes the value as written. Dates (timestamp attributes) in ISO 8601, e.g. "
               "created_at >= '2023-01-31'; on a list<string> attribute = means holds, IN holds any of")


_PIN = _q("pin", _PIN_ID,
          "A pin id (a path under the ingested folder, e.g. images/red.jpg). Never a file path.", required=True)
_CONTROLS = [
    _q("k", {**_K, "default": controls.DEFAULT_K}, "How many results."),
    _q("kinds", _KINDS, f"Comma list of pin kinds to keep: {', '.join(KINDS)}."),
    _q("dedupe", _DEDUPE, "Drop results within this cosine of the query or of a result above (e.g. 0.95)."),
    _q("diversity", {**_DIVERSITY, "default": 0}, "Maximal marginal relevance: 0 plain similarity, 1 most diverse."),
    _q("where", _WHERE, f"A filter: its text form, {_WHERE_TEXT}; or a JSON object (the text starts with {{), e.g. "
       "{\"kind\": \"video\", \"title\": {\"contains\": \"pasta\"}, "
       f"\"width\": {{\"gte\": 640}}}}. Operators: {', '.join(params.WHERE_OPS)}. Columns: "
       + ", ".join(sorted(params.column_names())) + ", and the database's attributes (GET /api/attributes)"
       + f". At most {MAX_WHERE_TERMS} conditions, {MAX_WHERE_VALUES} "
       f"values a list, {MAX_VALUE_CHARS} characters a value; numbers within their column's type (width, height, "
       "n_segments: int32; size: int64; duration_s, fps: float32; int attributes: int64; float attributes: "
       "float64), integers in ASCII digits."),
]
_TEXT = {"type": "string", "minLength": 1, "maxLength": params.MAX_TEXT_CHARS, "pattern": "\\S"}
_PAGE = {"type": "integer", "minimum": 0, "maximum": params.MAX_PAGE}


def _terms(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "maxItems": params.MAX_TERMS}


def _field(item: dict[str, Any]) -> dict[str, Any]:
    """A repeatable form field: one value reads as a list of one."""
    return {"anyOf": [item, _terms(item)]}


def _terms_q(name: str, item: dict[str, Any], description: str) -> dict[str, Any]:
    return {**_q(name, item, description), "schema": _terms(item), "style": "form", "explode": True}


_TOKEN = _q("token", {"type": "string"}, "The server's token, when it has one and no Authorization header is sent.")

_CARD = {"type": "object", "properties": {
    "pin_id": {"type": "string"}, "kind": {"type": "string", "enum": list(KINDS)}, "score": {"type": "number"},
    "title": {"type": "string", "nullable": True}, "uri": {"type": "string", "nullable": True},
    "best_t_s": {"type": "number", "nullable": True}, "best_page": {"type": "integer", "nullable": True},
    "thumb": {"type": "string", "description": "Relative URL of a JPEG thumbnail."},
    "media": {"type": "string", "description": "Relative URL of the pin's file."},
    "pages": {"type": "integer", "nullable": True}, "duration_s": {"type": "number", "nullable": True},
    "rank": {"type": "integer", "description": "Results: the place in the list, from 1."},
    "fused": {"type": "number", "description": "Session results: the fused score the list is ordered by."},
    "playable": {"type": "boolean", "description": "Videos: whether browsers play the file's container and codec "
                 "(absent when the file is not served)."},
    "media_type": {"type": "string", "nullable": True,
                   "description": "Playable videos: the MIME type with codecs, for the browser's canPlayType."},
    "unplayable_reason": {"type": "string", "description": "Videos that are not playable: why."}}}
_RESULTS = {"type": "object", "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Card"}},
                                             "took_ms": {"type": "number"}}}
_SESSION_RESULTS = {"type": "object", "properties": {
    **_RESULTS["properties"],
    "order": {"type": "string", "enum": ["fused", "rank"],
              "description": "The results are in the order of the fusion of the session's interests: "
                             "fused (each result has its fused score) or rank (only the order is known)."}}}
_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}}}}}


def _ok(schema: Any, ctype: str = "application/json") -> dict[str, Any]:
    errors = {str(s): {"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
              for s, d in ((400, "bad parameter"), (401, "token missing or wrong"), (404, "unknown pin"),
                           (413, "upload too large"), (415, "not an image"), (422, "valid JSON of the wrong shape"),
                           (503, "no database yet, or reloading failed"), (504, "took too long"))}
    return {"200": {"description": "OK", "content": {ctype: {"schema": schema}}}, **errors}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


@functools.cache
def openapi() -> dict[str, Any]:
    """The OpenAPI document."""
    session_body = {"type": "object", "required": ["pins"], "properties": {
        "pins": {"type": "array", "items": _PIN_ID, "minItems": 1, "maxItems": params.MAX_SESSION_PINS,
                 "description": "The session's pins, oldest first."},
        "weights": {"type": "array", "items": {"type": "number", "minimum": 0}, "nullable": True,
                    "description": "One weight per pin, not all zero (default, or null: recency)."},
        "k": {**_K, "nullable": True}, "kinds": {"type": "array", "items": {"type": "string", "enum": list(KINDS)},
                                                 "nullable": True},
        "dedupe": {**_DEDUPE, "nullable": True}, "diversity": {**_DIVERSITY, "nullable": True},
        "where": {"anyOf": [_where_schema(), _WHERE], "nullable": True,
                  "description": "A filter, as the where parameter describes: a JSON object or its text form."}}}
    search_form = {"type": "object", "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": "Query images."},
        "text": _field(_TEXT), "negative": _field(_TEXT), "pin": _field(_PIN_ID), "k": _K, "kinds": _KINDS,
        "dedupe": _DEDUPE, "diversity": _DIVERSITY, "where": _WHERE}}
    search_terms = [
        _terms_q("text", _TEXT, "A text query (repeatable: added)."),
        _terms_q("negative", _TEXT, "A text to subtract (repeatable)."),
        _terms_q("pin", _PIN_ID, "A stored pin whose vector is added (repeatable)."),
    ]
    paths = {
        "/api/health": {"get": {"summary": "Status, pin count, model and generation", "parameters": [_TOKEN],
                                "responses": _ok({"type": "object", "properties": {
                                    "status": {"type": "string"}, "pins": {"type": "integer"},
                                    "model_id": {"type": "string"}, "generation": {"type": "integer"}}})}},
        "/api/stats": {"get": {"summary": "Counts by kind, segments, failures, sources, attributes, the model",
                               "parameters": [_TOKEN], "responses": _ok({"type": "object"})}},
        "/api/attributes": {"get": {"summary": "The database's attributes (filterable with where), name -> type",
                                    "parameters": [_TOKEN],
                                    "responses": _ok({"type": "object", "required": ["attributes"], "properties": {
                                        "attributes": {"type": "object", "additionalProperties": {
                                            "type": "string", "enum": list(ATTRIBUTE_TYPES)},
                                            "description": "Name -> type, in the table's order."}}})}},
        "/api/related": {"get": {"summary": "Pins related to a pin", "parameters": [_PIN, *_CONTROLS, _TOKEN],
                                 "responses": _ok({"type": "object", "properties": {
                                     "query": _ref("Card"), "results": _RESULTS["properties"]["results"],
                                     "took_ms": {"type": "number"}}})}},
        "/api/session": {
            "get": {"summary": "Related pins of a session (shareable URL form)",
                    "parameters": [{**_PIN, "schema": {"type": "array", "items": _PIN_ID, "minItems": 1,
                                                       "maxItems": params.MAX_SESSION_PINS},
                                    "style": "form", "explode": True,
                                    "description": "The session's pins, oldest first (repeat pin=)."},
                                   _q("weight", {"type": "number", "minimum": 0, "maximum": params.MAX_WEIGHT},
                                      "One weight per pin (repeat weight=), not all zero.", repeat=True),
                                   *_CONTROLS, _TOKEN],
                    "responses": _ok(_SESSION_RESULTS)},
            "post": {"summary": "Related pins of a session", "parameters": [_TOKEN],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": session_body}}},
                     "responses": _ok(_SESSION_RESULTS)}},
        "/api/search": {
            "get": {"summary": "Search by texts and stored pins: normalise(sum positive - sum negative)",
                    "parameters": [*search_terms, *_CONTROLS, _TOKEN], "responses": _ok(_RESULTS)},
            "post": {"summary": "Search by uploaded images, texts and pins", "parameters": [_TOKEN],
                     "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": search_form},
                                                                   "application/x-www-form-urlencoded": {
                                                                       "schema": {k: v for k, v in search_form.items()
                                                                                  if k != "properties"} | {
                                                                           "properties": {
                                                                               k: v for k, v in search_form["properties"].items()
                                                                               if k != "image"}}}}},
                     "responses": _ok(_RESULTS)}},
        "/api/pin": {"get": {"summary": "A pin's card, description, size, duration and segments",
                             "parameters": [_PIN, _TOKEN], "responses": _ok({"allOf": [_ref("Card"), {
                                 "type": "object", "properties": {
                                     "description": {"type": "string", "nullable": True},
                                     "width": {"type": "integer", "nullable": True},
                                     "height": {"type": "integer", "nullable": True},
                                     "attributes": {"type": "object", "additionalProperties": True,
                                                    "description": "The pin's attributes, name -> value (null when "
                                                                   "it has none; dates as ISO 8601 text)."},
                                     "segments": {"type": "array", "items": {"type": "object", "properties": {
                                         "seq": {"type": "integer"}, "kind": {"type": "string", "enum": ["frame", "page", "text"]},
                                         "t_s": {"type": "number", "nullable": True},
                                         "page": {"type": "integer", "nullable": True},
                                         "thumb": {"type": "string", "nullable": True}}}}}}]})}},
        "/api/thumb": {"get": {"summary": "A JPEG thumbnail: an image, a video frame at t, an idea pin's page",
                               "parameters": [
                                   _PIN, _q("t", {"type": "number", "minimum": 0, "maximum": params.MAX_T_S},
                                            "Seconds into a video or animation "
                                            "(default: the middle of a video, the first frame of an animation)."),
                                   _q("page", _PAGE, "An idea pin's page (default: the first)."),
                                   _q("size", {"type": "integer", "minimum": MIN_SIZE, "maximum": MAX_SIZE,
                                               "default": DEFAULT_SIZE}, "Longest side in pixels."), _TOKEN],
                               "responses": _ok({"type": "string", "format": "binary"}, "image/jpeg")}},
        "/api/media": {"get": {"summary": "The pin's file (or an idea pin's page file); Range requests give 206",
                               "parameters": [_PIN, _q("page", _PAGE, "An idea pin's page (default: the first)."),
                                              _TOKEN],
                               "responses": {**_ok({"type": "string", "format": "binary"}, "*/*"),
                                             "206": {"description": "Partial content (a Range request)",
                                                     "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                                             "416": {"description": "Range not satisfiable", "content": {
                                                 "application/json": {"schema": _ref("Error")}}}}}},
        "/api/pins": {"get": {"summary": "The pins, most recently embedded first, a page at a time",
                              "parameters": [
                                  _q("page", {"type": "integer", "minimum": 1, "maximum": params.MAX_LIST_PAGE,
                                              "default": 1}, "The page, from 1."),
                                  _q("size", {"type": "integer", "minimum": 1, "maximum": controls.MAX_K_SERVED,
                                              "default": controls.DEFAULT_K}, "Pins a page."),
                                  _CONTROLS[1], _CONTROLS[4], _TOKEN],
                              "responses": _ok({"type": "object", "properties": {
                                  "pins": {"type": "array", "items": _ref("Card")}, "page": {"type": "integer"},
                                  "size": {"type": "integer"}, "total": {"type": "integer"},
                                  "pages": {"type": "integer"}, "took_ms": {"type": "number"}}})}},
        "/api/preview": {"post": {"summary": "A JPEG preview of an uploaded image (HEIC, TIFF, PSD, ...: any format "
                                             "ingestion reads), for browsers that cannot show it",
                                  "parameters": [_TOKEN],
                                  "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                                      "type": "object", "required": ["image"], "properties": {
                                          "image": {"type": "string", "format": "binary", "description": "One image."},
                                          "size": {"type": "integer", "minimum": MIN_SIZE, "maximum": MAX_SIZE,
                                                   "default": MAX_SIZE, "description": "Longest side in pixels."}}}}}},
                                  "responses": _ok({"type": "string", "format": "binary"}, "image/jpeg")}},
        "/api/openapi.json": {"get": {"summary": "This description", "parameters": [_TOKEN],
                                      "responses": _ok({"type": "object"})}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "pinembed serve", "version": __version__,
                 "description": "Related pins, sessions, search, pin details, thumbnails and media of one pinembed "
                                "database. Errors: {\"error\": {\"code\", \"message\", \"hint\"}}."},
        "paths": paths,
        "components": {"schemas": {"Card": _CARD, "Error": _ERROR},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }

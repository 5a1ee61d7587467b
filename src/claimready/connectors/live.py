"""Live collection over HTTPS from Microsoft and Okta APIs, and reading the result back.

Collectors fetch raw evidence and return it as bytes, exactly as the API
returned it: every page of a paged listing is kept untouched and the pages
are joined into one JSON document, so ingest can store the bytes and the same
connector that reads an exported file normalizes them.

* Microsoft Graph and the Defender for Endpoint API page with
  ``@odata.nextLink``; the collected document is
  ``{"@odata.context": <first page's>, "value": [<every page's items>]}``.
* Okta pages with an RFC 8288 ``Link: <...>; rel="next"`` header; the
  collected document is the JSON array of every page's items.

Every request has a timeout and is retried on 429 and 5xx responses and on
transport errors, with exponential backoff that honours ``Retry-After`` (and
Okta's ``X-Rate-Limit-Reset``). A next-page link to another host is refused so
the bearer token is never sent elsewhere. Credentials are never logged, put in
an error message or shown in a repr.

The ``httpx.Client`` is always passed in: tests give it a recorded transport.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import httpx

from claimready.connectors.base import Collected, Connector, EvidenceFile
from claimready.connectors.files import parse_json
from claimready.errors import CollectionError, ConfigError, InputError
from claimready.timeutil import format_utc, parse_duration, utcnow

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 300.0
MAX_PAGES = 10_000
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
_ERROR_TEXT_LIMIT = 300

Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    timeout: float = 30.0
    max_pages: int = MAX_PAGES


@dataclass(frozen=True, slots=True)
class MicrosoftConfig:
    """An Entra ID app registration allowed to read Graph and Defender data.

    The secret is kept out of ``repr`` and every message.
    """

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    authority_url: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    defender_url: str = "https://api.securitycenter.microsoft.com"
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class OktaConfig:
    """An Okta org and a read-only API token (kept out of ``repr`` and messages)."""

    org_url: str
    api_token: str = field(repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def endpoint_name(url: str | httpx.URL) -> str:
    """Scheme, host and path of ``url``, without query or credentials, for messages."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    retry: RetryPolicy,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    sleep: Sleep = time.sleep,
) -> httpx.Response:
    """One request with timeout and retries; CollectionError unless it ends in a 2xx."""
    source = endpoint_name(url)
    for attempt in range(1, retry.attempts + 1):
        last = attempt == retry.attempts
        try:
            response = client.request(
                method, url, headers=headers, params=params, data=data, timeout=retry.timeout
            )
        except httpx.TransportError as exc:
            if last:
                raise CollectionError(
                    f"no response after {attempt} attempts ({type(exc).__name__})", source=source
                ) from exc
            sleep(_backoff(attempt, retry))
            continue
        if response.status_code in RETRY_STATUSES and not last:
            sleep(_retry_delay(response, attempt, retry))
            continue
        _raise_for_status(response, source=source, attempts=attempt)
        return response
    raise CollectionError("no attempt was made (retry.attempts < 1)", source=source)


def _backoff(attempt: int, retry: RetryPolicy) -> float:
    return float(min(retry.max_delay, retry.base_delay * 2 ** (attempt - 1)))


def _retry_delay(response: httpx.Response, attempt: int, retry: RetryPolicy) -> float:
    """Seconds to wait: Retry-After (seconds or HTTP date), Okta's reset time, or backoff."""
    header = response.headers.get("Retry-After")
    if header is not None:
        wait = _parse_retry_after(header.strip())
        if wait is not None:
            return min(max(wait, 0.0), MAX_RETRY_AFTER_SECONDS)
    reset = response.headers.get("X-Rate-Limit-Reset")
    if reset is not None and reset.strip().isdigit():
        wait = float(reset.strip()) - utcnow().timestamp()
        return min(max(wait, 0.0), MAX_RETRY_AFTER_SECONDS)
    return _backoff(attempt, retry)


def _parse_retry_after(value: str) -> float | None:
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return (moment - utcnow()).total_seconds()


def _raise_for_status(response: httpx.Response, *, source: str, attempts: int) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = _error_detail(response)
    if status == 401:
        raise CollectionError(
            f"HTTP 401: the credentials were rejected (check the tenant, client id and "
            f"secret or the API token){detail}",
            source=source,
        )
    if status == 403:
        raise CollectionError(
            f"HTTP 403: the credentials lack the permission this endpoint needs{detail}",
            source=source,
        )
    if status in RETRY_STATUSES:
        raise CollectionError(f"HTTP {status} after {attempts} attempts{detail}", source=source)
    raise CollectionError(f"HTTP {status}{detail}", source=source)


def _error_detail(response: httpx.Response) -> str:
    """The service's own error message (Graph, Entra token, Okta), shortened."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code")
        else:
            message = body.get("error_description") or body.get("errorSummary") or error
    if not isinstance(message, str) or not message.strip():
        return ""
    text = " ".join(message.split())
    return f": {text[:_ERROR_TEXT_LIMIT]}"


def json_body(response: httpx.Response) -> Any:
    """The response body as JSON; CollectionError naming the endpoint otherwise."""
    source = endpoint_name(response.request.url)
    try:
        return json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CollectionError("the response body is not valid JSON", source=source) from exc


def dump_document(document: Any) -> bytes:
    """The bytes a collector returns: compact UTF-8 JSON, values untouched."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _same_origin(first: str, other: str) -> bool:
    a, b = urlsplit(first), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


# Microsoft identity platform and OData paging ------------------------------------------


def fetch_microsoft_token(
    client: httpx.Client, config: MicrosoftConfig, *, scope: str, sleep: Sleep = time.sleep
) -> str:
    """An app-only access token from the client-credentials grant (OAuth 2.0, RFC 6749 4.4)."""
    url = f"{config.authority_url.rstrip('/')}/{config.tenant_id}/oauth2/v2.0/token"
    response = send(
        client,
        "POST",
        url,
        retry=config.retry,
        data={
            "grant_type": "client_credentials",
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "scope": scope,
        },
        sleep=sleep,
    )
    body = json_body(response)
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise CollectionError("the token response has no access_token", source=endpoint_name(url))
    return token


def collect_odata(
    client: httpx.Client,
    url: str,
    *,
    token: str,
    retry: RetryPolicy,
    params: Mapping[str, str] | None = None,
    sleep: Sleep = time.sleep,
) -> bytes:
    """Every page of an OData collection, joined as ``{"@odata.context", "value"}``."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    items: list[Any] = []
    context: Any = None
    next_url: str | None = url
    page_params = params
    pages = 0
    while next_url is not None:
        pages += 1
        if pages > retry.max_pages:
            raise CollectionError(f"more than {retry.max_pages} pages", source=endpoint_name(url))
        response = send(
            client, "GET", next_url, retry=retry, headers=headers, params=page_params, sleep=sleep
        )
        body = json_body(response)
        source = endpoint_name(next_url)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise CollectionError("expected a JSON object with a 'value' array", source=source)
        if context is None:
            context = body.get("@odata.context")
        items.extend(body["value"])
        link = body.get("@odata.nextLink")
        next_url = _checked_next(url, link, source=source)
        page_params = None
    document: dict[str, Any] = {} if context is None else {"@odata.context": context}
    document["value"] = items
    return dump_document(document)


def _checked_next(first: str, link: Any, *, source: str) -> str | None:
    if link is None:
        return None
    if not isinstance(link, str) or not link:
        raise CollectionError("the next-page link is not a URL", source=source)
    if not _same_origin(first, link):
        raise CollectionError(
            f"the next-page link points to another host ({endpoint_name(link)}); refused",
            source=source,
        )
    return link


def collect_microsoft_listing(
    client: httpx.Client,
    config: MicrosoftConfig,
    base_url: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    sleep: Sleep = time.sleep,
) -> bytes:
    """Every page of the listing at ``base_url`` + ``path``, with an app-only token for that API."""
    base = base_url.rstrip("/")
    token = fetch_microsoft_token(client, config, scope=f"{base}/.default", sleep=sleep)
    return collect_odata(
        client, f"{base}{path}", token=token, retry=config.retry, params=params, sleep=sleep
    )


def since_filter(field_name: str, since: datetime | None) -> dict[str, str] | None:
    """The OData ``$filter`` keeping items whose ``field_name`` is at or after ``since``."""
    return None if since is None else {"$filter": f"{field_name} ge {format_utc(since)}"}


# Okta paging -----------------------------------------------------------------------------


def okta_headers(config: OktaConfig) -> dict[str, str]:
    """Request headers for the Okta management API (SSWS token)."""
    return {"Authorization": f"SSWS {config.api_token}", "Accept": "application/json"}


def collect_okta_list(
    client: httpx.Client,
    config: OktaConfig,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    stop_on_empty: bool = False,
    sleep: Sleep = time.sleep,
) -> list[Any]:
    """Every item of an Okta listing, following ``Link: rel="next"`` headers.

    ``stop_on_empty`` ends at the first empty page (the System Log always
    offers a next link, for polling).
    """
    url = f"{config.org_url.rstrip('/')}{path}"
    headers = okta_headers(config)
    items: list[Any] = []
    next_url: str | None = url
    page_params = params
    pages = 0
    while next_url is not None:
        pages += 1
        if pages > config.retry.max_pages:
            raise CollectionError(
                f"more than {config.retry.max_pages} pages", source=endpoint_name(url)
            )
        response = send(
            client,
            "GET",
            next_url,
            retry=config.retry,
            headers=headers,
            params=page_params,
            sleep=sleep,
        )
        body = json_body(response)
        source = endpoint_name(next_url)
        if not isinstance(body, list):
            raise CollectionError("expected a JSON array", source=source)
        items.extend(body)
        link = response.links.get("next", {}).get("url")
        next_url = None if stop_on_empty and not body else _checked_next(url, link, source=source)
        page_params = None
    return items


# Reading collected documents back --------------------------------------------------------


def read_json_evidence(evidence: EvidenceFile, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """The evidence file parsed as one JSON document, refusing files beyond ``max_bytes``."""
    with evidence.path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(
            f"file is larger than {max_bytes} bytes; export a shorter period",
            file=evidence.display_name,
        )
    return parse_json(data, file=evidence.display_name)


def odata_records(document: Any, *, where: str, what: str) -> list[Any]:
    """The items of an OData response (``{"value": [...]}``) or of a bare JSON array."""
    if isinstance(document, list):
        return document
    if not isinstance(document, dict) or "value" not in document:
        raise InputError(
            f"expected a JSON object with a 'value' array ({what})", file=where, field="value"
        )
    value = document["value"]
    if not isinstance(value, list):
        raise InputError(
            f"expected an array, found {type(value).__name__}", file=where, field="value"
        )
    return value


def _required(values: Mapping[str, str], name: str, *, what: str) -> str:
    value = values.get(name, "").strip()
    if not value:
        raise ConfigError(f"live collection needs the {what} {name!r}")
    return value


def microsoft_config(settings: Mapping[str, str], secrets: Mapping[str, str]) -> MicrosoftConfig:
    """A Microsoft app registration from a source's declared settings and secrets.

    Settings: ``tenant_id``, ``client_id`` (and optionally ``authority_url``,
    ``graph_url``, ``defender_url``); secrets: ``client_secret``.
    """
    defaults = MicrosoftConfig(tenant_id="", client_id="", client_secret="")
    return MicrosoftConfig(
        tenant_id=_required(settings, "tenant_id", what="setting"),
        client_id=_required(settings, "client_id", what="setting"),
        client_secret=_required(secrets, "client_secret", what="secret"),
        authority_url=settings.get("authority_url") or defaults.authority_url,
        graph_url=settings.get("graph_url") or defaults.graph_url,
        defender_url=settings.get("defender_url") or defaults.defender_url,
    )


def okta_config(settings: Mapping[str, str], secrets: Mapping[str, str]) -> OktaConfig:
    """An Okta org from declared settings (``org_url``) and secrets (``api_token``)."""
    return OktaConfig(
        org_url=_required(settings, "org_url", what="setting"),
        api_token=_required(secrets, "api_token", what="secret"),
    )


def lookback_start(settings: Mapping[str, str], *, default: str = "1d") -> datetime:
    """Start of the collection window: now minus the ``lookback`` setting (e.g. ``2d``)."""
    text = settings.get("lookback", default)
    try:
        return utcnow() - parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"setting 'lookback': {exc}") from exc


def collected(kind: str, data: bytes, *, suffix: str = "json") -> Collected:
    """A collected document named after its kind and the collection time."""
    return Collected(f"{kind}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.{suffix}", data)


class ConfigReader(Protocol):
    """Reads a source's declared settings and secrets into a collector's configuration."""

    def __call__(self, settings: Mapping[str, str], secrets: Mapping[str, str], /) -> object:
        """The configuration; ConfigError naming what is missing or wrong."""


class LiveApiConnector(Connector):
    """A connector that collects one document from its source's API.

    Subclasses declare ``configure``, which reads the source's declared
    settings and secrets into the collector's configuration; ``collector``,
    the function that fetches the document (``collector(http, config)``, or
    with ``uses_lookback`` ``collector(http, config, since=...)``); and
    ``uses_lookback``: whether only what falls within the ``lookback``
    setting (default 1d) is collected.
    """

    live = True
    configure: ClassVar[ConfigReader]
    collector: ClassVar[Callable[..., bytes]]
    uses_lookback: ClassVar[bool] = False

    def collect(
        self, *, settings: Mapping[str, str], secrets: Mapping[str, str], http: httpx.Client
    ) -> list[Collected]:
        """The document, fetched with the configuration read from settings and secrets."""
        config = self.configure(settings, secrets)
        if self.uses_lookback:
            data = self.collector(http, config, since=lookback_start(settings))
        else:
            data = self.collector(http, config)
        return [collected(self.kind, data)]


class MicrosoftLiveConnector(LiveApiConnector):
    """Collects from a Microsoft API with an app registration (see :func:`microsoft_config`)."""

    configure = staticmethod(microsoft_config)


class OktaLiveConnector(LiveApiConnector):
    """Collects from the Okta management API with an API token (see :func:`okta_config`)."""

    configure = staticmethod(okta_config)

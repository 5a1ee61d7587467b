"""The live-collection helpers, against recorded responses served by httpx.MockTransport.

Also holds the helpers the identity and cloud connector tests share: the
recorded API server, normalization of a fixture, detection over the shared
samples, and the Hypothesis mutation strategy used for fuzzing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import strategies as st

from claimready.connectors import live
from claimready.connectors.base import Connector, EvidenceFile, JsonMarkerConnector, Normalized
from claimready.connectors.files import ZIP_SIGNATURE
from claimready.connectors.live import (
    MicrosoftConfig,
    OktaConfig,
    RetryPolicy,
    collect_odata,
    collect_okta_list,
    endpoint_name,
    fetch_microsoft_token,
    send,
)
from claimready.connectors.registry import all_connectors
from claimready.errors import CollectionError, InputError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MICROSOFT = ASSETS / "microsoft"
OKTA = ASSETS / "okta"
AWS = ASSETS / "aws"
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
COLLECTED = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SECRET = "s3cr3t-client-value"  # noqa: S105 - a recorded, fake credential
API_TOKEN = "00TOKENokta-api-token-value"  # noqa: S105 - a recorded, fake credential
BEARER = "recorded.bearer.token"
GRAPH = "https://graph.microsoft.com"
LOGIN = "https://login.microsoftonline.com"
ORG = "https://contoso.okta.com"

MY_KINDS = frozenset(
    {
        "defender_alerts",
        "intune",
        "entra_registration",
        "entra_signins",
        "okta_users",
        "okta_logs",
        "aws_iam",
        "aws_securityhub",
    }
)


# Shared helpers --------------------------------------------------------------------------


def normalize_path(
    connector: Connector, path: Path, observed_at: datetime | None = None
) -> Normalized:
    """Normalize a file with the fixed collection time."""
    evidence = EvidenceFile(path=path, display_name=path.name, size=path.stat().st_size)
    return connector.normalize(evidence, observed_at=observed_at, collected_at=COLLECTED)


def normalize_bytes(connector: Connector, data: bytes, name: str) -> Normalized:
    """Normalize bytes written to a temporary file called ``name``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        return normalize_path(connector, path)


def facts_of(result: Normalized, signal: str) -> dict[str, Any]:
    """``asset key -> value`` for a signal emitted once per asset."""
    found: dict[str, Any] = {}
    for fact in result.facts:
        if fact.signal == signal:
            assert fact.asset_key not in found, f"{signal} twice for {fact.asset_key}"
            found[fact.asset_key] = fact.value
    return found


def assert_well_formed(result: Normalized) -> None:
    """Every fact's asset is observed, and every observation has identifiers."""
    keys = {o.key for o in result.observations}
    assert {f.asset_key for f in result.facts} <= keys
    assert all(o.identifiers for o in result.observations)
    assert all(f.observed_at.tzinfo is not None for f in result.facts)


def shared_sample_files() -> list[Path]:
    """Every file in the shared samples folder (the formats of every other connector)."""
    if not SAMPLES.is_dir():
        pytest.fail(f"samples missing: {SAMPLES}")
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file())


def detected_kinds(path: Path) -> list[str]:
    """The kinds of every registered connector that claims ``path``."""
    head = path.read_bytes()[:4096]
    return sorted(k for k, c in all_connectors().items() if c.detect(name=path.name, head=head))


def test_no_shared_sample_is_claimed_by_an_identity_or_cloud_connector() -> None:
    for path in shared_sample_files():
        claimed = set(detected_kinds(path)) & MY_KINDS
        assert not claimed, f"{path.name} claimed by {claimed}"


_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.just([]),
    st.just({}),
    st.lists(st.integers(), max_size=2),
)


def _paths(value: Any, into: list[tuple[Any, Any]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            into.append((value, key))
            _paths(item, into)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            into.append((value, index))
            _paths(item, into)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with flipped bytes, cut short, or (for JSON) one value of another type."""
    how = draw(st.sampled_from(("flip", "truncate", "swap", "swap")))
    if how == "truncate":
        return data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if how == "swap":
        try:
            document = json.loads(data)
        except ValueError:
            how = "flip"
        else:
            spots: list[tuple[Any, Any]] = []
            _paths(document, spots)
            if spots:
                container, key = spots[draw(st.integers(0, len(spots) - 1))]
                container[key] = draw(_JSON_VALUES)
            return json.dumps(document).encode()
    buffer = bytearray(data)
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        position = draw(st.integers(min_value=0, max_value=len(buffer) - 1))
        buffer[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
    return bytes(buffer)


def only_input_errors(connector: Connector, data: bytes, name: str) -> None:
    """Normalizing ``data`` either succeeds with well-formed output or raises InputError."""
    try:
        result = normalize_bytes(connector, data, name)
    except InputError as exc:
        assert exc.file is not None and exc.file.startswith(name)
        return
    assert_well_formed(result)


# A recorded API server -------------------------------------------------------------------


Responder = Callable[[httpx.Request], httpx.Response]


@dataclass
class RecordedApi:
    """Serves recorded responses by path; pages a fixture's items; records every request."""

    routes: dict[str, Responder] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    queued: dict[str, list[httpx.Response]] = field(default_factory=dict)
    sleeps: list[float] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler."""
        self.requests.append(request)
        path = request.url.path
        if self.queued.get(path):
            return self.queued[path].pop(0)
        if path not in self.routes:
            return httpx.Response(404, json={"error": {"code": "NotFound", "message": path}})
        return self.routes[path](request)

    def client(self) -> httpx.Client:
        """An httpx client whose transport is this recorded server."""
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def sleep(self, seconds: float) -> None:
        """Record a wait instead of waiting."""
        self.sleeps.append(seconds)

    def queue(self, path: str, *responses: httpx.Response) -> None:
        """Answer the next requests for ``path`` with ``responses`` first."""
        self.queued.setdefault(path, []).extend(responses)

    def serve_token(self, tenant: str = "contoso-tenant") -> None:
        """The Microsoft identity platform token endpoint, checking the grant."""

        def token(request: httpx.Request) -> httpx.Response:
            form = parse_qs(request.content.decode())
            assert form["grant_type"] == ["client_credentials"]
            assert form["client_secret"] == [SECRET]
            body = json.loads((MICROSOFT / "token_response.json").read_text())
            body["scope_seen"] = form["scope"][0]
            return httpx.Response(200, json=body)

        self.routes[f"/{tenant}/oauth2/v2.0/token"] = token

    def serve_odata(self, path: str, fixture: Path, *, page_size: int = 2) -> None:
        """The fixture's ``value`` items in pages linked by ``@odata.nextLink``."""
        document = json.loads(fixture.read_text())
        items = document["value"]

        def page(request: httpx.Request) -> httpx.Response:
            assert request.headers["Authorization"].startswith("Bearer ")
            start = int(request.url.params.get("$skiptoken", "0"))
            body: dict[str, Any] = {
                "@odata.context": document["@odata.context"],
                "value": items[start : start + page_size],
            }
            if start + page_size < len(items):
                url = request.url.copy_with(query=None)
                body["@odata.nextLink"] = f"{url}?$skiptoken={start + page_size}"
            return httpx.Response(200, json=body)

        self.routes[path] = page

    def serve_okta(self, path: str, items: list[Any], *, page_size: int = 2) -> None:
        """Okta-style pages linked by ``Link: <...>; rel="next"`` headers."""

        def page(request: httpx.Request) -> httpx.Response:
            assert request.headers["Authorization"] == f"SSWS {API_TOKEN}"
            start = int(request.url.params.get("after", "0"))
            headers = {"Link": f'<{request.url.copy_with(query=None)}>; rel="self"'}
            if start + page_size < len(items):
                nxt = request.url.copy_with(query=None).copy_merge_params(
                    {"after": str(start + page_size)}
                )
                headers["Link"] += f', <{nxt}>; rel="next"'
            return httpx.Response(200, json=items[start : start + page_size], headers=headers)

        self.routes[path] = page


def microsoft_config(**overrides: Any) -> MicrosoftConfig:
    """A config for the recorded tenant."""
    values: dict[str, Any] = {
        "tenant_id": "contoso-tenant",
        "client_id": "11111111-2222-3333-4444-555555555555",
        "client_secret": SECRET,
        "retry": RetryPolicy(attempts=5, base_delay=1.0, max_delay=60.0),
    }
    values.update(overrides)
    return MicrosoftConfig(**values)


def okta_config() -> OktaConfig:
    """A config for the recorded Okta org."""
    return OktaConfig(org_url=ORG, api_token=API_TOKEN)


@pytest.fixture
def api() -> Iterator[RecordedApi]:
    """A recorded API server."""
    yield RecordedApi()


# The helpers themselves ----------------------------------------------------------------------


def test_secrets_stay_out_of_reprs() -> None:
    config = microsoft_config()
    assert SECRET not in repr(config) and SECRET not in str(config)
    okta = okta_config()
    assert API_TOKEN not in repr(okta) and API_TOKEN not in str(okta)


def test_token_then_all_pages_are_joined(api: RecordedApi) -> None:
    api.serve_token()
    fixture = MICROSOFT / "intune_managed_devices.json"
    api.serve_odata("/v1.0/deviceManagement/managedDevices", fixture, page_size=2)
    config = microsoft_config()
    with api.client() as client:
        token = fetch_microsoft_token(client, config, scope=f"{GRAPH}/.default", sleep=api.sleep)
        data = collect_odata(
            client,
            f"{GRAPH}/v1.0/deviceManagement/managedDevices",
            token=token,
            retry=config.retry,
            sleep=api.sleep,
        )
    expected = json.loads(fixture.read_text())
    assert json.loads(data) == expected
    pages = -(-len(expected["value"]) // 2)
    assert len(api.requests) == 1 + pages
    assert api.sleeps == []


def test_429_waits_for_retry_after_then_succeeds(api: RecordedApi) -> None:
    api.serve_odata("/v1.0/things", MICROSOFT / "entra_registration.json", page_size=10)
    busy = httpx.Response(
        429,
        headers={"Retry-After": "7"},
        content=(MICROSOFT / "graph_error_429.json").read_bytes(),
    )
    api.queue("/v1.0/things", busy)
    with api.client() as client:
        data = collect_odata(
            client, f"{GRAPH}/v1.0/things", token=BEARER, retry=RetryPolicy(), sleep=api.sleep
        )
    assert api.sleeps == [7.0]
    assert len(json.loads(data)["value"]) == len(
        json.loads((MICROSOFT / "entra_registration.json").read_text())["value"]
    )


def test_retry_after_as_a_date_and_okta_reset_header(api: RecordedApi) -> None:
    api.routes["/ok"] = lambda request: httpx.Response(200, json=[])
    api.queue(
        "/ok",
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.Response(429, headers={"X-Rate-Limit-Reset": "1"}),
        httpx.Response(502),
    )
    with api.client() as client:
        response = send(client, "GET", f"{ORG}/ok", retry=RetryPolicy(), sleep=api.sleep)
    assert response.status_code == 200
    # A date in the past and a reset time in the past mean "now"; a bare 502 backs off.
    assert api.sleeps == [0.0, 0.0, 4.0]


def test_5xx_until_attempts_run_out(api: RecordedApi) -> None:
    api.routes["/down"] = lambda request: httpx.Response(503, text="unavailable")
    with api.client() as client, pytest.raises(CollectionError, match="HTTP 503 after 5"):
        send(client, "GET", f"{GRAPH}/down", retry=RetryPolicy(), sleep=api.sleep)
    assert api.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_transport_errors_are_retried(api: RecordedApi) -> None:
    failures = [httpx.ConnectTimeout("slow"), httpx.ConnectError("refused")]

    def flaky(request: httpx.Request) -> httpx.Response:
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, json={"value": []})

    client = httpx.Client(transport=httpx.MockTransport(flaky))
    with client:
        response = send(client, "GET", f"{GRAPH}/x", retry=RetryPolicy(), sleep=api.sleep)
    assert response.status_code == 200
    assert api.sleeps == [1.0, 2.0]
    always = httpx.Client(transport=httpx.MockTransport(_refuse))
    with always, pytest.raises(CollectionError, match=r"no response after 2 attempts \(Connect"):
        send(always, "GET", f"{GRAPH}/x", retry=RetryPolicy(attempts=2), sleep=api.sleep)


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused")


def test_rejected_client_secret_is_a_clear_error_without_the_secret(api: RecordedApi) -> None:
    body = (MICROSOFT / "token_error_invalid_client.json").read_bytes()
    api.routes["/contoso-tenant/oauth2/v2.0/token"] = lambda request: httpx.Response(
        401, content=body
    )
    with api.client() as client, pytest.raises(CollectionError) as caught:
        fetch_microsoft_token(client, microsoft_config(), scope="x", sleep=api.sleep)
    message = str(caught.value)
    assert "HTTP 401" in message and "credentials were rejected" in message
    assert "AADSTS7000215" in message
    assert caught.value.source == f"{LOGIN}/contoso-tenant/oauth2/v2.0/token"
    assert SECRET not in message


def test_expired_graph_token_names_the_endpoint(api: RecordedApi) -> None:
    body = (MICROSOFT / "graph_error_401.json").read_bytes()
    api.routes["/v1.0/users"] = lambda request: httpx.Response(401, content=body)
    with api.client() as client, pytest.raises(CollectionError) as caught:
        collect_odata(
            client,
            f"{GRAPH}/v1.0/users",
            token=BEARER,
            retry=RetryPolicy(),
            params={"$top": "5"},
            sleep=api.sleep,
        )
    assert str(caught.value).startswith(f"{GRAPH}/v1.0/users: HTTP 401")
    assert "Access token has expired" in str(caught.value)
    assert BEARER not in str(caught.value)
    assert api.sleeps == []


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"value": 3}', "'value' array"),
        (b"[1, 2]", "'value' array"),
    ],
)
def test_malformed_bodies(api: RecordedApi, body: bytes, match: str) -> None:
    api.routes["/v1.0/x"] = lambda request: httpx.Response(200, content=body)
    with api.client() as client, pytest.raises(CollectionError, match=match):
        collect_odata(client, f"{GRAPH}/v1.0/x", token=BEARER, retry=RetryPolicy(), sleep=api.sleep)


def test_next_link_to_another_host_is_refused(api: RecordedApi) -> None:
    api.routes["/v1.0/x"] = lambda request: httpx.Response(
        200, json={"value": [1], "@odata.nextLink": "https://evil.example/v1.0/x?page=2"}
    )
    with api.client() as client, pytest.raises(CollectionError, match="another host"):
        collect_odata(client, f"{GRAPH}/v1.0/x", token=BEARER, retry=RetryPolicy(), sleep=api.sleep)
    assert all(r.url.host == "graph.microsoft.com" for r in api.requests)


def test_endless_paging_stops(api: RecordedApi) -> None:
    api.routes["/v1.0/x"] = lambda request: httpx.Response(
        200, json={"value": [1], "@odata.nextLink": f"{GRAPH}/v1.0/x?again=1"}
    )
    with api.client() as client, pytest.raises(CollectionError, match="more than 3 pages"):
        collect_odata(
            client, f"{GRAPH}/v1.0/x", token=BEARER, retry=RetryPolicy(max_pages=3), sleep=api.sleep
        )


def test_okta_link_paging_and_errors(api: RecordedApi) -> None:
    users = json.loads((OKTA / "users.json").read_text())
    api.serve_okta("/api/v1/users", users, page_size=2)
    with api.client() as client:
        items = collect_okta_list(client, okta_config(), "/api/v1/users", sleep=api.sleep)
    assert items == users
    assert len(api.requests) == -(-len(users) // 2)
    body = (OKTA / "error_401.json").read_bytes()
    api.routes["/api/v1/groups"] = lambda request: httpx.Response(401, content=body)
    with api.client() as client, pytest.raises(CollectionError) as caught:
        collect_okta_list(client, okta_config(), "/api/v1/groups", sleep=api.sleep)
    assert "HTTP 401" in str(caught.value) and "Invalid token provided" in str(caught.value)
    assert API_TOKEN not in str(caught.value)
    api.routes["/api/v1/apps"] = lambda request: httpx.Response(200, json={"not": "a list"})
    with api.client() as client, pytest.raises(CollectionError, match="expected a JSON array"):
        collect_okta_list(client, okta_config(), "/api/v1/apps", sleep=api.sleep)


def test_endpoint_names_drop_query_and_credentials() -> None:
    assert (
        endpoint_name("https://user:pw@h.example:8443/a/b?token=x") == "https://h.example:8443/a/b"
    )


# Connectors declared on the shared classes -----------------------------------------------

MICROSOFT_LISTINGS = [
    ("defender_alerts", "/api/alerts", "defender_alerts.json", "alertCreationTime"),
    (
        "entra_registration",
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
        "entra_registration.json",
        None,
    ),
    ("entra_signins", "/v1.0/auditLogs/signIns", "entra_signins.json", "createdDateTime"),
    ("intune", "/v1.0/deviceManagement/managedDevices", "intune_managed_devices.json", None),
]


@pytest.mark.parametrize(("kind", "path", "fixture", "filtered_on"), MICROSOFT_LISTINGS)
def test_microsoft_connectors_collect_their_listing_within_the_lookback(
    api: RecordedApi,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    path: str,
    fixture: str,
    filtered_on: str | None,
) -> None:
    monkeypatch.setattr(live, "utcnow", lambda: COLLECTED)
    api.serve_token()
    api.serve_odata(path, MICROSOFT / fixture, page_size=1000)
    connector = all_connectors()[kind]
    settings = {"tenant_id": "contoso-tenant", "client_id": "app", "lookback": "2d"}
    with api.client() as client:
        (item,) = connector.collect(
            settings=settings, secrets={"client_secret": SECRET}, http=client
        )
    assert connector.live
    assert item.name == f"{kind}-20261127T120000Z.json"
    expected = json.loads((MICROSOFT / fixture).read_text())["value"]
    assert json.loads(item.data)["value"] == expected
    token, listing = api.requests
    assert token.url.path == "/contoso-tenant/oauth2/v2.0/token"
    assert listing.url.path == path
    window = None if filtered_on is None else f"{filtered_on} ge 2026-11-25T12:00:00Z"
    assert listing.url.params.get("$filter") == window


def test_json_markers_need_a_marker_or_every_field_and_never_claim_a_zip() -> None:
    intune = all_connectors()["intune"]

    def claims(head: bytes) -> bool:
        return intune.detect(name="devices.json", head=head)

    assert claims(b'{"@odata.context": "$metadata#deviceManagement/managedDevices"}')
    assert claims(b'[{"complianceState": "x", "azureADDeviceId": "y"}]')
    assert claims(b'[{"complianceState": "x", "managedDeviceOwnerType": "y"}]')
    assert not claims(b'[{"complianceState": "x"}]')
    assert not claims(b'[{"azureADDeviceId": "y", "managedDeviceOwnerType": "z"}]')
    assert not claims(b'[{"complianceState": "x", azureADDeviceId: "y"}]')
    assert not claims(ZIP_SIGNATURE + b"$metadata#deviceManagement/managedDevices")

    class Undeclared(JsonMarkerConnector):
        def normalize(
            self, evidence: EvidenceFile, *, observed_at: datetime | None, collected_at: datetime
        ) -> Normalized:
            raise NotImplementedError

    assert not Undeclared().detect(name="any.json", head=b'{"value": []}')


def test_okta_connectors_collect_with_the_api_token_and_the_lookback(
    api: RecordedApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "utcnow", lambda: COLLECTED)
    api.serve_okta("/api/v1/users", [{"id": "u1"}])
    api.serve_okta("/api/v1/users/u1/factors", [{"factorType": "push"}])
    api.serve_okta("/api/v1/logs", [{"eventType": "user.session.start"}])
    settings = {"org_url": ORG, "lookback": "3h"}
    secrets = {"api_token": API_TOKEN}
    connectors = all_connectors()
    with api.client() as client:
        (users,) = connectors["okta_users"].collect(settings=settings, secrets=secrets, http=client)
        (logs,) = connectors["okta_logs"].collect(settings=settings, secrets=secrets, http=client)
    assert users.name == "okta_users-20261127T120000Z.json"
    assert json.loads(users.data) == {
        "users": [{"id": "u1"}],
        "factors": {"u1": [{"factorType": "push"}]},
    }
    assert logs.name == "okta_logs-20261127T120000Z.json"
    assert json.loads(logs.data) == [{"eventType": "user.session.start"}]
    (listing,) = [r for r in api.requests if r.url.path == "/api/v1/logs"]
    assert listing.url.params["since"] == "2026-11-27T09:00:00Z"
    assert all("since" not in r.url.params for r in api.requests if r.url.path != "/api/v1/logs")

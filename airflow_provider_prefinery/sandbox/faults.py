"""Latency, rate limits, fault injection and the request log: one pure-ASGI middleware over the APIs.

Behaviour is a set of rules keyed by (api, target); a target is a route name (``list_users``), a rate-limit
group (``projects``), an endpoint class (``list``, ``read``, ``write``, ``auth``) or ``*``, and the most
specific rule that sets a field wins. Defaults are Prefinery's documented limits. Pure ASGI rather than
``BaseHTTPMiddleware`` because it is several times cheaper per request and can drop a connection.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox.spec import Endpoint
from airflow_provider_prefinery.sandbox.wire import credential, render

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "429", "drop", "slow", "500_after_write")
RULE_FIELDS: tuple[str, ...] = ("latency_ms", "faults", "retry_after", "slow_seconds", "rate_limit")
LOG_SIZE = 100_000
MAILCHIMP_MAX_IN_FLIGHT = 10


def default_rules() -> dict[tuple[str, str], dict[str, Any]]:
    """Prefinery's documented limits [doc]; writes and the other APIs unlimited until a test says so."""
    minute = {"limit": 60, "per_seconds": 60}
    return {
        ("prefinery", "projects"): {"rate_limit": {"limit": 90, "per_seconds": 900}},
        ("prefinery", "list_users"): {"rate_limit": {**minute, "per_project": True}},
        ("prefinery", "list_rewards"): {"rate_limit": dict(minute)},
        ("prefinery", "list_points"): {"rate_limit": dict(minute)},
    }


@dataclass(frozen=True)
class Effective:
    """The settings that apply to one endpoint, resolved from the rules (cached until a rule changes)."""

    latency_ms: float = 0.0
    faults: tuple[tuple[str, float], ...] = ()
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    rate_limit: dict[str, Any] | None = None
    limit_target: str | None = None


class Behaviour:
    """All of the server's behaviour knobs and what they did (counters, request log)."""

    def __init__(self, *, scale: float = 1.0, fault_seed: int | None = None) -> None:
        self.default_scale = scale
        self.default_seed = fault_seed
        self.reset()
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.in_flight: Counter[str] = Counter()

    def reset(self) -> None:
        """Rules, limits, counters and the random stream back to start-up values (the log is kept)."""
        self.rules = default_rules()
        self.scale = self.default_scale
        self.rng = random.Random(self.default_seed)
        self.max_in_flight = MAILCHIMP_MAX_IN_FLIGHT
        self.buckets: dict[tuple[Any, ...], deque[float]] = {}
        self.counters: Counter[str] = Counter()
        self._cache: dict[tuple[str, str], Effective] = {}

    def configure(
        self,
        *,
        scale: float | None = None,
        fault_seed: int | None = None,
        mailchimp_max_in_flight: int | None = None,
    ) -> None:
        if scale is not None:
            if scale <= 0:
                raise ValueError("scale must be positive")
            self.scale = scale
            self.buckets.clear()
        if fault_seed is not None:
            self.rng = random.Random(fault_seed)
        if mailchimp_max_in_flight is not None:
            self.max_in_flight = mailchimp_max_in_flight

    def set_rule(self, api: str, target: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the rule for (api, target); ``rate_limit=None`` means unlimited."""
        unknown = set(fields) - set(RULE_FIELDS)
        if unknown:
            raise ValueError(f"unknown behaviour fields {sorted(unknown)}")
        bad = set(fields.get("faults") or {}) - set(FAULT_KINDS)
        if bad:
            raise ValueError(f"unknown fault kinds {sorted(bad)}; known: {', '.join(FAULT_KINDS)}")
        if sum((fields.get("faults") or {}).values()) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        rule = self.rules.setdefault((api, target), {})
        rule.update(fields)
        self._cache.clear()
        self.buckets = {k: v for k, v in self.buckets.items() if k[:2] != (api, target)}
        return rule

    def effective(self, spec: Endpoint) -> Effective:
        found = self._cache.get((spec.api, spec.name))
        if found is None:
            found = self._cache[(spec.api, spec.name)] = self._resolve(spec)
        return found

    def _resolve(self, spec: Endpoint) -> Effective:
        values: dict[str, Any] = {}
        for target in spec.targets:
            rule = self.rules.get((spec.api, target), {})
            for name in RULE_FIELDS:
                if name in rule and name not in values:
                    values[name] = rule[name]
                    if name == "rate_limit":
                        values["limit_target"] = target
        faults = tuple((k, float(p)) for k, p in (values.pop("faults", None) or {}).items() if p)
        values = {k: v for k, v in values.items() if v is not None or k == "rate_limit"}
        return Effective(faults=faults, **values)

    def take(self, spec: Endpoint, eff: Effective, cred: str | None, beta_id: Any) -> float | None:
        """Count one request against its limit; return seconds to wait when over it, else None."""
        limit = eff.rate_limit
        if not limit:
            return None
        owner = beta_id if limit.get("per_project") else cred
        bucket = self.buckets.setdefault((spec.api, eff.limit_target, owner), deque())
        now = time.monotonic()
        window = float(limit["per_seconds"])
        while bucket and bucket[0] <= now - window:
            bucket.popleft()
        allowed = max(1, math.floor(float(limit["limit"]) * self.scale))
        if len(bucket) >= allowed:
            return bucket[0] + window - now
        bucket.append(now)
        return None

    def draw(self, eff: Effective) -> str | None:
        """Pick at most one fault for this request, by the configured probabilities."""
        if not eff.faults:
            return None
        roll, edge = self.rng.random(), 0.0
        for kind, probability in eff.faults:
            edge += probability
            if roll < edge:
                return kind
        return None

    def record(self, entry: dict[str, Any]) -> None:
        self.log.append(entry)
        if entry.get("fault"):
            self.counters[f"fault:{entry['fault']}"] += 1

    def stats(self) -> dict[str, Any]:
        faults = {k.split(":", 1)[1]: v for k, v in self.counters.items() if k.startswith("fault:")}
        return {
            "requests": len(self.log),
            "faults": {k: faults.get(k, 0) for k in FAULT_KINDS},
            "rate_limited": self.counters["rate_limited"],
            "in_flight_rejected": self.counters["in_flight_rejected"],
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "mailchimp_max_in_flight": self.max_in_flight,
            "rules": [{"api": a, "target": t, **r} for (a, t), r in sorted(self.rules.items())],
        }


class Matcher:
    """Find the endpoint of a request with Starlette's own path compiler, over the same route table."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.routes = [(spec, *compile_path(spec.path)) for spec in endpoints]
        self._cache: dict[tuple[str, str], tuple[Endpoint | None, dict[str, Any]]] = {}

    def match(self, method: str, path: str) -> tuple[Endpoint | None, dict[str, Any]]:
        key = (method, path)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._match(method, path)
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def _match(self, method: str, path: str) -> tuple[Endpoint | None, dict[str, Any]]:
        for spec, regex, _fmt, convertors in self.routes:
            found = regex.match(path)
            if found and spec.method == method:
                return spec, {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
        return None, {}


def api_of(path: str) -> str:
    if path.startswith("/3.0"):
        return "mailchimp"
    if path.startswith(("/api/v3", "/oauth")):
        return "piggy"
    return "prefinery"


class FaultMiddleware:
    """Wrap the app: in-flight limit, latency, rate limits, faults, then the request log."""

    def __init__(self, app: ASGIApp, behaviour: Behaviour, endpoints: list[Endpoint]) -> None:
        self.app = app
        self.behaviour = behaviour
        self.matcher = Matcher(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        spec, params = self.matcher.match(scope["method"], scope["path"])
        api = spec.api if spec else api_of(scope["path"])
        entry: dict[str, Any] = {
            "api": api,
            "endpoint": spec.name if spec else None,
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": (scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
            "status": 0,
            "fault": None,
            "time": time.time(),
        }
        started = time.perf_counter()
        try:
            if spec is None:
                await self.app(scope, receive, _capture(send, entry))
            else:
                await self._serve(spec, params, scope, receive, send, entry)
        finally:
            entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
            self.behaviour.record(entry)

    async def _serve(
        self,
        spec: Endpoint,
        params: dict[str, Any],
        scope: Scope,
        receive: Receive,
        send: Send,
        entry: dict[str, Any],
    ) -> None:
        b = self.behaviour
        cred = credential(spec.api, scope["headers"], scope["query_string"])
        flight = f"{spec.api}:{cred}"
        b.in_flight[flight] += 1
        try:
            if spec.api == "mailchimp" and b.in_flight[flight] > b.max_in_flight:
                b.counters["in_flight_rejected"] += 1
                msg = f"You have more than {b.max_in_flight} simultaneous connections."
                await _answer(send, spec.api, e.RateLimited(1, msg), entry)
                return
            eff = b.effective(spec)
            # Count on arrival, as a real server does; the added latency then delays every answer alike.
            wait = b.take(spec, eff, cred, params.get("beta_id"))
            if eff.latency_ms:
                await asyncio.sleep(eff.latency_ms / 1000)
            if wait is not None:
                b.counters["rate_limited"] += 1
                await _answer(send, spec.api, e.RateLimited(wait), entry)
                return
            await self._inject(b.draw(eff), eff, spec, scope, receive, send, entry)
        finally:
            b.in_flight[flight] -= 1
            if b.in_flight[flight] <= 0:
                del b.in_flight[flight]

    async def _inject(
        self,
        kind: str | None,
        eff: Effective,
        spec: Endpoint,
        scope: Scope,
        receive: Receive,
        send: Send,
        entry: dict[str, Any],
    ) -> None:
        entry["fault"] = kind
        if kind is None:
            await self.app(scope, receive, _capture(send, entry))
        elif kind in ("500", "502", "503"):
            await _answer(send, spec.api, e.InjectedFault(status=int(kind)), entry)
        elif kind == "429":
            await _answer(send, spec.api, e.RateLimited(eff.retry_after, "sandbox: injected 429"), entry)
        elif kind == "drop":
            await _drop(send)
        elif kind == "slow":
            await asyncio.sleep(eff.slow_seconds)
            await _answer(
                send, spec.api, e.InjectedFault("sandbox: slow answer, not applied", status=503), entry
            )
        else:  # 500_after_write: the write happens, the client hears a 500
            await self.app(scope, receive, _swallow)
            await _answer(send, spec.api, e.InjectedFault("sandbox: failed after applying the write"), entry)


def _capture(send: Send, entry: dict[str, Any]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            entry["status"] = message["status"]
        await send(message)

    return wrapped


async def _swallow(message: Message) -> None:
    return None


async def _answer(send: Send, api: str, err: e.SandboxError, entry: dict[str, Any]) -> None:
    status, body, content_type, headers = render(api, err)
    entry["status"] = status
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    """Close the socket without an answer. uvicorn's ``send`` is bound to its request cycle, which holds
    the transport; with another server, start a response and break it off (the client still gets no
    usable answer)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        transport.abort()
        cycle.disconnected = True  # type: ignore[union-attr]
        await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    raise ConnectionAbortedError("sandbox: dropped connection")

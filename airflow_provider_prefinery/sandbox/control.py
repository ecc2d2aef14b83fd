"""The ``/_sandbox/`` control API: seed, inspect, simulate activity, set permissions, schedules, behaviour.

No auth, but loopback callers only. Validation errors answer 422 (FastAPI), domain refusals 400 with
``{"detail": ...}``. ``client.SandboxControl`` is the Python face of these routes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, field_validator

from airflow_provider_prefinery.sandbox import errors as e
from airflow_provider_prefinery.sandbox import seeds
from airflow_provider_prefinery.sandbox.faults import Behaviour
from airflow_provider_prefinery.sandbox.piggy.state import PiggyRejection
from airflow_provider_prefinery.sandbox.prefinery.state.schedules import Schedule, Target, due_in
from airflow_provider_prefinery.sandbox.spec import Api
from airflow_provider_prefinery.sandbox.state import Store

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})
T = TypeVar("T")


def loopback_only(request: Request) -> None:
    if request.client is not None and request.client.host not in LOOPBACK:
        raise HTTPException(403, "the sandbox control API answers loopback callers only")


class SeedIn(BaseModel):
    seed: str = "demo"

    @field_validator("seed")
    @classmethod
    def known_seed(cls, value: str) -> str:
        if value not in seeds.SEEDS:
            raise ValueError(f"unknown seed {value!r}; choose one of {', '.join(seeds.SEEDS)}")
        return value


class KeyIn(BaseModel):
    key: str = Field(min_length=1)
    permissions: list[str] | None = None
    api_access: bool = True
    account: str = seeds.DEFAULT_ACCOUNT


class StatusIn(BaseModel):
    status: str
    beta_id: int = seeds.DEMO_BETA_ID


class ScheduleIn(BaseModel):
    target: Target
    status: str
    beta_id: int = seeds.DEMO_BETA_ID
    id: int | None = None
    email: str | None = None
    descriptor: str = "referral-bonus"
    after_reads: int | None = Field(default=None, ge=0)
    after_seconds: float | None = Field(default=None, ge=0)


class MemberIn(BaseModel):
    email: str
    status: str | None = None
    merge_fields: dict[str, Any] | None = None
    last_changed: str | None = None
    list_id: str = seeds.DEMO_LIST_ID


class BehaviourIn(BaseModel):
    api: Api
    target: str = "*"
    latency_ms: float | None = Field(default=None, ge=0)
    faults: dict[str, float] | None = None
    retry_after: float | None = Field(default=None, ge=0)
    slow_seconds: float | None = Field(default=None, ge=0)
    rate_limit: dict[str, Any] | None = None


class ConfigIn(BaseModel):
    scale: float | None = Field(default=None, gt=0)
    fault_seed: int | None = None
    mailchimp_max_in_flight: int | None = Field(default=None, ge=1)


class RejectIn(BaseModel):
    contact_uuid: str | None = None
    email: str | None = None
    status: int = 422
    code: int = 60015
    message: str = "Automation run rejected for this contact."


def build_router(store: Store, behaviour: Behaviour) -> APIRouter:
    """The control routes over this process's store and behaviour."""
    r = APIRouter(prefix="/_sandbox", dependencies=[Depends(loopback_only)], tags=["sandbox control"])

    def attempt(action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a control action; a refusal (bad value, unknown id, a domain rule) answers 400."""
        try:
            return action(*args, **kwargs)
        except (ValueError, e.SandboxError) as exc:
            detail = exc.message if isinstance(exc, e.SandboxError) else str(exc)
            raise HTTPException(400, detail) from exc

    @r.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "seed": store.seed_name, "keys": len(store.keys)}

    @r.post("/reset")
    async def reset(body: SeedIn) -> dict[str, Any]:
        """State to the seed, behaviour to defaults, request log emptied: a fresh server."""
        store.reset(body.seed)
        behaviour.reset()
        behaviour.log.clear()
        return {"seed": body.seed}

    @r.post("/seed")
    async def seed(body: SeedIn) -> dict[str, Any]:
        """Reload the data only; behaviour and the request log stay."""
        store.reset(body.seed)
        return {"seed": body.seed}

    @r.get("/state/{resource}")
    async def state(resource: str, request: Request) -> list[dict[str, Any]]:
        try:
            return store.dump(resource, dict(request.query_params))
        except ValueError as exc:
            raise HTTPException(404, str(exc)) from exc

    @r.put("/keys")
    async def put_key(body: KeyIn) -> dict[str, Any]:
        info = attempt(
            store.keys.set,
            body.key,
            permissions=body.permissions,
            api_access=body.api_access,
            account=body.account,
        )
        return {
            "account": info.account,
            "api_access": info.api_access,
            "permissions": None if info.permissions is None else sorted(info.permissions),
        }

    @r.post("/prefinery/rewards/{reward_id}/status")
    async def reward_status(reward_id: int, body: StatusIn) -> dict[str, Any]:
        return attempt(store.prefinery.rewards.force_status, body.beta_id, reward_id, body.status)

    @r.post("/prefinery/users/{user_id}/status")
    async def user_status(user_id: int, body: StatusIn) -> dict[str, Any]:
        return attempt(store.prefinery.users.force_status, body.beta_id, user_id, body.status)

    @r.post("/schedules")
    async def schedule(body: ScheduleIn) -> dict[str, Any]:
        due = None if body.after_seconds is None else due_in(body.after_seconds)
        sch = Schedule(
            target=body.target,
            status=body.status,
            beta_id=body.beta_id,
            id=body.id,
            email=body.email,
            descriptor=body.descriptor,
            after_reads=body.after_reads,
            due_at=due,
        )
        attempt(store.prefinery.schedules.add, sch)
        return {"scheduled": len(store.prefinery.schedules)}

    @r.get("/schedules")
    async def schedules() -> list[dict[str, Any]]:
        return [
            {
                "target": s.target,
                "id": s.id,
                "email": s.email,
                "status": s.status,
                "reads": s.reads,
                "after_reads": s.after_reads,
                "done": s.done,
            }
            for s in store.prefinery.schedules
        ]

    @r.post("/mailchimp/members")
    async def member(body: MemberIn) -> dict[str, Any]:
        return attempt(
            store.mailchimp.upsert_member,
            body.list_id,
            body.email,
            status=body.status,
            merge_fields=body.merge_fields,
            last_changed=body.last_changed,
        )

    @r.post("/piggy/reject")
    async def reject(body: RejectIn) -> dict[str, Any]:
        if not (body.contact_uuid or body.email):
            raise HTTPException(400, "give contact_uuid or email")
        rejection = PiggyRejection(body.status, body.code, body.message)
        uuid = attempt(
            store.piggy.reject, contact_uuid=body.contact_uuid, email=body.email, rejection=rejection
        )
        return {"contact_uuid": uuid}

    @r.get("/behaviour")
    async def get_behaviour() -> dict[str, Any]:
        return behaviour.snapshot()

    @r.post("/behaviour")
    async def set_behaviour(body: BehaviourIn) -> dict[str, Any]:
        fields = body.model_dump(include=body.model_fields_set - {"api", "target"})
        return attempt(behaviour.set_rule, body.api, body.target, **fields)

    @r.delete("/behaviour")
    async def reset_behaviour() -> dict[str, Any]:
        behaviour.reset()
        return behaviour.snapshot()

    @r.post("/config")
    async def config(body: ConfigIn) -> dict[str, Any]:
        behaviour.configure(**body.model_dump())
        return behaviour.snapshot()

    @r.get("/requests")
    async def requests_log(request: Request) -> list[dict[str, Any]]:
        wanted = {
            k: v
            for k, v in request.query_params.items()
            if k in ("api", "endpoint", "method", "status", "fault")
        }
        return [x for x in behaviour.log if all(str(x.get(k)) == v for k, v in wanted.items())]

    @r.delete("/requests")
    async def clear_requests() -> dict[str, Any]:
        behaviour.log.clear()
        return {"cleared": True}

    @r.get("/stats")
    async def stats() -> dict[str, Any]:
        return behaviour.stats()

    return r

"""The event-driven example DAG: its watcher's trigger through Airflow's own asset machinery, then a run.

The chain a triggerer and scheduler would drive, minus their processes: the DAG file is synced to the
metadata DB (which registers the watcher's trigger for the asset), the registered trigger runs against
the sandbox until a reward is earned, Airflow's ``Trigger.submit_event`` turns its event into an asset
event that queues the DAG, and ``dag.test()`` runs the DAG on that event's payload (the manual replay
path; ``dag.test()`` cannot attach asset events to a run).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_prefinery.triggers.prefinery import PrefineryEventTrigger

pytestmark = [pytest.mark.integration, pytest.mark.dag]

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags_examples"
DAG_ID = "prefinery_event_driven"
ASSET = "prefinery_reward_earned"


@pytest.fixture
def sbx(sbx: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The scaled sandbox of ``tests/dags/conftest.py``, with the example's triggers polling every 0.2 s."""
    monkeypatch.setenv("PREFINERY_EXAMPLE_POLL_INTERVAL", "0.2")
    return sbx


def sync_unpaused(airflow_db: Any) -> None:
    """Parse dags_examples/ into the DB with the DAG active, as the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    bundle = manager.get_bundle("dags-folder")
    bundle.initialize()
    bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
    assert not bag.import_errors, bag.import_errors
    for _ in range(2):  # the first sync creates the (paused) DAG; watchers register for active DAGs
        sync_bag_to_db(bag, bundle.name, bundle.version)
        with create_session() as session:
            session.query(DagModel).filter_by(dag_id=DAG_ID).update({"is_paused": False})


def registered_trigger() -> tuple[int, PrefineryEventTrigger]:
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(name=ASSET).one()
        (row,) = asset.triggers
        assert row.classpath == "airflow_provider_prefinery.triggers.prefinery.PrefineryEventTrigger"
        return row.id, PrefineryEventTrigger(**row.kwargs)


def test_the_watched_asset_schedules_the_dag_with_a_prefinery_event_trigger(airflow_db: Any) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS_FOLDER))
    assert not bag.import_errors, bag.import_errors
    (asset,) = bag.get_dag(DAG_ID).timetable.asset_condition.objects
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, PrefineryEventTrigger)
    assert watcher.trigger.resource == "rewards" and watcher.trigger.status == "earned"


def test_an_earned_reward_becomes_an_asset_event_and_the_run_delivers_it(
    sbx: Any, airflow_db: Any, run_dag: Any
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    sync_unpaused(airflow_db)
    trigger_id, trigger = registered_trigger()
    assert trigger.poll_interval == 0.2

    user = sorted(sbx.control.users(status="active"), key=lambda u: u["id"])[5]
    sbx.control.schedule("new_reward", "earned", email=user["email"], after_reads=2)  # after the baseline

    async def first_event() -> Any:
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), 15)
        finally:
            await events.aclose()

    event = asyncio.run(first_event())
    assert event.payload["item"]["user_id"] == user["id"]

    with create_session() as session:
        Trigger.submit_event(trigger_id, event, session=session)
    with create_session() as session:
        asset_id = session.query(AssetModel.id).filter_by(name=ASSET).scalar()
        (asset_event,) = session.query(AssetEvent).filter_by(asset_id=asset_id).all()
        payload = asset_event.extra["payload"]
        assert payload == json.loads(json.dumps(event.payload))
        assert session.query(AssetDagRunQueue).filter_by(target_dag_id=DAG_ID).count() == 1

    run = run_dag(DAG_ID, run_conf={"events": [payload, payload]})  # a repeated event delivers once

    assert str(run.state) == "success"
    (reward,) = sbx.control.rewards(id=payload["id"])
    assert reward["status"] == "delivered"
    delivered = [r for r in sbx.control.requests(endpoint="update_reward_status") if r["status"] == 200]
    assert len(delivered) == 1

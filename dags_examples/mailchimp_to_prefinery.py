"""Hourly: sync the Mailchimp audience members changed in the last hour into a Prefinery project.

Each run reads exactly its data interval (``since`` = data_interval_start, ``before`` =
data_interval_end), so backfills and re-runs are exact, and a re-run of an interval makes no Prefinery
request for members already in sync. The mapping is spelled out below; change it to taste.

Connections: ``mailchimp_default`` (API key; extra ``list_id`` = the audience) and ``prefinery_default``
(API key; extra ``beta_id`` = the project). Params: ``list_id`` overrides the connection's audience;
``since`` (ISO 8601) widens the first run, e.g. ``{"since": "1970-01-01T00:00:00Z"}`` for a full sync.
Against the bundled sandbox, the demo seed's audience id is ``sandbox.seeds.DEMO_LIST_ID``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.providers.common.compat.sdk import DAG, Param
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_prefinery.transfers.mailchimp_to_prefinery import MailchimpToPrefineryOperator

# Mailchimp status -> what Prefinery should hold ("user": create it or update its profile).
STATUS_ACTIONS: dict[str, str | None] = {
    "subscribed": "user",
    "unsubscribed": "suppression:Unsubscribe",
    "cleaned": "suppression:Manual",
    "pending": None,  # not confirmed yet: wait
    "transactional": None,  # never opted in to marketing
    "archived": None,  # removed from the audience, not unsubscribed
}
# Mailchimp merge field -> Prefinery profile field.
MERGE_FIELDS: dict[str, str] = {"FNAME": "first_name", "LNAME": "last_name"}

with DAG(
    dag_id="mailchimp_to_prefinery",
    description="Sync Mailchimp audience changes into Prefinery, hourly",
    # Data intervals, not bare trigger times (Airflow 3's default for cron strings): each run owns one hour.
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,  # runs share the id index: one at a time keeps it exact
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "list_id": Param(
            None, type=["null", "string"], description="Audience id (default: the connection's)"
        ),
        "since": Param(None, type=["null", "string"], description="Window start override (ISO 8601)"),
    },
    tags=["prefinery", "mailchimp", "example"],
) as dag:
    MailchimpToPrefineryOperator(
        task_id="sync_audience",
        list_id="{{ params.list_id or '' }}",
        since="{{ params.since or data_interval_start }}",
        before="{{ data_interval_end }}",
        status_actions=STATUS_ACTIONS,
        merge_fields=MERGE_FIELDS,
        max_concurrency=10,
    )

"""Nightly export: Prefinery users and rewards to Parquet files and to a SQL warehouse, then the referral
leaderboard computed in SQL.

Runs as is against the local sandbox (``prefinery-sandbox``, seed ``demo``) through ``prefinery_default``,
with the warehouse behind the connection ``prefinery_warehouse`` (any database with an Airflow SQL hook;
e.g. ``{"conn_type": "sqlite", "host": "/tmp/prefinery-warehouse.db"}`` or a ``postgres`` connection) and
the files under the ``export_root`` param (``file://``, ``s3://``, ``gs://``... through Airflow's object
storage). Parquet needs the provider's ``parquet`` extra.

1. users and rewards to ``<export_root>/<ds>/users.parquet`` and ``rewards.parquet`` (each file appears only
   once complete; the asset events of ``outlets`` carry the dated path and the row count);
2. the same rows upserted by id into ``prefinery_users`` and ``prefinery_rewards`` (created if missing);
3. ``prefinery_referral_leaderboard``: for the night's date, each project's top referrers (users whose
   ``referred_by`` names them), with the rewards they hold (earned or delivered). Re-running a night
   replaces that night's rows.

The two users exports run one after the other, as do the two rewards exports: Prefinery allows 60 LIST
users a minute per project (and 60 LIST rewards per key), and each task paces itself to that limit, so two
listings of the same resource at once would only slow each other down (100,000 users take about 70 min).
"""

from __future__ import annotations

import datetime

from airflow.providers.common.compat.sdk import DAG, Asset, Param
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from airflow_provider_prefinery.transfers.prefinery_to_object_storage import PrefineryToObjectStorageOperator
from airflow_provider_prefinery.transfers.prefinery_to_sql import PrefineryToSqlOperator

WAREHOUSE = "prefinery_warehouse"
USERS_FILES = Asset(name="prefinery_users_parquet", uri="x-prefinery-export://users/parquet")
REWARDS_FILES = Asset(name="prefinery_rewards_parquet", uri="x-prefinery-export://rewards/parquet")
LEADERBOARD = "prefinery_referral_leaderboard"

LEADERBOARD_SQL = [
    f"""CREATE TABLE IF NOT EXISTS {LEADERBOARD} (
        snapshot_date VARCHAR(10) NOT NULL, beta_id BIGINT NOT NULL, place INTEGER NOT NULL,
        user_id BIGINT NOT NULL, email TEXT, referrals INTEGER NOT NULL, rewards INTEGER NOT NULL,
        PRIMARY KEY (snapshot_date, beta_id, user_id))""",
    f"DELETE FROM {LEADERBOARD} WHERE snapshot_date = '{{{{ ds }}}}'",
    f"""INSERT INTO {LEADERBOARD} (snapshot_date, beta_id, place, user_id, email, referrals, rewards)
    SELECT '{{{{ ds }}}}', beta_id, place, user_id, email, referrals, rewards FROM (
        SELECT u.beta_id, RANK() OVER (PARTITION BY u.beta_id ORDER BY r.referrals DESC) AS place,
               u.id AS user_id, u.email, r.referrals, COALESCE(w.rewards, 0) AS rewards
        FROM (SELECT referred_by, COUNT(*) AS referrals FROM prefinery_users
              WHERE referred_by IS NOT NULL GROUP BY referred_by) r
        JOIN prefinery_users u ON u.id = r.referred_by
        LEFT JOIN (SELECT user_id, COUNT(*) AS rewards FROM prefinery_rewards
                   WHERE status IN ('earned', 'delivered') GROUP BY user_id) w ON w.user_id = u.id
    ) ranked
    WHERE place <= {{{{ params.leaderboard_size }}}}""",
]

with DAG(
    dag_id="prefinery_nightly_export",
    description="Users and rewards to Parquet and a SQL warehouse, then the referral leaderboard",
    schedule="0 2 * * *",
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["prefinery", "example", "export"],
    params={
        "export_root": Param(
            "file:///tmp/prefinery-exports", type="string", description="Folder URL of the nightly files"
        ),
        "leaderboard_size": Param(10, type="integer", minimum=1, description="Places kept per project"),
    },
) as dag:
    users_file = PrefineryToObjectStorageOperator(
        task_id="users_to_parquet",
        resource="users",
        path="{{ params.export_root }}/{{ ds }}/users.parquet",
        outlets=[USERS_FILES],
    )
    rewards_file = PrefineryToObjectStorageOperator(
        task_id="rewards_to_parquet",
        resource="rewards",
        path="{{ params.export_root }}/{{ ds }}/rewards.parquet",
        outlets=[REWARDS_FILES],
    )
    users_table = PrefineryToSqlOperator(
        task_id="users_to_warehouse", resource="users", sql_conn_id=WAREHOUSE
    )
    rewards_table = PrefineryToSqlOperator(
        task_id="rewards_to_warehouse", resource="rewards", sql_conn_id=WAREHOUSE
    )
    leaderboard = SQLExecuteQueryOperator(
        task_id="referral_leaderboard", conn_id=WAREHOUSE, sql=LEADERBOARD_SQL
    )

    users_file >> users_table >> leaderboard
    rewards_file >> rewards_table >> leaderboard

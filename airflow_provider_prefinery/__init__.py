"""Apache Airflow provider for Prefinery, with Mailchimp and Piggy hooks and a local sandbox."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Describe the provider to Airflow (the ``apache_airflow_provider`` entry point)."""
    from airflow_provider_prefinery.provider_info import provider_info

    return provider_info()

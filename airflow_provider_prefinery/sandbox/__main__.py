"""``python -m airflow_provider_prefinery.sandbox``: the same as the ``prefinery-sandbox`` console script."""

from airflow_provider_prefinery.sandbox.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

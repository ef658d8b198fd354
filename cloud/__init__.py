"""The cloud side: ingest, work orders and the API (see the cloud issue)."""

"""The HTTP API (FastAPI): work orders, devices, events, resident reports (Open311), stats, live feed."""

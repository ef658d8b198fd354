# One image for every part; the command picks the daemon (sc edge run, sc sim run, ...).
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sc ./sc
COPY edge ./edge
COPY cloud ./cloud
COPY devices ./devices
COPY firmware-sim ./firmware-sim
COPY configs ./configs
COPY alembic.ini ./
RUN pip install --no-cache-dir ".[edge,cloud,sim]"
ENTRYPOINT ["sc"]

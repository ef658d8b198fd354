"""The cloud's SQL data layer: models, engine, migrations."""

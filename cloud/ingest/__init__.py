"""The ingester: MQTT shared subscription in, validated rows out (SQL, InfluxDB)."""

"""The edge gateway: sensors, outbox, MQTT forwarding (gates and garage come later)."""

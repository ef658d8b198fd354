"""Simulated devices: Modbus RTU sensors on pseudo-terminals, MQTT-native sensors, scenarios."""

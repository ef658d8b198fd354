"""Garages in the cloud: the live state the garage gateways publish, for the control room's map."""

"""Work orders: the catalogue of categories, the state machine, routing, and the data layer."""

"""Device drivers and device models the edge talks to: register maps, default rules, buses."""

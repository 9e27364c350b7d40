"""Game services: the producers of the events the hub carries."""

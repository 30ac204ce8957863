"""Real Linux drives the RTL: the UML vhost-user bridge (`make linux`, sim/linux/)."""

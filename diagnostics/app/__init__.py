"""The monitor's use cases (plan, handle a check, resolve references, notify, diagnose, health) and
the container that gives them their dependencies. Use cases never build clients."""

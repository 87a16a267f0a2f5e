"""The embedded local stack: moto as AWS, the API, the bridge and the provider stand-ins on loopback
ports, and the ``callflow demo`` and ``callflow serve`` commands built on it."""

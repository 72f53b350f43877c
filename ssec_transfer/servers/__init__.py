"""Real S3 servers with SSE-C on loopback, for the demo, the tests and the benchmarks.

Each server is started by the project's own code on free loopback ports, speaks HTTPS with a
throwaway CA, and is described to clients by a :class:`ServerInfo`.
"""

from ssec_transfer.servers.base import ServerInfo

__all__ = ["ServerInfo"]

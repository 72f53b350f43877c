"""Running `watch` as a service: systemd's notify protocol, Prometheus metrics and the health
check, and the unit file that ties them together.

Each module is a `apps.watch_observer.WatchObserver` (or serves one); `cli.watch_service`
builds them from the command line. Nothing here imports the engine or the S3 stack.
"""

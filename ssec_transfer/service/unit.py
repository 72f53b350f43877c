"""The systemd unit for `watch`, as `ssec-transfer watch --print-systemd-unit` prints it and
docs/ssec-transfer-watch.service holds it (a test keeps the two equal).

Its stop timing follows the watch's stop semantics: systemd sends SIGTERM once, the watch
drains for `--drain-timeout`, then aborts what is still in flight; `TimeoutStopSec` leaves
`STOP_MARGIN` on top for the aborts before systemd resorts to SIGKILL.
"""

from __future__ import annotations

DEFAULT_EXECUTABLE = "/usr/local/bin/ssec-transfer"
DRAIN_TIMEOUT = 60  # seconds, the unit's --drain-timeout
STOP_MARGIN = 30  # seconds after the drain for aborting multipart uploads and closing state
WATCHDOG_SEC = 120  # a poll that has not gone round for this long is a hung watch
METRICS_PORT = 9464  # the port Prometheus's exporter list gives to ad-hoc exporters
# Exit codes that are a clean stop besides 0 (a drain that completed): 143 is 128 + SIGTERM,
# the code of a watch stopped by a second SIGTERM (cli.signals). One constant to change.
SUCCESS_EXIT_STATUS = (143,)
# Exit codes a restart cannot fix: 2 a bad option or key file, 3 a key the bucket refuses.
RESTART_PREVENT_EXIT_STATUS = (2, 3)

_UNIT = """\
# ssec-transfer watch as a systemd service: uploads each new file in /srv/outbox, once, to
# s3://bucket/incoming/ under an SSE-C key that never appears in this file or in argv.
#
#   useradd --system --home-dir /var/lib/ssec-transfer-watch --shell /usr/sbin/nologin ssec-ingest
#   install -d -m 0700 /etc/ssec-transfer
#   ssec-transfer keygen /etc/ssec-transfer/sse-c.key      # or copy the key there, mode 0600
#   printf '[default]\\naws_access_key_id = ...\\naws_secret_access_key = ...\\n' \\
#       > /etc/ssec-transfer/aws-credentials && chmod 0600 /etc/ssec-transfer/aws-credentials
#   ssec-transfer watch --print-systemd-unit > /etc/systemd/system/ssec-transfer-watch.service
#   # edit ExecStart (folder, bucket), AWS_ENDPOINT_URL, User/Group, ReadWritePaths
#   systemctl daemon-reload && systemctl enable --now ssec-transfer-watch
#   systemctl status ssec-transfer-watch     # STATUS: uploading 1, waiting 4, last success ...
#   journalctl -u ssec-transfer-watch -f     # one line per event
#   curl -s localhost:{metrics_port}/healthz localhost:{metrics_port}/metrics

[Unit]
Description=ssec-transfer watch: upload new files in /srv/outbox to S3 with SSE-C
Wants=network-online.target
After=network-online.target
# Give up after 5 failed starts in 10 minutes (a wrong endpoint does not fix itself).
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
# READY=1 once the folder was scanned and the endpoint reached; WATCHDOG=1 as polls go round;
# STOPPING=1 at SIGTERM; a STATUS= line for `systemctl status`. Only from the main process.
Type=notify
NotifyAccess=main
# A large folder's first scan may take a while before READY=1.
TimeoutStartSec=300
WatchdogSec={watchdog_sec}

# Keys: systemd copies them into a private, non-swappable directory only this service can
# read, named by $CREDENTIALS_DIRECTORY (%d in this file), and removes them at stop.
LoadCredential=sse-c.key:/etc/ssec-transfer/sse-c.key
# The S3 access key the same way (drop these two lines if they come from elsewhere: the
# unit does not start while a credential file is missing).
LoadCredential=aws-credentials:/etc/ssec-transfer/aws-credentials
Environment=AWS_SHARED_CREDENTIALS_FILE=%d/aws-credentials
Environment=AWS_ENDPOINT_URL=https://s3.example.com
# The ledger (which key protects which object) in the state directory, not in a home.
Environment=XDG_DATA_HOME=%S/ssec-transfer-watch
StateDirectory=ssec-transfer-watch
StateDirectoryMode=0700

ExecStart={executable} watch /srv/outbox s3://bucket/incoming/ \\
    --key-file %d/sse-c.key \\
    --state %S/ssec-transfer-watch/state.sqlite \\
    --drain-timeout {drain_timeout} \\
    --metrics-port {metrics_port}

# Stop: systemd sends SIGTERM once; the watch takes no new files, lets uploads in flight
# finish for up to --drain-timeout, aborts what is left and exits. systemd waits the drain
# plus a margin for the aborts before SIGKILL.
# {success_meaning}
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={timeout_stop_sec}
SuccessExitStatus={success_exit_status}
Restart=on-failure
RestartSec=10
RestartPreventExitStatus={restart_prevent}

# A fixed system user that may read (and, for --on-success delete|move, change) the files
# the producer writes, e.g. both in one group. DynamicUser=yes is not used: files it moves
# or creates would belong to a UID that is recycled after the service stops.
User=ssec-ingest
Group=ssec-ingest
UMask=0077

# Hardening: read-only system, no privileges, no devices, only IP and local sockets (the
# journal and the notify socket are AF_UNIX). MemoryDenyWriteExecute= is left out: libffi
# closures (cffi, ctypes callbacks) need writable executable memory on some systems.
ReadWritePaths=/srv/outbox
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
AmbientCapabilities=

[Install]
WantedBy=multi-user.target
"""


def render_unit(executable: str = DEFAULT_EXECUTABLE) -> str:
    """The unit file, with `executable` as the command to start."""
    codes = " ".join(str(c) for c in SUCCESS_EXIT_STATUS)
    return _UNIT.format(
        executable=executable,
        drain_timeout=DRAIN_TIMEOUT,
        metrics_port=METRICS_PORT,
        watchdog_sec=WATCHDOG_SEC,
        timeout_stop_sec=DRAIN_TIMEOUT + STOP_MARGIN,
        success_exit_status=codes,
        success_meaning=f"Clean exits: 0, the drain completed; {codes}, a second SIGTERM "
        "aborted what was in flight.",
        restart_prevent=" ".join(str(c) for c in RESTART_PREVENT_EXIT_STATUS),
    )

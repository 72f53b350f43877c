"""A throwaway CA and a leaf certificate for loopback, made fresh for every server start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path  # what clients verify with (botocore verify=, AWS_CA_BUNDLE)
    cert: Path  # leaf certificate chain
    key: Path  # leaf private key (mode 0600)
    combined: Path  # certificate chain and key in one PEM (Ceph's beast frontend wants this)


def make_tls(directory: Path) -> TLSFiles:
    """Write a CA and a leaf for 127.0.0.1, localhost and ::1 into `directory`."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)  # private keys live here; never readable by others, even briefly
    ca = trustme.CA(organization_name="ssec-transfer throwaway test CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost", "::1")
    files = TLSFiles(
        ca_cert=directory / "ca.pem",
        cert=directory / "server.crt",
        key=directory / "server.key",
        combined=directory / "server.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    cert_chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    files.cert.write_bytes(cert_chain)
    files.combined.write_bytes(cert_chain + leaf.private_key_pem.bytes())
    files.combined.chmod(0o600)
    return files

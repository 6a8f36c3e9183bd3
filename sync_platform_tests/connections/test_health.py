"""Health reports: reachability, latency, server version and tunnel state; failures say where; no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sync_platform.connections.health import HealthReport, check, check_all
from sync_platform_tests.connections.helpers import registry_for
from sync_platform_tests.stack import ConfigDir, free_port

SECRETS = ("Src-Pa55/w@rd", "Dw-Pa55:w0rd", "S3-s3cr3t-Key+/=")


def _rewrite(config: ConfigDir, edit) -> None:  # type: ignore[no-untyped-def]
    document = yaml.safe_load(config.connections_file.read_text())
    edit(document)
    config.write("connections.yml", document)


def _assert_no_secret(reports: list[HealthReport]) -> None:
    text = json.dumps([r.as_dict() for r in reports]) + repr(reports)
    for secret in SECRETS:
        assert secret not in text


def test_live_services_are_healthy_with_version_and_latency(make_config_dir):
    config = make_config_dir(staging="s3")
    with registry_for(config) as registry:
        reports = {r.name: r for r in check_all(registry)}
    source, target, staging = reports[config.source], reports[config.target], reports[config.staging]
    assert all(r.ok and r.error is None for r in reports.values()), reports
    assert source.kind == "mysql" and "MariaDB" in (source.server_version or "")
    assert target.kind == "postgres" and (target.server_version or "").startswith("PostgreSQL")
    assert staging.kind == "s3" and config.staging_location in staging.endpoint
    for report in reports.values():
        assert report.latency_ms is not None and 0 < report.latency_ms < 5000
        assert report.tunnel is None


def test_local_staging_is_healthy_when_its_directory_is_writable(make_config_dir):
    config = make_config_dir(mysql=False, postgres=False)
    with registry_for(config) as registry:
        report = check(registry, config.staging)
    assert report.ok and report.kind == "local"
    assert report.endpoint == config.staging_location
    assert Path(config.staging_location).is_dir()


def test_tunnelled_connections_report_their_bastion(make_config_dir, sshd):
    config = make_config_dir(tunnel=True)
    with registry_for(config) as registry:
        source, target = check(registry, config.source), check(registry, config.target)
        assert registry.tunnels.active() == []  # closed again after the check
    for report in (source, target):
        assert report.ok, report.error
        assert report.tunnel == f"{sshd.username}@{sshd.host}:{sshd.port}: open (1 user)"
        assert f"via SSH bastion {sshd.username}@{sshd.host}:{sshd.port}" in report.endpoint


def test_closed_ports_are_reported_with_address_and_what_to_check(make_config_dir):
    config = make_config_dir()
    mysql_port, pg_port = free_port(), free_port()

    def point_at_closed_ports(doc: dict) -> None:  # type: ignore[type-arg]
        doc["connections"]["sources"][config.source]["port"] = mysql_port
        doc["connections"]["targets"][config.target]["port"] = pg_port

    _rewrite(config, point_at_closed_ports)
    with registry_for(config) as registry:
        source, target = check(registry, config.source), check(registry, config.target)
    assert not source.ok and not target.ok
    assert source.latency_ms is None and source.server_version is None
    assert f"127.0.0.1:{mysql_port}" in (source.error or "")
    assert "check that MySQL is running" in (source.error or "")
    assert f"127.0.0.1:{pg_port}" in (target.error or "")
    assert "check that the warehouse is running" in (target.error or "")


def test_an_unreachable_s3_endpoint_is_reported(make_config_dir, tmp_path: Path):
    config = make_config_dir(mysql=False, postgres=False, staging="s3")
    port = free_port()

    def closed_endpoint(doc: dict) -> None:  # type: ignore[type-arg]
        doc["s3_configs"][config.staging]["endpoint_url"] = f"http://127.0.0.1:{port}"

    _rewrite(config, closed_endpoint)
    with registry_for(config) as registry:
        report = check(registry, config.staging, timeout=2)
    assert not report.ok
    assert f"http://127.0.0.1:{port}" in (report.error or "")


def test_a_missing_bucket_is_reported(make_config_dir):
    config = make_config_dir(mysql=False, postgres=False, staging="s3")

    def other_bucket(doc: dict) -> None:  # type: ignore[type-arg]
        doc["s3_configs"][config.staging]["bucket_name"] = "spt-no-such-bucket"

    _rewrite(config, other_bucket)
    with registry_for(config) as registry:
        report = check(registry, config.staging)
    assert not report.ok and "does not exist" in (report.error or "")


def test_an_unusable_local_directory_is_reported(make_config_dir):
    config = make_config_dir(mysql=False, postgres=False)
    blocker = Path(config.staging_location)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the staging directory should be")
    with registry_for(config) as registry:
        report = check(registry, config.staging)
    assert not report.ok
    assert str(blocker) in (report.error or "") and "local_path" in (report.error or "")


def test_a_stopped_bastion_is_named_in_the_health_error(make_config_dir, sshd):
    config = make_config_dir(tunnel="source")
    with registry_for(config) as registry:
        sshd.stop()
        try:
            report = check(registry, config.source)
        finally:
            sshd.start()
    assert not report.ok
    assert f"{sshd.host}:{sshd.port}" in (report.error or "") and "bastion" in (report.error or "")
    assert report.tunnel == f"{sshd.username}@{sshd.host}:{sshd.port}: closed"


def test_no_password_or_key_appears_in_any_health_output(make_config_dir, mysql_db, sshd):
    config = make_config_dir(staging="s3", tunnel="target")
    closed = free_port()

    def add_secrets(doc: dict) -> None:  # type: ignore[type-arg]
        doc["connections"]["sources"][config.source]["password"] = SECRETS[0]  # MariaDB refuses it
        doc["connections"]["sources"]["closed"] = {**doc["connections"]["sources"][config.source], "port": closed}
        doc["connections"]["targets"][config.target]["password"] = SECRETS[1]  # trust auth accepts it
        doc["connections"]["targets"]["closed_dw"] = {
            **doc["connections"]["targets"][config.target],
            "port": closed,
            "ssh_tunnel": {**doc["connections"]["targets"][config.target]["ssh_tunnel"], "password": SECRETS[1]},
        }
        doc["s3_configs"][config.staging]["secret_access_key"] = SECRETS[2]  # moto accepts any key

    _rewrite(config, add_secrets)
    with registry_for(config) as registry:
        reports = check_all(registry)
        assert registry.mask(" ".join(SECRETS)) == "*** *** ***"
    by_name = {r.name: r for r in reports}
    assert not by_name[config.source].ok and "Access denied" in (by_name[config.source].error or "")
    assert not by_name["closed"].ok and not by_name["closed_dw"].ok
    assert by_name[config.target].ok and by_name[config.staging].ok
    _assert_no_secret(reports)

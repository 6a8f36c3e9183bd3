"""The connection registry builds connections from connections.yml, lazily, by name."""

from __future__ import annotations

import pytest

from sync_platform.configuration.models import ConnectionsFile
from sync_platform.connections.mysql import MySQLSource
from sync_platform.connections.registry import ConnectionRegistry, UnknownConnection
from sync_platform.connections.staging import LocalStore, S3Store
from sync_platform.connections.warehouse import Warehouse
from sync_platform_tests.connections.helpers import load_connections, registry_for

UNREACHABLE = {
    "connections": {
        "sources": {
            "shop": {"host": "127.0.0.1", "port": 1, "database": "shop", "username": "root", "password": "pw-one"},
            "crm": {
                "host": "10.0.0.5",
                "database": "crm",
                "username": "u",
                "password": "pw-two",
                "ssh_tunnel": {"enabled": True, "host": "127.0.0.1", "port": 1, "username": "u", "password": "ssh-pw"},
            },
        },
        "targets": {"dw": {"host": "127.0.0.1", "port": 1, "database": "dw", "username": "u", "password": "pw-three"}},
    },
    "s3_configs": {
        "local": {"local_path": "./.staging"},
        "prod": {"bucket_name": "b", "region": "eu-west-1", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "sk"},
    },
}


def test_building_the_registry_and_its_connections_does_no_io(tmp_path):
    registry = ConnectionRegistry(ConnectionsFile.model_validate(UNREACHABLE), tmp_path)
    assert isinstance(registry.source("shop"), MySQLSource)
    assert isinstance(registry.source("crm"), MySQLSource)
    assert isinstance(registry.warehouse("dw"), Warehouse)
    assert isinstance(registry.staging("local"), LocalStore)
    assert isinstance(registry.staging("prod"), S3Store)
    assert registry.source("shop") is registry.source("shop")
    registry.close()


def test_names_are_listed_by_role_in_file_order(tmp_path):
    registry = ConnectionRegistry(ConnectionsFile.model_validate(UNREACHABLE), tmp_path)
    assert registry.names() == {"source": ["shop", "crm"], "target": ["dw"], "staging": ["local", "prod"]}
    assert registry.roles_of("dw") == ["target"]


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        ("source", "unknown source connection 'nope': connections.yml defines in connections.sources: crm, shop"),
        ("warehouse", "unknown target connection 'nope': connections.yml defines in connections.targets: dw"),
        ("staging", "unknown staging connection 'nope': connections.yml defines in s3_configs: local, prod"),
    ],
)
def test_an_unknown_name_is_a_key_error_listing_the_known_ones(tmp_path, lookup, expected):
    registry = ConnectionRegistry(ConnectionsFile.model_validate(UNREACHABLE), tmp_path)
    with pytest.raises(KeyError) as failure:
        getattr(registry, lookup)("nope")
    assert isinstance(failure.value, UnknownConnection)
    assert str(failure.value) == expected


def test_every_configured_secret_is_masked(tmp_path):
    registry = ConnectionRegistry(ConnectionsFile.model_validate(UNREACHABLE), tmp_path)
    text = "pw-one pw-two ssh-pw pw-three AKIAEXAMPLE sk-not-quite"
    assert registry.mask(text) == "*** *** *** *** *** ***-not-quite"


def test_local_staging_is_relative_to_the_config_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_dir = tmp_path / "somewhere" / "config"
    registry = ConnectionRegistry(ConnectionsFile.model_validate(UNREACHABLE), config_dir)
    store = registry.staging("local")
    assert isinstance(store, LocalStore) and store.root == config_dir / ".staging"


def test_retry_settings_come_from_connection_settings(tmp_path):
    document = {**UNREACHABLE, "connection_settings": {"max_retries": 5, "retry_delay": 0.25}}
    registry = ConnectionRegistry(ConnectionsFile.model_validate(document), tmp_path)
    assert (registry.retry.attempts, registry.retry.base_delay) == (5, 0.25)


def test_close_ends_every_open_tunnel(make_config_dir, sshd):
    config = make_config_dir(tunnel=True)
    registry = registry_for(config)
    source, warehouse = registry.source(config.source), registry.warehouse(config.target)
    with source.endpoint(), warehouse.endpoint():
        assert len(registry.tunnels.active()) == 2
        registry.close()
        assert registry.tunnels.active() == []


def test_the_test_config_dir_loads_with_the_real_models(make_config_dir):
    config = make_config_dir(staging="s3", tunnel="source")
    connections = load_connections(config)
    assert connections.connections.sources[config.source].ssh_tunnel is not None
    assert connections.s3_configs[config.staging].bucket_name == config.staging_location
    assert connections.connections.targets[config.target].dialect == "postgres"

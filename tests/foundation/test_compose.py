"""docker-compose.yml stays a valid Compose file, its "cluster" profile included.

``docker compose config`` is the real check and runs when the binary has the compose plugin;
without it the file's structure is checked here: every dependency names a service, every
one-shot a service is made to wait for is a one-shot, and the cluster profile's app runs on the
three-node Redis Cluster and RabbitMQ that the profile brings.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
CLUSTER_APP = ("migrate-cluster", "web-cluster", "worker-cluster", "beat-cluster")
NODES = ("redis-node-1", "redis-node-2", "redis-node-3")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def has_compose_plugin() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    done = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.parametrize("profile", ["", "cluster", "loadtest"])
def test_docker_compose_config_accepts_every_profile(profile):
    if not has_compose_plugin():
        pytest.skip("no docker compose plugin here; the structure tests below stand in for it")
    args = ["--profile", profile] if profile else []
    done = subprocess.run(
        ["docker", "compose", *args, "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_every_dependency_is_a_service_and_one_shots_are_waited_for_as_such():
    services = compose()["services"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            if how["condition"] == "service_completed_successfully":
                assert services[needed].get("restart") == "no", f"{needed} must be one-shot"
            # a profiled service is only started with its profile: never needed without it
            if not service.get("profiles"):
                assert not services[needed].get("profiles"), f"{name} needs profiled {needed}"


def test_cluster_profile_is_three_masters_with_aof_joined_once():
    data = compose()
    services = data["services"]
    subnet = data["networks"]["cluster"]["ipam"]["config"][0]["subnet"]
    addresses = []
    for name in NODES:
        node = services[name]
        command = node["command"]
        assert node["profiles"] == ["cluster"], name
        assert command[command.index("--cluster-enabled") + 1] == "yes", name
        assert command[command.index("--appendonly") + 1] == "yes", name  # redis_atomic's 202s
        address = node["networks"]["cluster"]["ipv4_address"]
        assert address.rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0], name
        addresses.append(address)
    create = services["cluster-create"]
    joined = " ".join(create["command"])
    assert "--cluster create" in joined and "--cluster-replicas 0" in joined
    assert all(f"{address}:6379" in joined for address in addresses)
    assert set(create["depends_on"]) == set(NODES)


def test_cluster_profile_app_uses_the_cluster_and_rabbitmq_and_its_own_database():
    services = compose()["services"]
    single_db = services["web"]["environment"]["DATABASE_URL"]
    assert "rabbitmq" in services and services["rabbitmq"]["profiles"] == ["cluster"]
    for name in CLUSTER_APP:
        service = services[name]
        env = service["environment"]
        assert service["profiles"] == ["cluster"], name
        assert env["REDIS_URL"] == "redis+cluster://" + ",".join(f"{n}:6379" for n in NODES)
        assert env["CELERY_BROKER_URL"].startswith("amqp://guest:guest@rabbitmq:5672/"), name
        assert env["DATABASE_URL"] != single_db, name  # two Redis must never mirror one sale
        assert "cluster" in service["networks"], name
        if name != "migrate-cluster":
            assert service["depends_on"]["migrate-cluster"]["condition"] == (
                "service_completed_successfully"
            )
            assert "rabbitmq" in service["depends_on"], name

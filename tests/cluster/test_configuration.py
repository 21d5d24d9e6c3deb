"""Configuring the app for a Redis Cluster: the URL, the client it gives, and the settings'
refusal of a cluster as Celery's broker (kombu has no cluster transport: RabbitMQ it is)."""

from __future__ import annotations

import json

import pytest
from redis.cluster import ClusterNode, RedisCluster

from seckill.infrastructure.redis_client import make_client
from seckill.infrastructure.redis_urls import cluster_startup_nodes, is_cluster_url
from tests.foundation.test_settings import load_settings

CLUSTER = "redis+cluster://10.0.0.1:7000,10.0.0.2:7001"


def test_cluster_url_names_its_startup_nodes():
    assert is_cluster_url(CLUSTER) and not is_cluster_url("redis://10.0.0.1:7000/0")
    nodes = cluster_startup_nodes(CLUSTER + "/0")
    assert [(n.host, n.port) for n in nodes] == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert cluster_startup_nodes("redis+cluster://u:pw@cache")[0].port == 6379


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://10.0.0.1:7000/3", "only database 0"),
        ("redis+cluster://10.0.0.1:port", "bad cluster node"),
        ("redis+cluster://", "no cluster node"),
        ("redis://10.0.0.1:7000", r"not a redis\+cluster"),
    ],
)
def test_bad_cluster_urls_are_refused_with_a_reason(url, says):
    with pytest.raises(ValueError, match=says):
        cluster_startup_nodes(url)


def test_cluster_without_a_broker_is_refused_naming_rabbitmq():
    result = load_settings(SECRET_KEY="s3cret", REDIS_URL=CLUSTER)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "CELERY_BROKER_URL" in result.stderr and "amqp://" in result.stderr


def test_cluster_url_as_broker_is_refused():
    result = load_settings(SECRET_KEY="s3cret", CELERY_BROKER_URL=CLUSTER)
    assert result.returncode != 0 and "amqp://" in result.stderr


def test_bad_cluster_url_fails_at_start_up():
    result = load_settings(
        SECRET_KEY="s3cret", REDIS_URL="redis+cluster://a:b:c", CELERY_BROKER_URL="amqp://x//"
    )
    assert result.returncode != 0 and "REDIS_URL: bad cluster node" in result.stderr


def test_cluster_with_rabbitmq_loads():
    result = load_settings(
        SECRET_KEY="s3cret", REDIS_URL=CLUSTER, CELERY_BROKER_URL="amqp://guest@10.0.0.9//"
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert (
        values["REDIS_URL"] == CLUSTER and values["CELERY_BROKER_URL"] == "amqp://guest@10.0.0.9//"
    )


@pytest.mark.cluster
def test_client_factory_gives_a_cluster_client_with_the_app_timeouts(
    redis_cluster_handle, settings
):
    settings.REDIS_SOCKET_TIMEOUT = 1.5
    client = make_client(redis_cluster_handle.app_url)
    try:
        assert isinstance(client, RedisCluster)
        assert len(client.get_primaries()) == 3  # discovered from the startup nodes
        node = client.get_primaries()[0]
        kwargs = node.redis_connection.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 1.5
        assert isinstance(client.get_default_node(), ClusterNode)
    finally:
        client.close()

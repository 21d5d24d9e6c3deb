"""Reading the app's Redis URLs, without Django: the app's client factory and the dev tools
(``devtools.redis_cluster``, the run scripts' probe) parse ``redis+cluster://`` the same way."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from redis.cluster import ClusterNode

CLUSTER_SCHEME = "redis+cluster"


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme == CLUSTER_SCHEME


def cluster_startup_nodes(url: str) -> list[ClusterNode]:
    """The ``host:port`` list of a ``redis+cluster://`` URL (port 6379 when left out).

    Raises ValueError for another scheme, no node, a database other than 0 (a cluster has only
    database 0) or a bad port, so a typo fails at start-up rather than on the first request."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise ValueError(f"not a {CLUSTER_SCHEME}:// URL: {url!r}")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0, not {parts.path!r} ({url!r})")
    netloc = parts.netloc.rpartition("@")[2]
    nodes = []
    for item in filter(None, (n.strip() for n in netloc.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "6379")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad cluster node {item!r} in {url!r} (use host:port)")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError(f"no cluster node in {url!r} (use {CLUSTER_SCHEME}://host:port,…)")
    return nodes


def url_credentials(url: str) -> dict[str, str]:
    """The username and password a URL carries (percent-decoded), as client keyword arguments."""
    parts = urlsplit(url)
    out = {}
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    return out

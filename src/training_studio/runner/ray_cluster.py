"""The Ray cluster as `GET /api/system` reports it (issue 18): its alive nodes, each with its address and
CPUs and GPUs total and free, and the cluster's sums, read from the Ray dashboard the server submits to.

Two of the dashboard's HTTP routes, asked at once with httpx (async: the event loop never waits on Ray):
- `/api/v0/nodes?detail=1`: Ray's state API, the route behind `ray list nodes` and `ray.util.state.
  list_nodes` (node id, IP, head or not, ALIVE or DEAD, total resources);
- `/api/cluster_status`: the figures `ray status` prints, whose `loadMetricsReport.usageByNode` gives each
  node's used and total resources ({node id: {"CPU": [used, total], "GPU": [...]}}). The state API has
  no free figures, so they come from here; a node Ray has not reported yet has free None.
Nothing here raises: a cluster that cannot be asked is `ClusterInfo(reachable=False, error=…)`. No Ray
import: the server's process does not load Ray's client to draw a status bar.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from training_studio.contract import ClusterInfo, ClusterNode

__all__ = ["read_cluster", "cluster_from_answers", "DASHBOARD_TIMEOUT_S"]

# One read of the dashboard at a time (system_info.py), each bounded: a stopped head holds no request.
DASHBOARD_TIMEOUT_S = 5.0
NODES_PATH = "/api/v0/nodes?detail=1&limit=10000"
STATUS_PATH = "/api/cluster_status"


async def read_cluster(address: str, *, timeout: float = DASHBOARD_TIMEOUT_S) -> ClusterInfo:
    """Ask the dashboard at `address` (http://HOST:8265) for its nodes and their usage."""
    base = address.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            nodes, status = await asyncio.gather(client.get(base + NODES_PATH), client.get(base + STATUS_PATH))
        for response in (nodes, status):
            if response.status_code != 200:
                return _unreachable(address, f"the Ray dashboard answered {response.status_code} to "
                                             f"{response.request.url.path}")
        return cluster_from_answers(nodes.json(), status.json(), address=address)
    except httpx.TimeoutException:
        return _unreachable(address, f"no answer from {address} in {timeout:.0f} s")
    except httpx.HTTPError as exc:
        return _unreachable(address, _short(exc) or "the Ray dashboard could not be reached")
    except ValueError as exc:  # not JSON, or not the shape below
        return _unreachable(address, f"the Ray dashboard's answer could not be read: {_short(exc)}")


def cluster_from_answers(nodes_answer: Any, status_answer: Any, *, address: str | None = None) -> ClusterInfo:
    """The cluster from the dashboard's two JSON answers (the shapes of Ray 2.x); ValueError if they are not."""
    try:
        rows = nodes_answer["data"]["result"]["result"]
    except (KeyError, TypeError):
        raise ValueError("no node list in the state API's answer") from None
    if not isinstance(rows, list):
        raise ValueError("no node list in the state API's answer")
    usage = _usage_by_node(status_answer)
    nodes: list[ClusterNode] = []
    dead = 0
    for row in rows:
        if not isinstance(row, dict) or not row.get("node_id"):
            continue
        if row.get("state") != "ALIVE":
            dead += 1
            continue
        node_id = str(row["node_id"])
        total = row.get("resources_total") if isinstance(row.get("resources_total"), dict) else {}
        used = usage.get(node_id)
        nodes.append(ClusterNode(
            node_id=node_id, address=row.get("node_ip") or None, head=bool(row.get("is_head_node")),
            cpus_total=_number(total.get("CPU")) or 0.0, cpus_free=_free(used, "CPU", total),
            gpus_total=_number(total.get("GPU")) or 0.0, gpus_free=_free(used, "GPU", total)))
    nodes.sort(key=lambda node: (not node.head, node.address or "", node.node_id))
    return ClusterInfo(reachable=True, address=address, nodes_alive=len(nodes), nodes_dead=dead, nodes=nodes,
                       cpus_total=_sum(node.cpus_total for node in nodes),
                       cpus_free=_sum(node.cpus_free for node in nodes),
                       gpus_total=_sum(node.gpus_total for node in nodes),
                       gpus_free=_sum(node.gpus_free for node in nodes))


def _usage_by_node(status_answer: Any) -> dict[str, dict[str, Any]]:
    try:
        usage = status_answer["data"]["clusterStatus"]["loadMetricsReport"]["usageByNode"]
    except (KeyError, TypeError):
        return {}  # not reported yet (a head that just started): free figures unknown
    return usage if isinstance(usage, dict) else {}


def _free(used: dict[str, Any] | None, resource: str, total: dict[str, Any]) -> float | None:
    """Total minus used for one node; None when Ray has not reported its usage yet."""
    if used is None:
        return None
    pair = used.get(resource)
    if isinstance(pair, (list, tuple)) and len(pair) == 2:
        in_use, of = _number(pair[0]), _number(pair[1])
        if in_use is not None and of is not None:
            return max(0.0, of - in_use)
        return None
    # Ray leaves out a resource the node does not have: nothing of it is free.
    return 0.0 if not _number(total.get(resource)) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _sum(values: Any) -> float | None:
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def _unreachable(address: str, error: str) -> ClusterInfo:
    return ClusterInfo(reachable=False, error=error, address=address)


def _short(exc: BaseException) -> str:
    """One short line: httpx's connect errors hide the cause ("All connection attempts failed")."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {' '.join(str(exc).split()) or type(exc).__name__}"[:300]
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]

"""Several gateways on one database: one leads (scheduler, autoscaler, dispatch, schedules), all serve.

The leader holds a lease row in the database and renews it; the others
forward what needs the live scheduler to it and answer the rest from the
database. On SQLite there is one gateway, and it always leads.
"""

from ._cluster import Cluster, ClusterSettings
from ._demand import DemandReporter, LeaderUnreachable
from ._forward import FORWARDED
from ._presence import Presence
from ._ready_view import ReadyMap, ReadyView
from ._routes import forwarded_route, served_by_follower

__all__ = [
    "FORWARDED",
    "Cluster",
    "ClusterSettings",
    "DemandReporter",
    "LeaderUnreachable",
    "Presence",
    "ReadyMap",
    "ReadyView",
    "forwarded_route",
    "served_by_follower",
]

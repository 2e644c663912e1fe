"""Several gateways on one database: one leads (scheduler, autoscaler, dispatch, schedules), all serve.

The leader holds a lease row in the database and renews it; the others
forward what needs the live scheduler to it and answer the rest from the
database. On SQLite there is one gateway, and it always leads.
"""

from ._cluster import Cluster, ClusterSettings
from ._presence import Presence
from ._routes import served_by_follower

__all__ = ["Cluster", "ClusterSettings", "Presence", "served_by_follower"]

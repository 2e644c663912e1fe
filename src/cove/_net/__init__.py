"""HTTP plumbing shared by the gateway, the workers and the cluster: relaying requests and the local gateway socket."""

"""What touches the host machine: Cove's home folder, volumes, existing Python environments and safe file operations.

Shared by the server processes (gateway, worker, image builder) and by the
runner inside containers, so these modules use the standard library only.
"""

"""Request size limits the gateway applies by default.

In a module of their own so the worker's relay can forward up to the largest of
them without importing the gateway (and with it FastAPI and SQLAlchemy).
"""

MiB = 1024 * 1024

MAX_BODY_BYTES = 16 * MiB  # an invocation or control request
MAX_CODE_BYTES = 256 * MiB  # a code archive
MAX_BLOB_BYTES = 1024 * MiB  # one blob of the blob store (large call arguments and results)

"""What the control API answers: one pydantic model per JSON response, and the shapes of its streams.

The gateway declares these on its routes (``response_model=``), so
``/api/openapi.json`` describes every answer field by field and clients,
schema-driven tests and the CLI read one definition. This is the one module
of ``cove._wire`` that needs pydantic: the gateway and the CLI import it, the
SDK never does (it must install without pydantic).

Routes return plain dicts that these models validate, so each model lists
every key its route sends, in the same order, with the same values:

* ``extra="forbid"`` (``ApiModel``): a key a route starts sending without the
  model saying so fails loudly (a 500 in the tests) instead of being dropped
  from the answer, and the published schema says no other keys come.
* Numbers that are not always integers are ``Number`` (an int stays an int, a
  float a float); plain ``float`` would turn ``300`` into ``300.0``.
* A key a route sends only sometimes (``rootfs`` of an image without system
  layers, the live counters of a container) is ``X | SkipJsonSchema[None] =
  None``: optional in the schema, never null; its route sets
  ``response_model_exclude_unset=True`` so an absent key stays absent.
* Objects whose keys are open by design (a call's error, which carries what
  the user's exception had) allow extra keys beside the ones they name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

NDJSON = "application/x-ndjson"
BINARY_SCHEMA: dict[str, Any] = {"type": "string", "format": "binary"}

# A JSON number kept as the route produced it (see the module docstring).
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]


def _drop_null_defaults(schema: dict[str, Any]) -> None:
    """Optional keys are left out, never sent as null: their ``default: null`` would say otherwise."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class ApiModel(BaseModel):
    """A response object: exactly the keys named here (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_null_defaults)


class OpenModel(BaseModel):
    """A response object that may carry keys beside the ones named here."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_drop_null_defaults)


# -- OpenAPI descriptions of answers that are not one JSON object --------------------------------


def ndjson(model: type[BaseModel], description: str) -> dict[str, Any]:
    """An OpenAPI response streaming one ``model`` per line (NDJSON).

    The schema is inlined, so ``model`` must be flat (no nested models): a
    ``$ref`` inside it would point into the wrong document.
    """
    schema = model.model_json_schema(mode="serialization")
    if "$defs" in schema:
        raise ValueError(f"{model.__name__} nests other models; NDJSON line schemas are inlined")
    return {"description": description, "content": {NDJSON: {"schema": schema}}}


def binary(media_type: str, description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An OpenAPI response whose body is bytes of ``media_type``, with the headers that describe them."""
    response: dict[str, Any] = {"description": description, "content": {media_type: {"schema": BINARY_SCHEMA}}}
    return _with_headers(response, headers)


def no_body(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An OpenAPI response without a body (a HEAD answer, a 204)."""
    return _with_headers({"description": description}, headers)


def _with_headers(response: dict[str, Any], headers: dict[str, str] | None) -> dict[str, Any]:
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    return response


def call_outcome() -> dict[str, Any]:
    """The OpenAPI 200 of a call's outcome: the user's result as it was returned, or its failure."""
    return {
        "description": "The call ended: its result (JSON from an HTTP call, pickled from the SDK), or its failure",
        "content": {
            "application/json": {
                "schema": {"description": "The function's JSON result, or a failure: {state, error}"},
            },
            "application/octet-stream": {"schema": {**BINARY_SCHEMA, "description": "The pickled result"}},
        },
        "headers": {
            "X-Cove-Call-Id": {"description": "The call's id", "schema": {"type": "string"}},
            "X-Cove-State": {"description": "COMPLETE, FAILED, CANCELLED or EXPIRED", "schema": {"type": "string"}},
        },
    }


# -- images and code ---------------------------------------------------------------------------------


class BuildEvent(ApiModel):
    """One line of ``POST /api/v1/images``: ``log`` lines while it builds, then ``done`` or ``error``."""

    event: Literal["log", "done", "error"]
    line: str | SkipJsonSchema[None] = None  # log
    image_id: str | SkipJsonSchema[None] = None  # done, error
    python_version: str | SkipJsonSchema[None] = None  # done
    message: str | SkipJsonSchema[None] = None  # error


class ImageView(ApiModel):
    """``GET /api/v1/images/{id}``; ``rootfs`` and ``layers`` only for images with system layers."""

    id: str
    status: str
    path: str | None
    python: str | None
    error: str | None
    spec: dict[str, Any]
    rootfs: str | SkipJsonSchema[None] = None
    layers: list[str] | SkipJsonSchema[None] = None


class ImageDeployment(ApiModel):
    name: str
    version: int
    state: str


class StoredImage(ApiModel):
    """An image on disk, as ``GET /api/v1/images`` lists it."""

    id: str
    path: str
    size_bytes: int
    python_version: str
    built_at: Number
    layers: list[str]
    base: str | None
    layer_bytes: int
    system_packages: list[str]
    python_packages: list[str]
    in_use: bool
    last_used: Number
    deployments: list[ImageDeployment]  # the caller's workspace's
    other_workspace_deployments: int


class ImageRemoved(ApiModel):
    id: str
    removed: bool
    freed_bytes: int


class GcReport(ApiModel):
    images: list[str]
    layers: list[str]
    bases: list[str]
    freed_bytes: int


class PythonDistribution(ApiModel):
    """One distribution installed in an image's environment, with the license fields of its metadata."""

    name: str
    version: str
    license_expression: str | SkipJsonSchema[None] = None
    license: str | SkipJsonSchema[None] = None
    classifiers: list[str] | SkipJsonSchema[None] = None


class DebianPackage(ApiModel):
    package: str
    version: str
    architecture: str
    source: str
    source_version: str


class DebianPackages(ApiModel):
    suite: str | None
    packages: list[DebianPackage]


class ImagePackages(ApiModel):
    """``GET /api/v1/images/{id}/packages``: what an image was built from, recorded when it was built."""

    id: str
    format: int
    python_version: str
    python: list[PythonDistribution]
    debian: DebianPackages | SkipJsonSchema[None] = None


class AuditDeployment(ApiModel):
    workspace_id: str
    name: str
    version: int


class PackageFinding(ApiModel):
    ecosystem: str
    name: str
    version: str
    advisories: list[str]
    reasons: list[str]
    license: str | None
    severity: str | None = None  # low, medium, high or critical: the highest its advisories give


class FlaggedImage(ApiModel):
    image_id: str
    deployments: list[AuditDeployment]
    findings: list[PackageFinding]


class UnauditedImage(ApiModel):
    image_id: str
    deployments: list[AuditDeployment]


class DeployedAudit(ApiModel):
    """Live deployments whose images hold a package the reservoir now flags (``GET
    /api/v1/reservoir/audit/deployed``, ``POST /api/v1/images/audit``)."""

    rules_serial: int
    audited_at: float  # when this report was made (Unix time): kept until the rules or the deployments change
    advisories: int
    checked_images: int
    flagged: list[FlaggedImage]
    unknown: list[UnauditedImage]


class CodeStored(ApiModel):
    hash: str
    size: int


# -- deployments, containers, logs ----------------------------------------------------------------------


class DeploymentView(ApiModel):
    id: str
    name: str
    version: int
    kind: str
    state: str
    module: str
    function: str
    image_id: str
    code_hash: str
    config: dict[str, Any]
    ephemeral: bool
    created_at: Number
    url: str | None
    """Where it answers calls (``cove._wire.urls``): ``/endpoint/NAME``, ``/taskqueue/NAME`` or
    ``/api/v1/functions/NAME/calls`` by kind; none for a schedule."""
    version_url: str | None
    """The same, pinned to this version."""
    pending_reason: str | None
    parameter_sets: list[dict[str, str | int | float | bool]] = []
    """A class's sets of constructor parameters that have containers (or calls waiting) now, one pool each."""
    callback_secret: str | None
    live: bool
    """Whether this version takes calls: the newest active version does, or those a traffic split names."""
    traffic_percent: int
    """The percentage of the deployment's calls this version takes."""


class DeploymentCreated(DeploymentView):
    """``POST /api/v1/deployments``: 201 with ``created`` true, or 200 for an identical existing one."""

    created: bool
    warnings: list[str]
    """Why it may not run yet: no worker is registered, only cordoned workers could hold it, or none could (force)."""


class DeploymentRolledBack(DeploymentCreated):
    """``POST /api/v1/deployments/{name}/rollback``: the live version now, made from ``source_version``."""

    source_version: int


class DeploymentScaled(DeploymentCreated):
    """``PATCH /api/v1/deployments/{name}/scaling``: the live version now, ``source_version``'s with new scaling."""

    source_version: int
    scaling: dict[str, Number]
    """The autoscaler settings and ``keep_warm_seconds`` of the live version now."""


class TrafficSplitView(ApiModel):
    """``PUT``/``DELETE /api/v1/deployments/{name}/traffic``: how calls are shared now (empty: newest takes all)."""

    name: str
    weights: dict[int, int]


class DeploymentHistory(ApiModel):
    """A deployment's last hour in buckets, oldest first; latency is null in a bucket without requests."""

    name: str
    bucket_seconds: int
    start: Number
    requests_per_second: list[Number]
    p50_ms: list[Number | None]
    p99_ms: list[Number | None]
    errors: list[int]
    cold_starts: list[int]


class DeploymentStopped(ApiModel):
    name: str
    stopped_versions: list[int]


# -- apps ------------------------------------------------------------------------------------------


class AppView(ApiModel):
    """An app: the deployments deployed together from one file, or a script's ephemeral run."""

    id: str
    name: str
    ephemeral: bool
    """A script's run: stopped when the script exits or its heartbeats stop."""
    source: str | None
    """Where it was last deployed from, as the deploying client named the file."""
    created_at: Number
    heartbeat_at: Number | None
    heartbeat_timeout: Number | None
    """For an ephemeral app: the seconds without a heartbeat after which the gateway stops it."""
    stopped_at: Number | None
    deployments: list[str]
    """The names whose live version belongs to this app."""


class AppHeartbeat(ApiModel):
    """``POST /api/v1/apps/{app}/heartbeat``: the ephemeral app lives on."""

    id: str
    name: str
    heartbeat_at: Number


class AppStopped(ApiModel):
    """``DELETE /api/v1/apps/{app}``: the versions of the app's deployments that were stopped."""

    id: str
    name: str
    stopped: list[str]
    """Each stopped version as ``NAME/vN``."""


class ContainerView(ApiModel):
    """A row of ``GET /api/v1/containers``.

    Rows without an ``id`` are the backlog: containers wanted but not placeable
    now. ``in_flight``, ``served`` and ``idle_since`` come only for containers
    the scheduler holds live.
    """

    id: str | None
    deployment: str | None
    version: int | None
    state: str
    worker_id: str | None
    address: str | None
    created_at: Number | None
    ready_at: Number | None
    stopped_at: Number | None
    exit_code: int | None
    reason: str | None
    timings: dict[str, Number]
    in_flight: int | SkipJsonSchema[None] = None
    served: int | SkipJsonSchema[None] = None
    idle_since: Number | SkipJsonSchema[None] = None
    parameters: dict[str, str | int | float | bool] | SkipJsonSchema[None] = None
    """The constructor parameters of a class's container (``Model(size="large")``): it serves only these."""


class ContainerStopping(ApiModel):
    id: str
    stopping: bool


class LogRecord(ApiModel):
    """One line of ``GET /api/v1/logs`` (an empty line keeps an idle follow alive)."""

    ts: Number
    stream: str
    text: str
    container_id: str


# -- tokens, audit -------------------------------------------------------------------------------------


class TokenCreated(ApiModel):
    """The new token; ``token`` is its secret, shown this once."""

    id: str
    name: str
    workspace: str
    role: str
    token: str


class TokenView(ApiModel):
    id: str
    name: str
    role: str
    created_at: Number
    revoked_at: Number | None


class TokenRevoked(ApiModel):
    id: str
    revoked: bool


class Whoami(ApiModel):
    token_id: str
    workspace: str
    role: str


class AuditEntry(ApiModel):
    id: int
    ts: Number
    action: str
    target: str
    token_id: str | None
    details: dict[str, Any]


class Health(ApiModel):
    status: str
    version: str
    workers: int
    leader: bool


# -- workers -------------------------------------------------------------------------------------------


class WorkerRegistered(ApiModel):
    worker_id: str
    heartbeat_seconds: Number
    shares_home: bool


class WorkerView(ApiModel):
    """A worker as ``GET /api/v1/workers`` and the cordon, uncordon and drain routes show it."""

    id: str
    name: str
    state: str
    alive: bool
    runtime: str
    labels: dict[str, str]
    cpu_millis: int
    memory_mib: int
    free_cpu_millis: int
    free_memory_mib: int
    containers: int
    last_heartbeat: Number
    models: list[str] = []
    """Models (``org/name@revision``) its weight cache holds: placement prefers it for deployments using them."""


class ModelPrefetch(ApiModel):
    """The answer to ``POST /api/v1/workers/prefetch``: the workers told to fetch a model into their cache."""

    model: str
    pool: str | None
    workers: list[str]
    warnings: list[str] = []


class WorkerPoolView(ApiModel):
    """One worker pool as the Kubernetes pool controller of the leading gateway saw it on its last pass."""

    pool: str
    min: int
    max: int
    desired: int  # the workers the controller aims for after its last pass
    pending: int  # pods not yet registered as workers (Pending, or Running and starting)
    ready: int
    draining: int


class GpuShareSpec(ApiModel):
    """The part of one GPU a container gets: the whole card, or memory and compute of it."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    compute: int
    whole: bool


class ContainerStartSpec(ApiModel):
    """Everything a worker needs to start one container (the ``spec`` of a start order)."""

    container_id: str
    workspace_id: str
    deployment_id: str
    deployment_name: str
    version: int
    kind: str
    module: str
    function: str
    code_hash: str
    image_id: str
    cpu_millis: int
    memory_mib: int
    concurrent_requests: int
    env: dict[str, str]
    secrets: list[str]
    volumes: list[list[str]]
    secret_env: dict[str, str]
    network: list[str]
    gpus: list[GpuShareSpec]
    class_parameters: dict[str, str | int | float | bool] = {}
    """The constructor parameters the container's class instance is made with (``cove._wire.parameters``)."""
    models: list[str] = []
    """Model repositories (``org/name@revision``) the worker mounts read-only from its weight cache."""
    models_url: str | None = None
    """The reservoir the worker fetches them from, unless its own ``COVE_MODELS_URL`` names another."""


class WorkerOrder(ApiModel):
    action: Literal["start", "stop", "drain", "prefetch"]
    container_id: str
    spec: ContainerStartSpec | None
    deployment_id: str | None
    sent_at: Number
    model: str | None = None
    """``prefetch``: the model (``org/name@revision``) to fetch into the worker's weight cache."""
    models_url: str | None = None
    """``prefetch``: the reservoir to fetch it from."""


class WorkerOrders(ApiModel):
    orders: list[WorkerOrder]


class HeartbeatReply(ApiModel):
    """Containers the worker runs that the gateway no longer knows: the worker stops them."""

    stop: list[str]


# -- calls, maps, tasks, schedules -----------------------------------------------------------------------


class CallAccepted(ApiModel):
    call_id: str


class CallPending(ApiModel):
    """A call still open: ``PENDING`` (a result read), or ``RUNNING`` and printing (a followed ``.remote``)."""

    call_id: str
    state: str


class TaskAccepted(ApiModel):
    task_id: str


class CallState(ApiModel):
    id: str
    state: str


class TaskRetried(ApiModel):
    """A finished task's input accepted again as a new task, by the deployment's live version."""

    task_id: str
    retried_from: str
    version: int


class CallError(OpenModel):
    """Why a call failed; the runner's errors carry all of these, and some errors add keys of their own."""

    type: str | SkipJsonSchema[None] = None
    message: str | SkipJsonSchema[None] = None
    traceback: str | SkipJsonSchema[None] = None
    mro_: list[str] | SkipJsonSchema[None] = Field(default=None, alias="mro")  # "mro" would shadow BaseModel.mro
    retryable: bool | SkipJsonSchema[None] = None


class CallFailure(ApiModel):
    """A finished call that did not complete, as its outcome (``error.attempts`` lists the attempts)."""

    state: str
    error: CallError


class TaskAttempt(OpenModel):
    """One failed attempt of a task."""

    attempt: int | SkipJsonSchema[None] = None
    at: Number | SkipJsonSchema[None] = None
    container_id: str | None = None
    type: str | None = None
    message: str | None = None
    traceback: str | None = None


class TaskView(ApiModel):
    """A task or call; ``result`` is the decoded result of a completed JSON task, else null."""

    id: str
    name: str
    state: str
    attempt: int
    attempts: list[TaskAttempt]
    error: CallError | None
    result: Any
    result_size: int
    map_id: str | None
    created_at: Number
    started_at: Number | None
    finished_at: Number | None
    container_id: str | None


class MapCreated(ApiModel):
    map_id: str


class MapInputsAccepted(ApiModel):
    accepted: int
    submitted: int


class MapCancelled(ApiModel):
    """``cancelled``: how many of the map's pending inputs were cancelled."""

    map_id: str
    cancelled: int


class CallOutput(ApiModel):
    """Printed output of a call after a character offset; ``next`` is the offset to ask for next."""

    call_id: str
    text: str
    next: int
    state: str
    finished: bool


class ScheduleRun(ApiModel):
    tick: Number
    state: str
    task_id: str | None
    task_state: str | None


class ScheduleView(ApiModel):
    name: str
    version: int
    when: str
    timezone: str
    next_run: Number
    recent_runs: list[ScheduleRun]
    missed: int


# -- secrets, volumes, blobs ---------------------------------------------------------------------------


class SecretView(ApiModel):
    """A secret's names only: values never come back out of the API."""

    name: str
    keys: list[str]
    created_at: Number
    updated_at: Number


class SecretDeleted(ApiModel):
    name: str
    deleted: bool


class VolumeRef(ApiModel):
    name: str


class VolumeDeleted(ApiModel):
    name: str
    deleted: bool


class FileEntry(ApiModel):
    name: str
    type: Literal["file", "dir", "link", "other"]
    size: int
    mtime: Number


class FileStored(ApiModel):
    volume: str
    path: str
    size: int


class FileDeleted(ApiModel):
    volume: str
    path: str
    deleted: bool


class BlobStored(ApiModel):
    """``stored`` is false when the workspace already had the blob (the upload was not needed)."""

    sha256: str
    size: int
    stored: bool


# -- sandboxes ---------------------------------------------------------------------------------------


class SandboxView(ApiModel):
    """A sandbox; the deadlines are null once it has ended."""

    id: str
    state: str
    created_at: Number
    timeout: Number | None
    idle_timeout: Number | None
    last_active: Number | None
    image_id: str
    cpu_millis: int | None
    memory_mib: int | None


class SandboxTerminated(ApiModel):
    id: str
    terminated: bool


# What a sandbox's agent answers, relayed unchanged under /api/v1/sandboxes/{id}/...


class SandboxHealth(ApiModel):
    status: str


class SandboxProcess(ApiModel):
    """``POST exec``: the started process's id."""

    id: str


class SandboxExit(ApiModel):
    """``GET exec/{id}/wait``: null while the process still runs."""

    exit_code: int | None


class SandboxKilled(ApiModel):
    killed: bool


class SandboxFileWritten(ApiModel):
    path: str
    size: int


class SandboxFileRemoved(ApiModel):
    path: str
    removed: bool


# -- quotas, GPUs --------------------------------------------------------------------------------------


class QuotaUsage(ApiModel):
    containers: int
    cpu_millis: int


class DiskUsage(ApiModel):
    volume_bytes: int
    code_bytes: int
    blob_bytes: int


class QuotaView(ApiModel):
    """A workspace's limits (null: no limit), whether they are the default, and what it uses now."""

    workspace: str
    max_containers: int | None
    max_cpu_millis: int | None
    max_gpus: int | None
    max_volume_bytes: int | None
    max_code_bytes: int | None
    max_blob_bytes: int | None
    default: bool
    usage: QuotaUsage
    disk: DiskUsage


class GpuHolder(ApiModel):
    """A container holding part of a GPU; another workspace's shows only as held capacity."""

    container_id: str | None
    deployment: str | None
    other_workspace: bool
    state: str
    whole: bool
    memory_mib: int
    compute: int
    memory_used_mib: int | None


class GpuView(ApiModel):
    """One GPU; ``utilization`` and ``memory_used_mib`` are live NVML figures, null on fake GPUs."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    utilization: Number | None
    memory_used_mib: int | None
    held_whole: bool
    allocated_memory_mib: int
    allocated_compute: int
    holders: list[GpuHolder]


class GpuWorker(ApiModel):
    worker_id: str
    worker: str
    state: str
    gpus: list[GpuView]


class GpuHistory(ApiModel):
    """One GPU's last hour in 10 s buckets, oldest first: utilisation (percent) and memory in use (MiB), null
    where nothing was measured."""

    worker: str
    index: int
    uuid: str
    name: str
    memory_mib: int
    bucket_seconds: int
    start: Number
    utilization: list[Number | None]
    memory_used_mib: list[Number | None]


class Event(ApiModel):
    """A control-plane decision: what the scheduler did or why work waits, with the numbers it went by.

    ``deployment`` and ``version`` are null on a cluster event (a worker, the
    scheduler lease), which only admin tokens see.
    """

    id: int
    ts: Number
    kind: str
    deployment: str | None
    version: int | None
    reason: str
    inputs: dict[str, Any]


class EventPage(ApiModel):
    """Events oldest first; ``cursor`` is what the next poll passes as ``since`` to get only newer ones."""

    events: list[Event]
    cursor: int


# -- the package reservoir (``/api/v1/reservoir/...``) -------------------------------------------------------


class ReservoirIndexes(ApiModel):
    """``GET /api/v1/reservoir/indexes``: each index with its kind, projects, files and claims."""

    serial: int
    indexes: list[dict[str, Any]]
    contested: list[dict[str, Any]]
    """Names held by several indexes and claimed by none: left out of the combined ``/simple/``."""


class ReservoirProject(ApiModel):
    name: str
    display: str
    files: int
    quarantined: int


class ReservoirProjects(ApiModel):
    """``GET /api/v1/reservoir/projects``: a page of projects whose name contains ``q``."""

    total: int
    projects: list[ReservoirProject]


class ReservoirFile(ApiModel):
    filename: str
    version: str
    kind: str
    index: str
    size: int
    sha256: str
    upload_time: str | None
    yanked: bool
    status: str
    reason: str | None
    license: str | None
    license_source: str | None
    vulnerabilities: list[str]
    policy: list[str]
    """What the current policy finds against the file now (empty: nothing)."""


class ReservoirProjectFiles(ApiModel):
    """``GET /api/v1/reservoir/projects/{name}``: a project's files as the current policy judges them."""

    name: str
    files: list[ReservoirFile]


class ReservoirPolicy(ApiModel):
    """``GET /api/v1/reservoir/policy``: the policy's TOML text (empty: everything is allowed)."""

    policy: str
    advisories: int


class ReservoirFileChanged(ApiModel):
    """``POST /api/v1/reservoir/files/{filename}/quarantine`` or ``/release``."""

    filename: str
    action: str
    serial: int


class ReservoirUsage(OpenModel):
    """Downloads per day (and per project, file, index or token), as ``cove reservoir stats --json`` prints them."""

    since: str
    days: int
    by: str
    kind: str | SkipJsonSchema[None] = None
    rows: list[dict[str, Any]]
    totals: dict[str, dict[str, int]]


class ReservoirAudit(OpenModel):
    """Every file judged by the current policy and advisories, as ``cove reservoir audit --json`` prints it."""

    serial: int
    advisories: int
    summary: dict[str, int]
    files: list[dict[str, Any]]
    debs: list[dict[str, Any]]
    cran: list[dict[str, Any]]


class ReservoirBundle(ApiModel):
    """A bundle this site exported (``site_id`` is this site) or imported and applied (where it came from)."""

    id: int
    direction: Literal["export", "import"]
    site_id: str
    base_serial: int
    target_serial: int
    events: int
    name: str
    created: str


class ReservoirReview(OpenModel):
    """An import held for review, as ``cove reservoir review show --json`` prints it (``changes`` when shown,
    ``import`` once approved, ``blobs_deleted`` once rejected)."""

    id: int
    source_id: str
    base_serial: int
    target_serial: int
    bundle: str
    created: str
    status: str
    decided: str | SkipJsonSchema[None] = None
    note: str | SkipJsonSchema[None] = None
    summary: dict[str, Any]

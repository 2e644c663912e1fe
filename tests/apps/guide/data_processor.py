"""The guide's sample 4, a task queue with a typed input, as written.

Adapted where this machine cannot follow it: no package index for the test
server's builds (``boto3`` and ``pandas`` left out of the image), and 2Gi of
memory rather than 8Gi, which a CI runner's worker may not have. The dataset
helpers are small stand-ins; the guide uses ``Image`` without importing it.
"""

from cove import Image, TaskPolicy, schema, task_queue

STORED: list[int] = []


def download_dataset(url: str) -> list[int]:
    """Stands in for a download: ``numbers://N`` is the numbers 0..N-1."""
    return list(range(int(url.removeprefix("numbers://"))))


def apply_processing(dataset: list[int], processing_type: str) -> list[int]:
    return [x * x for x in dataset] if processing_type == "square" else list(dataset)


def store_results(result: list[int]) -> None:
    STORED.extend(result)
    print(f"stored {len(result)} records")


# The guide's code from here on, laid out as it is there.
# fmt: off
class DataProcessingInput(schema.Schema):
    dataset_url = schema.String()
    processing_type = schema.String()

@task_queue(
    name="data-processor",
    image=Image(),
    cpu=4,
    memory="2Gi",
    inputs=DataProcessingInput,
    task_policy=TaskPolicy(
        max_retries=3,
        retry_delay_seconds=60
    )
)
def process_large_dataset(input: DataProcessingInput):
    # download and process the dataset
    dataset = download_dataset(input.dataset_url)
    result = apply_processing(dataset, input.processing_type)

    # store the results
    store_results(result)
    return {"status": "completed", "processed_records": len(result)}

"""Endpoints and queues whose inputs are declared with cove.schema."""

from cove import endpoint, schema, task_queue


class Prompt(schema.Schema):
    text = schema.String(max_length=20)
    temperature = schema.Float(default=0.7, minimum=0, maximum=2)
    count = schema.Integer(default=1, minimum=1)
    loud = schema.Boolean(default=False)
    extra = schema.JSON(default=None)
    attachment = schema.File(default=None, max_bytes=64)


@endpoint(inputs=Prompt)
def typed(prompt: Prompt, context) -> dict:  # type: ignore[no-untyped-def]
    text = prompt.text.upper() if prompt.loud else prompt.text
    size = len(prompt.attachment.content) if prompt.attachment else 0
    return {
        "text": text * prompt.count,
        "temperature": prompt.temperature,
        "extra": prompt.extra,
        "attachment_bytes": size,
        "kind": type(prompt).__name__,
        "has_context": context.call_id is not None,
    }


@task_queue(inputs=Prompt)
def typed_queue(prompt: Prompt) -> str:
    return prompt.text

"""The guide's sample 2, an autoscaled endpoint, as written.

Adapted where this machine cannot follow it: no GPU (``gpu="A10G"`` left out)
and no package index for the test server's builds (``transformers`` and
``torch`` left out of the image); ``load_language_model`` is a small stand-in.
The guide uses ``Image`` without importing it.
"""

from cove import Image, QueueDepthAutoscaler, endpoint


class _EchoModel:
    """Stands in for a language model: "generates" by repeating the prompt's words, up to max_tokens."""

    def generate(self, prompt: str, max_tokens: int) -> str:
        words = prompt.split()
        return " ".join((words * max_tokens)[:max_tokens])


def load_language_model() -> _EchoModel:
    return _EchoModel()


# The guide's code from here on, laid out as it is there.
# fmt: off
@endpoint(
    image=Image(),
    autoscaler=QueueDepthAutoscaler(
        max_containers=10,
        tasks_per_container=50
    )
)
def text_generation(prompt: str) -> str:
    # load the model (cached after the first run)
    model = load_language_model()

    # generate the response
    response = model.generate(prompt, max_tokens=100)
    return response

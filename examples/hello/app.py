"""A small numeric endpoint: statistics, a least-squares line and the spectrum of a signal.

Deploy it with ``cove deploy examples/hello/app.py:predict`` and call it with
``curl -H "Authorization: Bearer $TOKEN" -d '{"x": [1, 2, 4, 8]}' $URL``.
"""

from cove import Image, QueueDepthAutoscaler, endpoint

image = Image(python_packages=["numpy>=1.26"])

with image.imports():
    import numpy as np


@endpoint(
    image=image,
    cpu=1,
    memory="1Gi",
    autoscaler=QueueDepthAutoscaler(max_containers=2, tasks_per_container=8),
    concurrent_requests=8,
)
def predict(x: list[float]) -> dict[str, object]:
    """Describe the series ``x`` and extrapolate its linear trend one step ahead."""
    if not isinstance(x, list) or len(x) < 2:
        raise ValueError("x must be a list of at least two numbers")
    series = np.asarray(x, dtype=np.float64)
    steps = np.arange(series.size, dtype=np.float64)
    slope, intercept = np.polyfit(steps, series, deg=1)
    spectrum = np.abs(np.fft.rfft(series - series.mean()))
    return {
        "n": int(series.size),
        "mean": float(series.mean()),
        "std": float(series.std()),
        "slope": float(slope),
        "intercept": float(intercept),
        "next": float(slope * series.size + intercept),
        "dominant_frequency": int(spectrum.argmax()),
        "numpy": np.__version__,
    }

"""Image build timings: cold (empty uv cache), warm (cache filled, new environment) and cached (no build).

    uv run python bench/images.py [--index-url URL] [--packages numpy ...]

Each run uses a throwaway Cove home, so it measures what a fresh server sees.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from cove._host.home import Home
from cove.images import ImageBuilder, remove_image
from cove.sdk._image import Image


async def timed(builder: ImageBuilder, image: Image) -> float:
    started = time.perf_counter()
    await builder.build(image.spec())
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index-url", default=None)
    parser.add_argument("--packages", nargs="+", default=["numpy"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    image = Image(python_packages=args.packages)
    root = Path(tempfile.mkdtemp(prefix="cove-bench-images-"))
    try:
        home = Home(root)
        builder = ImageBuilder(home, index_url=args.index_url)
        cold = await timed(builder, image)
        warm = []
        for _ in range(args.repeat):
            remove_image(home, image.id)
            warm.append(await timed(builder, image))
        cached = [await timed(builder, image) for _ in range(args.repeat)]
        imports = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                str(home.images / image.id / "bin" / "python"), "-c", f"import {args.packages[0]}"
            )
            await process.wait()
            imports.append(time.perf_counter() - started)
        print(f"packages: {' '.join(args.packages)}")
        print(f"cold build (empty uv cache): {cold * 1000:8.0f} ms")
        print(f"warm build (cache filled):   {statistics.median(warm) * 1000:8.0f} ms median of {args.repeat}")
        print(f"cached (already built):      {statistics.median(cached) * 1000:8.2f} ms median of {args.repeat}")
        print(f"python -c 'import {args.packages[0]}': {statistics.median(imports) * 1000:8.0f} ms median")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

"""The code that runs inside a container: ``python -m cove.runner``.

It loads the user's module once, runs ``on_start`` once, then answers HTTP
requests on the listening socket the worker handed in as fd 3. Everything
here is standard library only, because the container's interpreter has the
image's packages and nothing of Cove's own dependencies; and nothing is
imported before the user's module, so the user's imports set the cold start.
"""

"""Serving poses over HTTP: what the BentoML service (service/service.py) is built from, and how a Bento is packaged.

- `http`: upload limits and decoding, response schemas, the adaptive batcher, ASGI middlewares, /render.
- `packaging`: building the Bento `pose-service:<version>` from a model version and its serving variant.
"""

"""Serving poses: what the BentoML service (service/service.py) is built from, and how a Bento is packaged.

- `decoding`: the one decoder for every image a client sends (HTTP uploads, the live socket), its `ImagePolicy`;
  `image_header` reads format and size from the bytes before anything is decoded.
- `limits`: the HTTP service's request limits from the environment (`ServingLimits`).
- `schemas`: the response bodies. `batcher`: in-process adaptive batching. `render`: what /render draws.
- `middleware`: ASGI admission control, the `/model` route, the multipart field check.
- `memory`: the glibc tweak that keeps a long-running server's memory flat.
- `packaging`: building the Bento `pose-service:<version>` from a model version and its serving variant.
"""

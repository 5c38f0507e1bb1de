"""Batch inference: a folder of photos and videos -> poses (DESIGN.md's JSON, COCO results, tracks) and avatars
(images, videos), the logic behind `inference_pipeline` (pipelines/inference.py).

config.py holds the pipeline's parameters, media.py the input batch (listing, sharding), batch.py what one shard
does to each file, results.py the outputs (one folder per shard, merged, summarised, COCO results JSON).
"""

from vtpose.inference.batch import infer_shard
from vtpose.inference.config import InferenceConfig
from vtpose.inference.media import MediaBatch, ingest_media
from vtpose.inference.results import InferenceResults, merge_results

__all__ = ["InferenceConfig", "InferenceResults", "MediaBatch", "infer_shard", "ingest_media", "merge_results"]

"""Read, validate, merge and write pose datasets: COCO JSON, MPII (mmpose JSON or its own .mat), COCO 2017,
YOLO-pose.

Each function here is a plain library call that a thin ZenML step wraps; all write their output folder
atomically (temp folder + rename) and raise `VtposeError` with the file, the record and the fix.
"""

from __future__ import annotations

from vtpose.data.coco import ingest_coco_folder, load_coco_json, split_counts
from vtpose.data.fetch import COCO2017_BASE_URL, COCO2017_CHECKSUMS, download, fetch_coco2017, safe_extract
from vtpose.data.merge import SourceSpec, is_merged, merge_datasets, source_part
from vtpose.data.mpii import ingest_mpii
from vtpose.data.mpii_mat import ingest_mpii_mat, read_mpii_mat
from vtpose.data.validate import ValidationIssue, ValidationReport, validate_dataset
from vtpose.data.yolo import convert_to_yolo, write_data_yaml, write_yolo_labels

__all__ = [
    "COCO2017_BASE_URL",
    "COCO2017_CHECKSUMS",
    "SourceSpec",
    "ValidationIssue",
    "ValidationReport",
    "convert_to_yolo",
    "download",
    "fetch_coco2017",
    "ingest_coco_folder",
    "ingest_mpii",
    "ingest_mpii_mat",
    "is_merged",
    "load_coco_json",
    "merge_datasets",
    "read_mpii_mat",
    "safe_extract",
    "source_part",
    "split_counts",
    "validate_dataset",
    "write_data_yaml",
    "write_yolo_labels",
]

"""PyTorch backend: a YOLO-pose `.pt` checkpoint's network run directly (loaded with Ultralytics, fused, eval mode).

Only the network comes from Ultralytics; letterbox and decoding are the shared ones (`vtpose.backends.base`), so the
`.pt` sees exactly the input the ONNX and OpenVINO exports see. (The decoding reproduces `YOLO(...).predict` on the
same input: AP 0.4920 both ways on the val split with Ultralytics' own minimal-rectangle rule.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtpose.backends.base import DEFAULT_CONF, DEFAULT_IMGSZ, OUTPUT_ROWS, PoseBackend
from vtpose.errors import VtposeError
from vtpose.keypoints import NUM_KEYPOINTS


def auto_device() -> str:
    """ "cuda:0" when PyTorch sees a GPU, else "cpu"."""
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


class TorchPoseModel(PoseBackend):
    """A YOLO-pose `.pt` checkpoint on PyTorch.

    Calls may come from several threads (inference mode, no state kept between calls). PyTorch's own intra-op
    thread count is process-wide; callers that share the cores set it (`vtpose.studio.video` uses one thread).

    Args:
        path: the `.pt` file (an Ultralytics pose checkpoint, COCO-17 keypoints).
        imgsz: inference size (square side), pixels; a multiple of the stride.
        conf: minimum person confidence kept.
        device: "cpu", "cuda:0"... or None for CUDA when present, else CPU.

    Raises:
        VtposeError: the file is missing, not a checkpoint, or not a COCO-17 pose model.
        ValueError: imgsz is not a positive multiple of the stride.
    """

    name = "pytorch"

    def __init__(
        self, path: str | Path, imgsz: int = DEFAULT_IMGSZ, conf: float = DEFAULT_CONF, device: str | None = None
    ) -> None:
        super().__init__(path, imgsz, conf)
        import torch
        from ultralytics.nn.tasks import load_checkpoint

        self.device = device or auto_device()
        try:
            model, _ = load_checkpoint(str(self.weights), device=torch.device(self.device))
        except (RuntimeError, TypeError, ValueError, EOFError, ModuleNotFoundError) as error:
            raise VtposeError(
                f"{self.weights}: not a loadable Ultralytics checkpoint ({error}); pass a YOLO-pose .pt file."
            ) from error
        kpt_shape = tuple(getattr(model, "kpt_shape", None) or getattr(model.model[-1], "kpt_shape", None) or ())
        if kpt_shape != (NUM_KEYPOINTS, 3):
            raise VtposeError(
                f"{self.weights}: keypoint shape {kpt_shape}, expected ({NUM_KEYPOINTS}, 3); "
                "use a COCO-17 pose model (kpt_shape [17, 3])."
            )
        stride = int(max(model.stride)) if hasattr(model, "stride") else 32
        if imgsz % stride:
            raise ValueError(f"imgsz={imgsz} must be a positive multiple of {stride} (the model's stride)")
        self.model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
        self._torch = torch

    def _forward(self, batch: np.ndarray, alone: bool) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.device)
            # On a CPU one image at a time: a batch costs as much per image there, and PyTorch's batched kernels
            # round differently (up to 6e-4 px), which would make an image's answer depend on its batch-mates.
            chunks = inputs.split(1) if self.device == "cpu" else (inputs,)
            outputs = [self.model(chunk) for chunk in chunks]
        outputs = [out[0] if isinstance(out, list | tuple) else out for out in outputs]
        output = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        if output.ndim != 3 or output.shape[1] != OUTPUT_ROWS:
            raise VtposeError(
                f"{self.weights}: the network answered shape {tuple(output.shape)}, expected (N, {OUTPUT_ROWS}, A); "
                "use a YOLO-pose model with the standard (non end-to-end) head."
            )
        return output.float().cpu().numpy()

"""Pipeline overhead: the ZenML `train_model` step against plain `yolo pose train` with the same arguments.

Both train the smoke config (1 epoch, 320 px) on the same converted data, on the same machine, one after the
other. The step's time is ZenML's own record of it (start to end), so it includes loading the dataset artifact
from the artifact store, MLflow logging and storing the weights and curves artifacts.

    .venv/bin/python benchmarks/bench_pipeline_overhead.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMOKE = PROJECT_ROOT / "configs" / "smoke.yaml"


def plain_yolo_train(data_yaml: Path, out: Path) -> float:
    """Seconds for `yolo pose train` with the smoke config's arguments."""
    from vtpose.training.train import TrainConfig

    train = yaml.safe_load(SMOKE.read_text())["parameters"]["train"]
    config = TrainConfig(**train)
    args = config.ultralytics_args()
    model = PROJECT_ROOT / "data" / "pretrained" / "yolo11n-pose.pt"
    cli = [
        str(Path(sys.executable).parent / "yolo"),
        "pose",
        "train",
        f"model={model}",
        f"data={data_yaml}",
        f"project={out}",
        "name=plain",
        "exist_ok=True",
    ]
    cli += [f"{k}={v}" for k, v in args.items()]
    started = time.perf_counter()
    subprocess.run(cli, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def pipeline_train_step(zenml_home: Path) -> float:
    """Seconds ZenML recorded for the train_model step of a fresh smoke pipeline run (cache off)."""
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(zenml_home / "config"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "BENTOML_HOME": str(zenml_home / "bentoml"),
    }
    script = f"""
from zenml.client import Client
from zenml.enums import StackComponentType
c = Client()
try:
    c.get_stack("bench")
except KeyError:
    c.create_stack_component(name="mlflow_tracker", flavor="mlflow",
        component_type=StackComponentType.EXPERIMENT_TRACKER, configuration={{}})
    c.create_stack(name="bench", components={{StackComponentType.ORCHESTRATOR: "default",
        StackComponentType.ARTIFACT_STORE: "default", StackComponentType.EXPERIMENT_TRACKER: "mlflow_tracker"}})
c.activate_stack("bench")
from pipelines import training_pipeline
run = training_pipeline.with_options(config_path={str(SMOKE)!r}, enable_cache=False)()
step = Client().get_pipeline_run(run.id).steps["train_model"]
print("STEP_SECONDS", (step.end_time - step.start_time).total_seconds())
"""
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
    line = next(x for x in result.stdout.splitlines() if x.startswith("STEP_SECONDS"))
    return float(line.split()[1])


def main() -> None:
    """Print both times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    from vtpose.artifacts import PoseDataset  # noqa: F401  (imports vtpose, setting YOLO_OFFLINE)
    from vtpose.data import convert_to_yolo, ingest_coco_folder, write_data_yaml
    from vtpose.paths import COCO_MINI_DIR

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        dataset = ingest_coco_folder(COCO_MINI_DIR, tmp_path / "dataset")
        yolo = convert_to_yolo(dataset, tmp_path / "yolo")
        data_yaml = write_data_yaml(yolo.root, absolute=True)
        plain, step = [], []
        for i in range(args.repeat):
            plain.append(plain_yolo_train(data_yaml, tmp_path / f"plain{i}"))
            step.append(pipeline_train_step(tmp_path / f"zenml{i}"))
            print(f"round {i + 1}: plain yolo pose train {plain[-1]:.1f} s, pipeline train_model step {step[-1]:.1f} s")
    best_plain, best_step = min(plain), min(step)
    print(f"plain `yolo pose train`: {best_plain:.1f} s (best of {args.repeat})")
    print(f"ZenML train_model step:  {best_step:.1f} s (best of {args.repeat})")
    print(f"ratio step / plain: {best_step / best_plain:.2f}x (overhead {best_step - best_plain:+.1f} s)")


if __name__ == "__main__":
    main()

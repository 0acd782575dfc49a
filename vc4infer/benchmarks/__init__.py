"""Benchmarks, above the parts they measure: the emulator's own speed (`emulator`), the NEON
runtime against onnxruntime (`neon`) and the timing model against published VideoCore IV
measurements (`calibration`). `vc4infer bench` and `make bench` call them; nothing below this
package imports it."""

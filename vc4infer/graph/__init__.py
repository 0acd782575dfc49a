"""Graph IR, importers (TFLite, ONNX, TF frozen graph), preprocessing and labels."""

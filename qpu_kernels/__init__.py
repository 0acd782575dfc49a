"""QPU kernels of vc4infer, written in the vc4infer.qpu DSL, with their launch helpers."""

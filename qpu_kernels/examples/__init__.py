"""Small complete QPU programs to start from: `python -m qpu_kernels.examples.hello_world`,
`python -m qpu_kernels.examples.vector_add` (runs on the emulator anywhere, on the GPU of a Pi)."""

"""VideoCore IV emulator: QPUs, VPM, DMA, TMU, SFU, semaphores, and a timing model."""

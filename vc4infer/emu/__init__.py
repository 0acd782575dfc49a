"""VideoCore IV emulator: QPUs, VPM, DMA, TMU, SFU, semaphores, and a timing model.

Use it through the Driver (`Driver(backend="emu", strict=True, clock_hz=400e6)`), through
`hostside.driver.emu.EmuBackend`, or from the shell (`vc4infer emu kernel.bin ...`).

Modules (one job each):
  memory   GPU memory: one byte array at a bus address, the table of live buffers
  decode   instruction words -> integer field rows for the hot loop
  core     the compiled instruction loop, the deterministic scheduler of 1-12 QPUs, semaphores
           and the mutex
  alu      add/mul opcodes, float behaviour, C flags      pack     pack and unpack
  vpm      generic VPM reads/writes                       dma      VCD loads, VDW stores
  tmu      direct lookups and the L1/L2 cache model       sfu      recip, rsqrt, exp2, log2
  timing   every timing parameter, with its source        state    layout of the state arrays
  machine  the Python facade: launch, statistics, errors  trace    per-instruction records
  errors   MemoryFaultError, DeadlockError, BudgetExceededError, UndefinedBehaviourError
  bench    the emulator's own speed benchmark             jit      numba when available

Where the reference guide and hardware reports disagree the emulator follows the hardware
measurement, says so where it decides, and in strict mode raises UndefinedBehaviourError on
programs whose result depends on the choice.
"""

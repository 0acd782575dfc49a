"""The hw backend on a simulated board (hostside.driver.simboard): the production mailbox, memory
and launch code above a simulated /dev/vcio and /dev/mem, with execute_qpu run by the emulator on
the same memory. Results come back through the whole hw path; nothing stays allocated."""
import numpy as np
import pytest

import vc4infer
from hostside.driver import (Driver, DriverError, GpuMemoryTooSmallError, LaunchTimeoutError,
                             QpuEnableRefusedError)
from hostside.driver import mailbox as mb
from hostside.driver import simboard
from hostside.driver.hw import HwBackend
from qpu_kernels import sgemm
from vc4infer.emu.errors import MemoryFaultError
from vc4infer.graph import zoo
from vc4infer.qpu import qpu


def sgemm_through(drv, m=40, k=37, n=50, a_address=None):
    rng = np.random.default_rng(1)
    a_host = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    a = drv.copy(a_host)
    w = drv.copy(sgemm.pack_weights(b, None, m))
    c = drv.alloc((m, n), "float32")
    for lc in sgemm.build(drv, m, k, n, a.address if a_address is None else a_address(a),
                          a.strides[0], w.address, c.address, c.strides[0]):
        lc.run(drv)
    return np.array(c), a_host.astype(np.float64) @ b.astype(np.float64)


@pytest.mark.parametrize("memory", ["vcsm-cma", "mailbox"])
@pytest.mark.parametrize("board", ["pi3", "pi2", "pi1", "pi-zero", "pi3:arm64"])
def test_a_kernel_result_comes_back_through_the_hw_path(board, memory):
    backend = HwBackend(board=board, memory=memory)
    firmware = backend.simulated
    with Driver(backend) as drv:
        got, want = sgemm_through(drv)
        assert drv.backend_name == "hw" and drv.modelled
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        # the launch went through the firmware's mailbox; GPU memory from the firmware's
        # gpu_mem share (mem_alloc, mem_lock) or from the CMA pool below it
        tags = {tag for tag, _ in firmware.recent_calls}
        assert {mb.TAG_ENABLE_QPU, mb.TAG_EXECUTE_QPU} <= tags
        from_firmware = {mb.TAG_MEM_ALLOC, mb.TAG_MEM_LOCK} <= tags
        assert from_firmware == (memory == "mailbox")
        window = firmware.gpu_window if memory == "mailbox" else firmware.cma_window
        assert window[0] <= drv.alloc((16,), "float32").address < window[1]
        assert (firmware.live_cma_blocks() > 0) == (memory == "vcsm-cma")
        assert drv.last_stats.modelled_seconds > 0
        assert drv.last_stats.clock_hz == firmware.spec.v3d_hz
    assert firmware.live_handles() == {} and firmware.live_cma_blocks() == 0
    assert not firmware.qpu_enabled


def test_board_facts_follow_the_board():
    zero = HwBackend(board="pi-zero", memory="mailbox")
    try:
        assert zero.board.soc == "BCM2835" and zero.board.model.startswith("Raspberry Pi Zero")
        assert zero.clock_hz == 300e6
        assert zero.memory.vc_memory == (512 - 128 << 20, 128 << 20)    # gpu_mem=128 of 512 MB
        assert zero.mailbox.get_board_revision() == 0x900092
    finally:
        zero.close()


def test_an_address_with_the_wrong_alias_bits_faults():
    # the hw backend's buffers live at the 0xC ("direct") alias; the same memory through the
    # L1+L2-cached 0x0 alias is not what the allocation was made for
    with Driver(backend="hw", board="pi3") as drv:
        with pytest.raises(MemoryFaultError, match=r"TMU read of 4 bytes at 0x[0-3][0-9A-F]{7} .* "
                                                   "outside every live buffer"):
            sgemm_through(drv, a_address=lambda a: a.address & 0x3FFFFFFF)


@qpu
def spin(asm, rounds):
    ldi(r0, rounds)
    L.loop
    isub(r0, r0, 1, set_flags=True)
    jzc(L.loop)
    nop()
    nop()
    nop()
    exit()


def test_a_launch_longer_than_its_timeout_times_out():
    # 50,000 rounds of 5 instructions, 4 cycles each, at 250 MHz model to 4 ms: over a 2 ms
    # limit, as the firmware answers when the kernel's mailbox wait runs out
    with Driver(backend="hw", board="pi1") as drv:
        program = drv.program(spin, 50_000)
        stats = drv.execute(1, program, [0], timeout=0.010)     # within 10 ms: fine
        assert stats.modelled_seconds == pytest.approx(50_000 * 5 * 4 / 250e6, rel=0.01)
        with pytest.raises(LaunchTimeoutError, match="did not end within 0.002 s"):
            drv.execute(1, program, [0], timeout=0.002)


@qpu
def spin_forever(asm):
    L.loop
    jmp(L.loop)
    nop()
    nop()
    nop()


def test_a_kernel_that_never_ends_times_out_like_the_firmware():
    # the simulated firmware waits timeout_ms of modelled V3D time, then answers a timeout
    with Driver(backend="hw", board="pi3") as drv:
        with pytest.raises(LaunchTimeoutError, match="did not end within 0.003 s"):
            drv.execute(1, drv.program(spin_forever), [0], timeout=0.003)


def test_the_environment_variable_picks_the_board(monkeypatch):
    monkeypatch.setenv(simboard.ENV_VAR, "pi-zero")
    for spec in ("hw", "auto"):
        with Driver(backend=spec) as drv:
            assert drv.backend_name == "hw" and drv.clock_hz == 300e6
    for wrong in ("pi5", "pi3:arm65", "pi3:gpu_mem=8"):
        monkeypatch.setenv(simboard.ENV_VAR, wrong)
        with pytest.raises(DriverError, match="pi3, pi2, pi1, pi-zero, optionally with ':arm64'"):
            Driver(backend="hw")


def test_board_options():
    firmware = simboard.firmware_for("pi1:arm64:gpu_mem=64:kms")
    try:
        assert (firmware.pointer_size, firmware.gpu_mem_bytes, firmware.refuse_qpu_enable) == \
            (8, 64 << 20, True)
        assert firmware.spec is simboard.BOARDS["pi1"]
    finally:
        firmware.close()


def test_a_wrong_pointer_size_is_refused_like_a_kernel_does():
    firmware = simboard.SimulatedFirmware(simboard.BOARDS["pi3"], pointer_size=8)
    try:
        with pytest.raises(mb.MailboxError, match="ioctl"):
            mb.Mailbox(firmware, pointer_size=4).get_board_revision()
        assert mb.Mailbox(firmware, pointer_size=8).get_board_revision() == 0xA02082
    finally:
        firmware.close()


# --- faults through the whole path: one clear error, and no GPU memory left on the board --------

def test_kms_holding_the_v3d_is_one_error_with_its_fix():
    firmware = simboard.SimulatedFirmware(simboard.BOARDS["pi3"], refuse_qpu_enable=True)
    with pytest.raises(QpuEnableRefusedError, match=r"vc4 DRM driver owns the V3D \(fix: .*"
                                                    r"dtoverlay=vc4-kms-v3d"):
        Driver(backend="hw", board=firmware)
    assert firmware.live_handles() == {} and firmware.live_cma_blocks() == 0
    assert not firmware.qpu_enabled


def test_gpu_mem_used_up_while_loading_a_model_frees_what_it_took():
    entry = zoo.get("mobilenet_v1")
    if zoo.local_path(entry) is None:
        pytest.skip(f"mobilenet_v1 needs {entry.package}: {entry.pip}")
    # 20 MB of gpu_mem: the 6.4 MB arena fits, the 17.7 MB of weights do not
    firmware = simboard.SimulatedFirmware(simboard.BOARDS["pi-zero"], gpu_mem_bytes=20 << 20,
                                          has_vcsm_cma=False)
    with pytest.raises(GpuMemoryTooSmallError, match=r"cannot allocate \d+ bytes .*gpu_mem.* "
                                                     r"Fix: raise `gpu_mem=`") as info:
        vc4infer.load("mobilenet_v1", backend="hw", driver_options={"board": firmware})
    assert "\n" not in str(info.value)
    assert firmware.live_handles() == {} and not firmware.qpu_enabled


def test_the_cma_pool_used_up_while_loading_a_model_frees_what_it_took():
    entry = zoo.get("mobilenet_v1")
    if zoo.local_path(entry) is None:
        pytest.skip(f"mobilenet_v1 needs {entry.package}: {entry.pip}")
    firmware = simboard.firmware_for("pi3:cma=20")
    with pytest.raises(GpuMemoryTooSmallError, match=r"the CMA pool cannot hold \d+ bytes"):
        vc4infer.load("mobilenet_v1", backend="hw", driver_options={"board": firmware})
    assert firmware.live_cma_blocks() == 0 and not firmware.qpu_enabled


def test_a_launch_that_times_out_leaves_nothing_allocated():
    firmware = simboard.SimulatedFirmware(simboard.BOARDS["pi1"])
    with Driver(backend="hw", board=firmware) as drv:
        drv.alloc((1024,), "float32")
        with pytest.raises(LaunchTimeoutError):
            drv.execute(1, drv.program(spin, 50_000), [0], timeout=0.001)
        assert firmware.live_cma_blocks() > 0
    assert firmware.live_handles() == {} and firmware.live_cma_blocks() == 0
    assert not firmware.qpu_enabled


@pytest.mark.parametrize("model", ["mobilenet_v1", "mobilenet_v2"])
def test_no_mobilenet_launch_comes_near_the_mailbox_limit_on_a_pi1(model, monkeypatch):
    """The kernel gives a mailbox call 1 s; the scheduler plans launches at a quarter of it at
    the slowest clock, so on a Pi 1 (250 MHz) every launch must model well under 1 s."""
    entry = zoo.get(model)
    if zoo.local_path(entry) is None:
        pytest.skip(f"{model} needs {entry.package}: {entry.pip}")
    seconds = []
    execute = HwBackend.execute

    def recording(self, control, timeout_s):
        stats = execute(self, control, timeout_s)
        seconds.append(stats.modelled_seconds)
        return stats

    monkeypatch.setattr(HwBackend, "execute", recording)
    with vc4infer.load(model, backend="hw", driver_options={"board": "pi1"}) as m:
        m.run(np.zeros(m.input_spec.shape, m.input_spec.dtype))
    assert len(seconds) > 20 and max(seconds) < 0.25, max(seconds)


# --- caches at the boundary ---------------------------------------------------------------------

def _cached_sgemm(skip_clean_of=None, skip_invalidate_of=None):
    """C = A @ B through host-cached vcsm-cma mappings, with the clean of the array `skip_clean_of`
    ("a") or the invalidate of `skip_invalidate_of` ("c") left out."""
    backend = HwBackend(board="pi3", memory="vcsm-cma", host_cached=True)
    clean, invalidate = backend.sync_for_gpu, backend.sync_for_cpu
    skipped = {}
    backend.sync_for_gpu = lambda alloc: None if alloc.bus_address == skipped.get("a") else clean(alloc)
    backend.sync_for_cpu = lambda alloc: None if alloc.bus_address == skipped.get("c") else invalidate(alloc)
    m, k, n = 32, 16, 16
    rng = np.random.default_rng(2)
    a_host, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    with Driver(backend) as drv:
        a = drv.copy(a_host.astype(np.float32))
        w = drv.copy(sgemm.pack_weights(b.astype(np.float32), None, m))
        c = drv.alloc((m, n), "float32")
        c[:] = -1.0                                  # what the host's cache holds of C before
        skipped.update(a=a.address if skip_clean_of == "a" else None,
                       c=c.address if skip_invalidate_of == "c" else None)
        for lc in sgemm.build(drv, m, k, n, a.address, a.strides[0], w.address, c.address,
                              c.strides[0]):
            lc.run(drv)
        return np.array(c), a_host @ b


def test_a_cached_mapping_gives_the_right_result_with_its_syncs():
    got, want = _cached_sgemm()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_without_the_clean_the_qpus_read_what_sdram_held():
    got, want = _cached_sgemm(skip_clean_of="a")     # A never left the host's cache
    assert np.all(got == 0) and np.abs(want).max() > 1


def test_without_the_invalidate_the_host_reads_its_stale_copy():
    got, _ = _cached_sgemm(skip_invalidate_of="c")
    assert np.all(got == -1.0)


# --- fault injection: every mailbox call of a session, failed in turn ---------------------------

def _session(firmware):
    """Open a Driver on `firmware`, run one SGEMM, close: what a short job does."""
    with Driver(backend="hw", board=firmware, memory="mailbox") as drv:
        sgemm_through(drv, m=20, k=8, n=20)


@pytest.mark.parametrize("mode", ["timeout", "garbage"])
def test_every_mailbox_call_failing_in_turn_leaves_the_board_clean(mode):
    """Count the property calls of a clean session; then fail each one in turn: ETIMEDOUT, as the
    kernel reports a firmware that does not answer, or an answer of garbage values. Every run
    ends in one DriverError or in success, and afterwards the firmware holds no handle and the
    QPUs are powered down."""
    clean = simboard.firmware_for("pi3")
    _session(clean)
    calls = clean.calls_made
    assert calls > 10
    outcomes = []
    for i in range(calls):
        firmware = simboard.firmware_for("pi3")
        firmware.fail_call, firmware.fail_mode = i, mode
        try:
            _session(firmware)
            outcomes.append("ok")
        except DriverError as exc:
            assert "\n" not in str(exc)
            outcomes.append(type(exc).__name__)
        leaked = firmware.live_handles()
        assert leaked == {}, (i, clean.recent_calls[i], outcomes[-1], leaked)
        assert not firmware.qpu_enabled or outcomes[-1] != "ok", (i, clean.recent_calls[i])
    assert "ok" in outcomes and len(set(outcomes)) > 2, outcomes


@pytest.mark.parametrize("mode", ["error", "garbage"])
@pytest.mark.parametrize("host_cached", [False, True])
def test_every_vcsm_cma_call_failing_in_turn_leaves_the_board_clean(host_cached, mode):
    """The same over /dev/vcsm-cma's ioctls (allocations, and with a cached mapping the syncs),
    failing or (allocations) answering a garbage bus address: one DriverError or success, and
    afterwards no CMA block held and the QPUs off; a garbage address is never handed on."""
    def session(firmware):
        with Driver(backend="hw", board=firmware, memory="vcsm-cma", host_cached=host_cached) as drv:
            sgemm_through(drv, m=20, k=8, n=20)

    clean = simboard.firmware_for("pi-zero")
    session(clean)
    calls = clean.vcsm_cma.calls_made
    assert calls >= (10 if host_cached else 4)
    outcomes = []
    for i in range(calls):
        firmware = simboard.firmware_for("pi-zero")
        firmware.vcsm_cma.fail_call, firmware.vcsm_cma.fail_mode = i, mode
        try:
            session(firmware)
            outcomes.append("ok")
        except DriverError as exc:
            why = "fault injected" if mode == "error" else "unusable block (fd"
            assert "\n" not in str(exc) and why in str(exc), (i, exc)
            outcomes.append("refused")
        assert firmware.live_cma_blocks() == 0 and not firmware.qpu_enabled, i
    # a failing call always ends the session; a garbled allocation too, while a sync (whose
    # answer holds nothing to garble) goes through
    assert "refused" in outcomes and ("ok" in outcomes) == (host_cached and mode == "garbage"), \
        outcomes

"""The `vc4infer` command. Subcommands live in `vc4infer/commands/` and are imported only when
invoked, so `vc4infer info` on a Pi Zero does not pay for numpy-heavy or numba imports."""
import importlib
from typing import NoReturn

import click

# name -> "module:attribute" of a click command
COMMANDS = {
    "classify": "vc4infer.commands.classify:classify",
    "camera": "vc4infer.commands.camera:camera",
    "bench": "vc4infer.commands.bench:bench",
    "selftest": "vc4infer.commands.selftest:selftest",
    "info": "vc4infer.commands.info:info",
    "models": "vc4infer.commands.models:models",
    "asm": "vc4infer.commands.asm:asm",
    "disasm": "vc4infer.commands.disasm:disasm",
    "emu": "vc4infer.commands.emu:emu",
}


#: exit codes by what went wrong (the first matching class wins); click's usage errors exit 2
EXIT_CODES = (
    ("vc4infer.camera:NoCameraError", 5),                  # this machine's camera: none, or
    ("vc4infer.camera:CameraDeviceError", 5),              # it stopped delivering frames
    ("vc4infer.graph.preprocess:ImageInputError", 3),      # an input the user gave
    ("builtins:FileNotFoundError", 3),
    ("vc4infer.errors:InputError", 3),
    ("vc4infer.camera:CameraError", 3),
    ("vc4infer.graph.zoo:UnknownModelError", 3),
    ("hostside.driver.simboard:SimulatedBoardError", 3),   # VC4INFER_SIMULATED_BOARD
    ("vc4infer.qpu.source:AssembleError", 3),
    ("vc4infer.errors:ModelFormatError", 4),               # the model file
    ("vc4infer.errors:UnsupportedModelError", 4),
    ("vc4infer.errors:ImportOptionError", 4),
    ("vc4infer.graph.zoo:ChecksumError", 4),
    ("vc4infer.device:HardwareUnavailableError", 5),       # this machine cannot run the backend
    ("vc4infer.errors:BackendUnavailableError", 5),
    ("vc4infer.graph.zoo:ModelNotInstalledError", 5),
    ("vc4infer.errors:MissingPackageError", 5),
    ("vc4infer.graph.zoo:DownloadError", 5),
    ("vc4infer.device:DriverError", 6),                    # the GPU or a QPU program failed
)


def exit_code_for(err: BaseException) -> int:
    """The exit code of a failure (1 for any other vc4infer error)."""
    for target, code in EXIT_CODES:
        module, name = target.split(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError:                     # a part this install lacks raised nothing
            continue
        if isinstance(err, cls):
            return code
    return 1


class CliError(click.ClickException):
    """A one-line error with the exit code of its kind (EXIT_CODES)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def fail(err: BaseException, message: str = "") -> NoReturn:
    """Stop the command on `err`: one line (`message`, default the error's text) and the exit
    code of its kind; with `vc4infer --debug`, the error itself, traceback and all."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.find_root().params.get("debug"):
        raise err
    raise CliError(message or str(err), exit_code_for(err)) from err


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def invoke(self, ctx):
        """Run the subcommand; a vc4infer or Driver error that reaches here becomes one line and
        its exit code (with --debug: the traceback)."""
        from vc4infer.device import DriverError
        from vc4infer.errors import Vc4InferError
        try:
            return super().invoke(ctx)
        except (Vc4InferError, DriverError) as err:
            if ctx.params.get("debug"):
                raise
            raise CliError(str(err).splitlines()[0] if str(err) else type(err).__name__,
                           exit_code_for(err)) from err

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup)
@click.version_option(package_name="vc4infer")
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of one line.")
def main(debug: bool):
    """vc4infer: neural-network inference on the Raspberry Pi VideoCore IV GPU."""
    from vc4infer.emu import warmup   # light: numba is imported only when the emulator runs

    warmup.progress_on_stderr = True   # say so on the terminal while the emulator compiles


if __name__ == "__main__":
    main()

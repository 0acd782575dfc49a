"""The `vc4infer` command. Subcommands live in `vc4infer/commands/` and are imported only when
invoked, so `vc4infer info` on a Pi Zero does not pay for numpy-heavy or numba imports."""
import importlib

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


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup)
@click.version_option(package_name="vc4infer")
def main():
    """vc4infer: neural-network inference on the Raspberry Pi VideoCore IV GPU."""
    from vc4infer.emu import warmup   # light: numba is imported only when the emulator runs

    warmup.progress_on_stderr = True   # say so on the terminal while the emulator compiles


if __name__ == "__main__":
    main()

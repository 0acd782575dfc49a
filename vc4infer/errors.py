"""Errors of the model side of vc4infer (files, graphs, the Model API). Each message names the
problem and, where there is one, the fix. Driver errors live in `hostside.driver.errors`."""


class Vc4InferError(Exception):
    """Base class of every model-side error vc4infer raises on purpose."""


class ModelFormatError(Vc4InferError, ValueError):
    """A model file cannot be read: unknown format, wrong magic, truncated or corrupt contents,
    tensors whose shapes contradict each other."""


class UnsupportedModelError(Vc4InferError):
    """A well-formed model file uses an operator, attribute value or data type that vc4infer does
    not implement. The message names the operator, the node and what is supported."""


class ImportOptionError(Vc4InferError, TypeError):
    """An importer was given an option it does not take (a misspelling, or an option of another
    format's importer). The message lists the options it takes."""


class GraphError(Vc4InferError, ValueError):
    """An IR graph is inconsistent: unknown op, missing tensor, wrong number of inputs, shapes
    that do not agree, attributes out of range."""


class InputSpecError(Vc4InferError, ValueError):
    """An array given to `Model.run` does not match the model's input spec (shape, dtype, count).
    The message names the expected and the received values."""


class InputError(Vc4InferError, ValueError):
    """A file or value given on the command line cannot be used (a code file that is not whole
    instructions, a kernel file that does not load, an output path that cannot be written). The
    message names it and what to give instead."""


class MissingPackageError(Vc4InferError):
    """An optional package that a chosen feature needs is not installed; the message says how to
    get it and what works without it."""


class BackendUnavailableError(Vc4InferError):
    """The requested execution backend does not exist or cannot run here."""

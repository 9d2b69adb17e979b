"""Writers of the official dataset file formats, shared by the data tests."""

import io
import pickle
import struct


class _Py2Pickler(pickle._Pickler):
    """Writes pickles the way the official batches were written: protocol 2, Python 2 byte strings."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_str8(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_str8
    dispatch[str] = _save_str8

    def save_global(self, obj, name=None):
        module, qual = obj.__module__, name or obj.__qualname__
        if module == "numpy._core.multiarray":
            module = "numpy.core.multiarray"
        self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode())
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    """`obj` pickled as Python 2 wrote the official CIFAR batches (bytes as str opcodes)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()

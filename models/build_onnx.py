"""Build MobileNet v1 and v2 as ONNX files with `onnx.helper`, at any width multiplier and
resolution, with random but deterministic weights (batch norm included). The files have the
shape of what torch.onnx writes for torchvision-style models (NCHW input, Conv without bias +
BatchNormalization + Relu/Clip, GlobalAveragePool + Flatten + Gemm), with options for the other
forms exporters emit (Clip with attributes before opset 11, the Shape/Gather/Unsqueeze/Concat/
Reshape head torch writes for `x.view(x.size(0), -1)`, ReduceMean instead of GlobalAveragePool,
a dynamic batch dimension).

    python -m models.build_onnx v2 --alpha 0.5 --resolution 128 -o /tmp/mnv2.onnx
"""
from __future__ import annotations

import argparse
from typing import Optional

import numpy as np

HEADS = ("flatten", "reshape_chain", "reduce_mean")


def make_divisible(v: float, divisor: int = 8) -> int:
    """Channel rounding of MobileNet v2 (and torchvision): nearest multiple of `divisor`, never
    more than 10% below `v`."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class _Builder:
    """Accumulates nodes and initializers; names tensors t0, t1, ..."""

    def __init__(self, seed: int, opset: int):
        import onnx  # noqa: F401  (fail early with ImportError if absent)
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def node(self, op: str, inputs: list, n_out: int = 1, **attrs):
        from onnx import helper
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int, groups: int = 1,
                act: Optional[str] = "relu") -> str:
        fan_in = cin // groups * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32)
        w *= np.sqrt(2.0 / fan_in)
        pad = k // 2
        y = self.node("Conv", [x, self.const("w", w)], kernel_shape=[k, k], strides=[stride, stride],
                      pads=[pad, pad, pad, pad], group=groups, dilations=[1, 1])
        gamma = self.rng.uniform(0.5, 1.5, cout).astype(np.float32)
        beta = self.rng.normal(0, 0.1, cout).astype(np.float32)
        mean = self.rng.normal(0, 0.1, cout).astype(np.float32)
        var = self.rng.uniform(0.5, 1.5, cout).astype(np.float32)
        y = self.node("BatchNormalization", [y, self.const("gamma", gamma), self.const("beta", beta),
                                             self.const("mean", mean), self.const("var", var)],
                      epsilon=1e-5)
        if act == "relu":
            y = self.node("Relu", [y])
        elif act == "relu6":
            y = self.clip(y, 0.0, 6.0)
        return y

    def clip(self, x: str, lo: float, hi: float) -> str:
        if self.opset < 11:
            return self.node("Clip", [x], min=lo, max=hi)
        return self.node("Clip", [x, self.const("min", np.float32(lo)), self.const("max", np.float32(hi))])

    def head(self, x: str, channels: int, num_classes: int, head: str, batch) -> str:
        if head == "reduce_mean":
            if self.opset >= 18:
                y = self.node("ReduceMean", [x, self.const("axes", np.array([2, 3], np.int64))],
                              keepdims=0)
            else:
                y = self.node("ReduceMean", [x], axes=[2, 3], keepdims=0)
        else:
            y = self.node("GlobalAveragePool", [x])
            if head == "flatten":
                y = self.node("Flatten", [y], axis=1)
            else:  # torch's x.view(x.size(0), -1)
                shape = self.node("Shape", [y])
                n = self.node("Gather", [shape, self.const("zero", np.array(0, np.int64))], axis=0)
                if self.opset >= 13:
                    n1 = self.node("Unsqueeze", [n, self.const("ax", np.array([0], np.int64))])
                else:
                    n1 = self.node("Unsqueeze", [n], axes=[0])
                target = self.node("Concat", [n1, self.const("m1", np.array([-1], np.int64))], axis=0)
                y = self.node("Reshape", [y, target])
        y = self.node("Dropout", [y]) if self.opset >= 12 else y
        w = (self.rng.standard_normal((num_classes, channels)) / np.sqrt(channels)).astype(np.float32)
        b = self.rng.normal(0, 0.1, num_classes).astype(np.float32)
        return self.node("Gemm", [y, self.const("fc_w", w), self.const("fc_b", b)], transB=1)

    def model(self, x_name: str, y_name: str, y: str, resolution: int, num_classes: int, batch,
              doc: str) -> "onnx.ModelProto":  # noqa: F821
        from onnx import TensorProto, helper
        self.nodes.append(helper.make_node("Identity", [y], [y_name], name="output_identity"))
        graph = helper.make_graph(
            self.nodes, doc,
            [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, [batch, 3, resolution, resolution])],
            [helper.make_tensor_value_info(y_name, TensorProto.FLOAT, [batch, num_classes])],
            initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                              producer_name="vc4infer.models.build_onnx")
        m.ir_version = min(m.ir_version, 8)  # readable by older onnxruntime builds too
        return m


# (expansion t, output channels c, repeats n, first stride s) of MobileNet v2
V2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))
# (output channels, stride) of the 13 depthwise-separable blocks of MobileNet v1
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
             (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1(alpha: float = 1.0, resolution: int = 224, num_classes: int = 1000,
                 opset: int = 13, seed: int = 0, head: str = "flatten", batch=1,
                 act: str = "relu6"):
    """MobileNet v1 (Howard et al. 2017) as an onnx.ModelProto; channels max(int(c*alpha), 8)
    as TF-slim does."""
    b = _Builder(seed, opset)

    def depth(c):
        return max(int(c * alpha), 8)
    c = depth(32)
    y = b.conv_bn("input", 3, c, 3, 2, act=act)
    for cout, stride in V1_BLOCKS:
        y = b.conv_bn(y, c, c, 3, stride, groups=c, act=act)
        y = b.conv_bn(y, c, depth(cout), 1, 1, act=act)
        c = depth(cout)
    y = b.head(y, c, num_classes, head, batch)
    return b.model("input", "output", y, resolution, num_classes, batch,
                   f"mobilenet_v1_{alpha}_{resolution}")


def mobilenet_v2(alpha: float = 1.0, resolution: int = 224, num_classes: int = 1000,
                 opset: int = 13, seed: int = 0, head: str = "flatten", batch=1):
    """MobileNet v2 (Sandler et al. 2018) as torchvision builds it, as an onnx.ModelProto."""
    b = _Builder(seed, opset)
    c = make_divisible(32 * alpha)
    last = make_divisible(1280 * max(1.0, alpha))
    y = b.conv_bn("input", 3, c, 3, 2, act="relu6")
    for t, cout, n, s in V2_BLOCKS:
        cout = make_divisible(cout * alpha)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = int(round(c * t))
            x = y
            if t != 1:
                y = b.conv_bn(y, c, hidden, 1, 1, act="relu6")
            y = b.conv_bn(y, hidden, hidden, 3, stride, groups=hidden, act="relu6")
            y = b.conv_bn(y, hidden, cout, 1, 1, act=None)
            if stride == 1 and c == cout:
                y = b.node("Add", [x, y])
            c = cout
    y = b.conv_bn(y, c, last, 1, 1, act="relu6")
    y = b.head(y, last, num_classes, head, batch)
    return b.model("input", "output", y, resolution, num_classes, batch,
                   f"mobilenet_v2_{alpha}_{resolution}")


def write(model, path: str) -> str:
    """Check the model with onnx.checker and save it; returns the path."""
    import onnx
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("version", choices=["v1", "v2"])
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", choices=HEADS, default="flatten")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    build = mobilenet_v1 if a.version == "v1" else mobilenet_v2
    write(build(a.alpha, a.resolution, opset=a.opset, seed=a.seed, head=a.head), a.output)
    print(a.output)


if __name__ == "__main__":
    main()

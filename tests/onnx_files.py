"""ONNX models built by hand, for the tests of what the tester feeds an export: inputs channels
first, open sizes, two inputs, integer inputs. Each needs the `onnx` package (test-only) and
onnxruntime (optional): the test skips without them.
"""

import json

import numpy as np
import pytest

from adcorre.config import EXPRESSIONS_7


def onnx_classifier(path, input_shape, layout="NCHW", input_type=None, second_input=False):
    """A hand-built ONNX classifier at `path`: the mean of each channel, times a C x 7 matrix,
    softmax; its input in `layout` (the mean makes the result depend on the channel order
    only), of `input_type` (cast to float inside), with a `second_input` if asked. A `.json`
    beside it names the 7 canonical labels, the range [0, 1] and the size 32 x 32.

    Returns:
        `(path, weights)`: the file and its C x 7 matrix.
    """
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime", reason="onnxruntime (optional) is not installed")
    from onnx import TensorProto, helper, numpy_helper

    channels = input_shape[1] if layout == "NCHW" else input_shape[3]
    weights = np.random.default_rng(1).normal(size=(channels, 7)).astype(np.float32) * 4
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=0),
             helper.make_node("MatMul", ["mean", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    inputs = [helper.make_tensor_value_info("x", input_type or TensorProto.FLOAT, input_shape)]
    if input_type is not None:
        nodes.insert(0, helper.make_node("Cast", ["x"], ["x_float"], to=TensorProto.FLOAT))
        nodes[1].input[0] = "x_float"
    if second_input:
        inputs.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]))
        nodes.append(helper.make_node("Identity", ["scale"], ["scale_out"]))
    graph = helper.make_graph(
        nodes, "classifier", inputs,
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 7])]
        + ([helper.make_tensor_value_info("scale_out", TensorProto.FLOAT, [1])]
           if second_input else []),
        initializer=[numpy_helper.from_array(weights, "w"),
                     numpy_helper.from_array(np.array(axes, np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    with open(str(path) + ".json", "w") as handle:
        json.dump({"labels": list(EXPRESSIONS_7), "input_range": [0, 1],
                   "input_size": [32, 32]}, handle)
    return str(path), weights

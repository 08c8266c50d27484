"""A trained DMSL landmark model back from its exported ONNX graph into PyTorch.

Training runs (`runs/`) are not kept in the repository, the shipped ONNX models are: this
lets a warm restart start from a shipped model (`train.py --init-from-onnx`), in any later
session. The exporter folded each batch normalisation into its convolution, so the weights
go into the same network built without batch normalisation (`norm=False`): the same
function, whose convolutions carry the folded weights and biases. Only what the exported
graph computes comes back: for the heatmap landmark model, the points; the U-Net's mask
branch (Algorithm 1's mask, a training target only) is not in the graph.
"""

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

import dmsl_preprocess as P
from dmsl_model import INPUT_NAME
from export import LandmarkExport

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def convolutions_in_call_order(net):
    """The convolutions the network's output depends on, in the order its forward pass calls
    them (the exporter drops the others: the mask branch of the heatmap model)."""
    order = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in net.modules() if isinstance(m, CONVS)]
    net.eval().zero_grad(set_to_none=True)
    try:
        net(torch.rand(1, 1, P.CANVAS, P.CANVAS)).sum().backward()
    finally:
        for h in hooks:
            h.remove()
    used = [m for m in order if m.weight.grad is not None]
    net.zero_grad(set_to_none=True)
    return used


def graph_convolutions(graph, path):
    """(weight, bias) of each Conv / ConvTranspose node of the graph read from `path`, in
    graph order (= the trace's order)."""
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    found = []
    for node in graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            if len(node.input) < 3 or node.input[1] not in tensors or node.input[2] not in tensors:
                raise ValueError(f"{path}: {node.op_type} node {node.name} has no constant weight and bias")
            found.append((tensors[node.input[1]], tensors[node.input[2]]))
    return found


def load_exported(net, path):
    """Copies the graph's convolution weights into `net` (built with norm=False); the number
    copied. A graph of another architecture fails with one line naming both shapes."""
    graph = onnx.load(str(path)).graph
    modules, weights = convolutions_in_call_order(net), graph_convolutions(graph, path)
    if len(modules) != len(weights):
        raise ValueError(f"{path} has {len(weights)} convolutions where this network calls {len(modules)}: "
                         "not this --variant / --head / --heatmap-level")
    for i, (module, (w, b)) in enumerate(zip(modules, weights)):
        if tuple(module.weight.shape) != w.shape or module.bias is None or tuple(module.bias.shape) != b.shape:
            raise ValueError(f"{path}: convolution {i} is {w.shape} in the graph, "
                             f"{tuple(module.weight.shape)} here: not this --variant / --head")
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.array(w, copy=True)))
            module.bias.copy_(torch.from_numpy(np.array(b, copy=True)))
    check_same_function(net, graph, path)
    return len(modules)


def check_same_function(net, graph, path):
    """The network read back must compute what the graph computes (a flip-averaged graph
    is compared with the same averaging), or the weights went to the wrong places."""
    flip_tta = any(t.name == "mirror" for t in graph.initializer)
    image = torch.rand(2, 1, P.CANVAS, P.CANVAS)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: image.numpy()})[0]
    with torch.no_grad():
        want = LandmarkExport(net, flip_tta).eval()(image).numpy()
    worst = float(np.abs(got - want).max())
    if worst > 1e-4:
        raise ValueError(f"{path}: the weights read back compute other points (max difference {worst:.2e})")

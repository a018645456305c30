"""Train-step throughput of the Ad-Corre model under the JAX backend (for the lent GPU).

The GPU machine has JAX but no TensorFlow, so this runs the project's `keras.ops` core
(cnn_model + arm + custom_loss) as a jitted, stateless JAX train step on in-memory data:
forward, the full Ad-Corre loss, backward and the Adam update. For each configuration it
prints images/s and the achieved TFLOP/s, with the FLOPs counted from the model's layers
(`count_forward_macs`: 27.3 GFLOP per training image for `xcp` at 224 px) next to what XLA's
cost analysis of the compiled step reports (on the CPU it reported 91 for `xcp_arm`: it counts
the convolution gradients in its own way, so the peak fraction uses the layer count).

    KERAS_BACKEND=jax python bench/bench_gpu_jax.py --arch xcp --batch-sizes 64 128 256

Runs on a CPU too (slowly; use --arch tiny --input-size 64 for a smoke test).
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def count_forward_macs(model):
    """Multiply-adds of one image's forward pass, counted from the layers' shapes.

    Convolutions (plain, depthwise, separable) and Dense layers; everything else (batch norm,
    activations, pooling, the loss, ARM's 32x32 single-channel convolution: about 1 M MACs) is
    a rounding error next to them.
    """
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
            continue
        channels_in = layer.input.shape[-1]
        if kind == "Dense":
            total += channels_in * layer.units
            continue
        _, height, width, _ = layer.output.shape
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        positions = height * width
        if kind == "Conv2D":
            total += positions * kernel * channels_in * layer.filters
        elif kind == "DepthwiseConv2D":
            total += positions * kernel * channels_in
        else:  # depthwise then pointwise, both at the output size (stride 1 in Xception)
            total += positions * (kernel * channels_in + channels_in * layer.filters)
    return total


def build_step(arch, batch_size, input_size, policy, num_classes=7):
    """Returns (jitted step, initial state, images, labels, model) for one configuration."""
    import jax

    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.custom_loss import AdCorreLoss

    keras.mixed_precision.set_global_policy(policy)
    model = CNNModel().get_model(arch, num_classes=num_classes, weights=None, input_size=input_size)
    loss = AdCorreLoss(num_classes=num_classes)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    omega = np.ones(num_classes, "float32")

    def compute_loss(trainable, non_trainable, images, labels):
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        terms = loss(labels, outputs[0], list(outputs[1:]), omega=omega)
        return terms["loss"], non_trainable

    gradient_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def step(state, images, labels):
        trainable, non_trainable, optimizer_vars = state
        (value, non_trainable), grads = gradient_fn(trainable, non_trainable, images, labels)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return value, (trainable, non_trainable, optimizer_vars)

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.random((batch_size, input_size, input_size, 3), dtype="float32"))
    labels = jax.device_put(rng.integers(0, num_classes, batch_size).astype("int32"))
    jitted = jax.jit(step, donate_argnums=(0,))
    return jitted, state, images, labels, model


def measure(arch, batch_size, input_size, policy, steps):
    import jax

    jitted, state, images, labels, model = build_step(arch, batch_size, input_size, policy)
    # A train step is the forward pass (2 FLOPs per MAC) and a backward pass of twice that.
    counted_flops_per_image = 6.0 * count_forward_macs(model)
    compiled = jitted.lower(state, images, labels).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
    value, state = compiled(state, images, labels)  # warm-up
    jax.block_until_ready(value)
    value, state = compiled(state, images, labels)
    jax.block_until_ready(value)
    start = time.perf_counter()
    for _ in range(steps):
        value, state = compiled(state, images, labels)
    jax.block_until_ready(value)
    seconds = (time.perf_counter() - start) / steps
    return {
        "arch": arch, "policy": policy, "batch": batch_size, "ms/step": 1e3 * seconds,
        "img/s": batch_size / seconds, "GFLOP/img": counted_flops_per_image / 1e9,
        "XLA GFLOP/img": flops / batch_size / 1e9,
        "TFLOP/s": counted_flops_per_image * batch_size / seconds / 1e12, "loss": float(value),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="xcp")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="dense bf16 peak of the device, for the fraction column "
                             "(H100 SXM datasheet: 989)")
    args = parser.parse_args()

    import jax

    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}, keras {keras.__version__}, "
          f"backend {keras.backend.backend()}")
    print("GFLOP/img: counted from the layers (6 x forward MACs); TFLOP/s and peak % use it. "
          "XLA GFLOP/img: XLA's cost analysis of the compiled step, for comparison.")
    header = f"{'arch':8} {'policy':15} {'batch':>5} {'ms/step':>9} {'img/s':>9} {'GFLOP/img':>10} " \
             f"{'XLA GFLOP/img':>14} {'TFLOP/s':>8} {'peak %':>7} {'loss':>8}"
    print(header)
    for policy in args.policies:
        for batch in args.batch_sizes:
            try:
                row = measure(args.arch, batch, args.input_size, policy, args.steps)
            except Exception as error:  # report and go on (e.g. out of memory at one size)
                print(f"{args.arch:8} {policy:15} {batch:5d} failed: {type(error).__name__}: {error}")
                continue
            print(f"{row['arch']:8} {row['policy']:15} {row['batch']:5d} {row['ms/step']:9.1f} "
                  f"{row['img/s']:9.1f} {row['GFLOP/img']:10.2f} {row['XLA GFLOP/img']:14.2f} "
                  f"{row['TFLOP/s']:8.1f} "
                  f"{100 * row['TFLOP/s'] / args.peak_tflops:7.2f} {row['loss']:8.3f}", flush=True)


if __name__ == "__main__":
    main()

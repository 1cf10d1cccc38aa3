"""TP4 part 1, step 4's training loop written by hand, as each backend's users write it, checked against model.fit.

The handout asks for the loop itself (forward pass, loss, zeroing the
gradients, backward, step); the PyTorch lecture calls it the five rituals and
warns of its trap (forget `zero_grad()`: the gradients accumulate). Here the
tiny Transformer classifier of step 4 (dropout off) is trained for a few
steps of SGD with momentum twice from the same weights and batches: once by
`model.fit`, once by the loop of the backend it runs on:

    jax          model.stateless_call + jax.value_and_grad + optimizer.stateless_apply, jitted
    torch        optimizer.zero_grad(); loss.backward(); optimizer.step()  (torch.optim.SGD on model.parameters())
    tensorflow   tf.GradientTape + optimizer.apply, in a tf.function

and the two sets of weights are compared. On torch the loop runs a third
time without `zero_grad()`, to measure the trap. Run it on each backend
(`--backend`), or read RESULTS.md, which sets the three side by side.

    python -m kcourse.tasks.loop --backend torch      # 4,000 sentences (3,200 trained on), 50 steps of 64
    python -m kcourse.tasks.loop --quick              # a smoke run in seconds

The run folder gets steps.csv (the loss of every hand-written step), loop.png and fit.keras.
"""

import numpy as np

from kcourse import cli, datasets, runs
from kcourse.report import Item

main = cli.lab_main(__name__)  # python -m kcourse.tasks.loop: build_parser(), then run_lab(args)

PARITY = {"hand vs fit": 1e-4}
KEY_FIGURES = ("loop",)
IDIOMS = {
    "jax": "model.stateless_call, jax.value_and_grad and optimizer.stateless_apply in a jitted step",
    "torch": "optimizer.zero_grad(), loss.backward() and optimizer.step() with torch.optim.SGD",
    "tensorflow": "tf.GradientTape and optimizer.apply in a tf.function",
}


def sgd(learning_rate, momentum):
    """Keras' SGD: m = momentum m - lr g; w += m, the same update as torch.optim.SGD's b = momentum b + g; w -= lr b."""
    import keras

    return keras.optimizers.SGD(learning_rate, momentum=momentum)


def build_model(vocab, max_len, learning_rate, momentum):
    """The tiny Transformer of step 4 without dropout (the two runs then see the same function), compiled with SGD."""
    from kcourse.models import build_classifier
    from kcourse.training import compile_model

    model = build_classifier(vocab, max_len, drop=0.0, name="tiny_transformer")
    return compile_model(model, sgd(learning_rate, momentum))


# ---------------------------------------------------------------- the loop, by hand, on each backend
def jax_steps(model, batches, learning_rate, momentum):
    """The loop as JAX users write it: a pure function of the weights, differentiated, jitted. Returns the losses."""
    import jax
    import keras

    optimizer = sgd(learning_rate, momentum)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss_of(trainable, non_trainable, x, y):  # 1-2. the forward pass and the loss, as a function of the weights
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, logits), non_trainable

    @jax.jit
    def step(trainable, non_trainable, optimizer_state, x, y):
        (loss, non_trainable), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable, non_trainable, x, y)  # 3. gradients, returned
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)  # 4. the update
        return loss, trainable, non_trainable, optimizer_state

    state = [[v.value for v in variables] for variables in (model.trainable_variables, model.non_trainable_variables,
                                                            optimizer.variables)]
    losses = []
    for x, y in batches:
        loss, *state = step(*state, x, y)
        losses.append(float(loss))
    for variables, values in zip((model.trainable_variables, model.non_trainable_variables), state):
        for variable, value in zip(variables, values):
            variable.assign(value)
    return {"loss": losses}


def torch_steps(model, batches, learning_rate, momentum, zero_grad=True):
    """The PyTorch lecture's five rituals, on the Keras model's parameters (a Keras model is a torch Module on torch).

    Returns the losses and the norm of the gradient each step applied; `zero_grad=False` is the trap.
    """
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)
    criterion = torch.nn.CrossEntropyLoss()
    losses, norms = [], []
    for x, y in batches:
        if zero_grad:
            optimizer.zero_grad()  # 1. forget the last step's gradients
        logits = model(x, training=True)  # 2. forward pass
        loss = criterion(logits, torch.as_tensor(y, dtype=torch.long, device=logits.device))  # 3. the loss
        loss.backward()  # 4. autograd: adds this batch's gradient into every parameter's .grad
        optimizer.step()  # 5. the update
        losses.append(loss.item())
        norms.append(float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))))
    return {"loss": losses, "gradient norm": norms}


def tensorflow_steps(model, batches, learning_rate, momentum):
    """The loop as TensorFlow users write it: a GradientTape records the forward pass, tape.gradient differentiates."""
    import keras
    import tensorflow as tf

    optimizer = sgd(learning_rate, momentum)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))  # 1-2. forward pass and loss, recorded
        grads = tape.gradient(loss, model.trainable_variables)  # 3. gradients, returned
        optimizer.apply(grads, model.trainable_variables)  # 4. the update
        return loss

    return {"loss": [float(step(x, y)) for x, y in batches]}


def hand_steps(model, batches, learning_rate, momentum):
    """The hand-written loop of the running backend over `batches` [(x, y), ...]: {"loss": [...], ...}."""
    import keras

    steps = {"jax": jax_steps, "torch": torch_steps, "tensorflow": tensorflow_steps}[keras.backend.backend()]
    return steps(model, batches, learning_rate, momentum)


def batches_of(x, y, batch_size, steps):
    """The first `steps` batches in order (what fit(shuffle=False) takes); a LabError if there are fewer."""
    if len(x) < steps * batch_size:
        raise cli.LabError(f"{steps} steps of {batch_size} need {steps * batch_size:,} training sentences, there are "
                           f"{len(x):,}: raise --sentences or lower --steps")
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, steps * batch_size, batch_size)]


def largest_difference(a, b):
    """The largest absolute difference between two models' weights."""
    return max(float(np.abs(u - v).max()) for u, v in zip(a.get_weights(), b.get_weights()))


def loop_figure(curves):
    import matplotlib.pyplot as plt

    from kcourse.plots import tidy

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, losses in curves.items():
        ax.plot(np.arange(1, len(losses) + 1), losses, label=name)
    ax.set(xlabel="step", ylabel="training loss (batch)", title="the loop by hand", yscale="log")
    return tidy(fig, ax)


# ---------------------------------------------------------------- the handout's questions, answered by the run
def the_loop(run):
    m = run.metrics
    loss = m["by hand"]["loss"]
    return (f"By hand on {run.backend} ({IDIOMS[run.backend]}): {m['steps']} steps of SGD (lr {run.config['learning_rate']}, "
            f"momentum {run.config['momentum']}) from the same weights and batches as model.fit; the weights agree to "
            f"{m['hand vs fit']:.1e} while they moved by up to {m['moved']:.3f}; the batch loss went from "
            f"{loss[0]:.3f} to {loss[-1]:.3f}.")


def the_zero_grad_trap(run):
    trap = run.metrics.get("no zero_grad")
    if trap is None:
        return None
    good, n = run.metrics["by hand"], run.metrics["steps"]
    return (f"Without zero_grad() every backward() adds into .grad: the gradient applied at step {n} has a norm of "
            f"{trap['gradient norm'][-1]:.2f}, against {good['gradient norm'][-1]:.2f} with it; the batch loss at the last "
            f"step is {trap['loss'][-1]:.3f} against {good['loss'][-1]:.3f} (at its worst {max(trap['loss']):.3f}). On jax "
            f"and tensorflow the gradient is a returned value: nothing accumulates, there is no zero_grad to forget.")


HANDOUT = (
    Item("001:25", "Écrire la boucle : passage avant, calcul de la perte, mise à zéro des gradients, rétropropagation "
         "(loss.backward()), et mise à jour des poids (optimizer.step()).",
         "The training loop written by hand.", the_loop, "kcourse.tasks.loop.hand_steps"),
    Item("003:12", "Piège classique : oublier zero_grad() => gradients accumulés => divergence",
         "The classic trap: forgetting zero_grad().", the_zero_grad_trap, "kcourse.tasks.loop.torch_steps",
         needs="--backend torch"),
)


def build_parser():
    """The lab's options: the shared ones, the corpus and the loop's length."""
    parser = cli.lab_parser("loop", __doc__, batch_size=64, learning_rate=0.01, trains=True,
                            quick={"sentences": 1000, "steps": 10})
    parser.add_argument("--sentences", type=cli.positive_int, default=4000, help="corpus size (default: %(default)s, 1000 with --quick)")
    parser.add_argument("--max-len", type=cli.positive_int, default=32, help="tokens per sequence with [CLS] (default: %(default)s)")
    parser.add_argument("--steps", type=cli.positive_int, default=50,
                        help="training steps, one pass over the training sentences at the defaults (default: %(default)s, 10 with --quick)")
    parser.add_argument("--momentum", type=cli.unit, default=0.9, help="SGD's momentum (default: %(default)s)")
    return parser


def run_lab(args):
    """The loop by hand against model.fit from the same start, and on torch the trap (what `main` and the notebook run)."""
    import keras

    from kcourse.training import set_seed

    data = datasets.sentences(args.sentences, args.seed, args.max_len)
    batches = batches_of(data.x_train, data.y_train, args.batch_size, args.steps)
    run = runs.start("loop", args)
    build = lambda: build_model(data.vocab, args.max_len, args.learning_rate, args.momentum)  # noqa: E731
    n = args.steps * args.batch_size
    fitted = run.fit("fit", build, (data.x_train[:n], data.y_train[:n]), epochs=1, shuffle=False)
    set_seed(args.seed)
    start = build()  # the weights fit started from (run.fit reseeds the same way)
    initial = start.get_weights()
    by_hand = hand_steps(start, batches, args.learning_rate, args.momentum)
    figures = {"steps": args.steps, "by hand": by_hand, "hand vs fit": largest_difference(start, fitted.model),
               "moved": max(float(np.abs(w - w0).max()) for w, w0 in zip(fitted.model.get_weights(), initial))}
    print(f"\n{keras.backend.backend()}, by hand ({IDIOMS[keras.backend.backend()]}): the weights equal fit's to "
          f"{figures['hand vs fit']:.1e} (they moved by up to {figures['moved']:.3f})")
    curves = {"by hand": by_hand["loss"]}
    if keras.backend.backend() == "torch":
        set_seed(args.seed)
        trap = build()
        figures["no zero_grad"] = torch_steps(trap, batches, args.learning_rate, args.momentum, zero_grad=False)
        curves["by hand, no zero_grad()"] = figures["no zero_grad"]["loss"]
        print(f"without zero_grad(): the last gradient's norm {figures['no zero_grad']['gradient norm'][-1]:.2f} against "
              f"{by_hand['gradient norm'][-1]:.2f}, the last loss {curves['by hand, no zero_grad()'][-1]:.3f} against "
              f"{by_hand['loss'][-1]:.3f}")
    run.save_metrics(**figures)
    run.save_table("steps", [{"step": k + 1, **{name: c[k] for name, c in curves.items()}} for k in range(args.steps)])
    run.savefig(loop_figure(curves), "loop")
    run.record(fitted, **{"hand vs fit": figures["hand vs fit"], "moved": figures["moved"],
                          "last loss by hand": by_hand["loss"][-1]})
    return run.finish("The training loop by hand", handout=HANDOUT)


if __name__ == "__main__":
    cli.run(main)

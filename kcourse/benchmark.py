"""The labs' models timed on jax, torch and tensorflow against native PyTorch (and gensim): the backend comparison.

    python -m kcourse.benchmark                      # every model, every backend, native PyTorch, gensim
    python -m kcourse.benchmark --models mnist-cnn --backends jax torch --rounds 9
    python -m kcourse.benchmark --models mnist-cnn --backends tensorflow tensorflow:plain torch torch:jit
    python -m kcourse.benchmark --models vit --backends torch jax --references --steps 30 --profile

A backend may carry compile settings to compare (before/after): "plain" is
Keras' own defaults (one step per call, jit_compile="auto"), "jit" is
jit_compile=True (torch.compile on torch, XLA on tensorflow), "spe=N" is N
steps per execution; a bare backend uses the labs' settings
(`kcourse.training.FAST`). "omp=passive", "omp=active" or "omp=unset" sets
OpenMP's wait policy in the candidate's process ("unset": the runtime's own
default), on a backend or a reference; "xla=FLAG" adds --FLAG to XLA_FLAGS in
a backend's process (XLA's CPU compiler options, on jax and tensorflow):

    python -m kcourse.benchmark --models mnist-cnn --backends torch:omp=passive torch:omp=active --references native native:omp=unset
    python -m kcourse.benchmark --models unet --backends jax jax:xla=xla_cpu_enable_fast_math=true --references

Each candidate runs in its own process: one per Keras backend (the backend
is fixed at the first `import keras`), one for the native PyTorch reference
(`kcourse.native`: the seeds' nn.Modules and training loop at the labs'
sizes) and, for word2vec, one for gensim's skip-gram (`pip install -e
'.[bench]'`). Every candidate trains the same model on the same data, batch
and float32 arithmetic, with the same number of threads. After one warm-up
epoch (compilation; its extra time is the "compile s" column), the
candidates train one epoch each in alternating rounds (A B C A B C ...), so
that a noisy machine slows them all alike; the table gives the median over
the rounds, the spread (lowest and highest round), and each candidate's
ratio to the native reference. "runs as" says how each backend executed
(XLA, tf.function, torch.compile or eager, steps per execution). OpenMP's
threads sleep at barriers in a backend's process (OMP_WAIT_POLICY=PASSIVE
unless set: beside a busy process, spinning threads made torch 1.6-2.6x slower);
the references run under the OpenMP runtime's default, as the course's code does.

How close to the machine: each row's achieved GFLOP/s, the training step's
floating-point work per sample (3 x the forward multiply-adds of
`kcourse.flops`: the forward pass, then the gradients for the inputs and for
the weights; 2 FLOPs each) times its samples per second, next to the peak:
the best of a few 2048 x 2048 float32 matmuls (NumPy's BLAS, and torch's
where installed) on the same threads, measured in the same run. A row near
the peak is bound by compute; one far below it by overhead (Python, kernel
launches, data movement, small operations). word2vec's step is lookups and
50-wide dot products, bound by memory: it has no GFLOP/s.

--profile prints, instead of the table, where one epoch's time goes: a
cProfile of each model on each candidate after its warm-up (on jax, the
jitted step is one call: its time is XLA's).

The run folder (runs/benchmark-<time>/) gets benchmark.csv, benchmark.md and
benchmark.png (a bar chart). With --update, from a checkout, the "latest
figures" block of BENCHMARKS.md is rewritten with the table and the exact
command (BENCHMARKS.md's figures come from that command); without it the
checkout is left as it was.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kcourse import cli

MODELS = ("mnist-mlp", "mnist-cnn", "tiny-transformer", "unet", "vit", "word2vec")
# A small ViT, the lab's classifier (keras-hub's ViTBackbone, [CLS], a linear head, AdamW) at a size a CPU trains.
VIT = dict(image_shape=(32, 32, 3), patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128)
REFERENCES = ("native", "gensim")  # native PyTorch for every model; gensim for word2vec
UNITS = {"word2vec": "words"}  # samples otherwise
BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
BEGIN, END = "<!-- benchmark: begin (written by python -m kcourse.benchmark) -->", "<!-- benchmark: end -->"


# ---------------------------------------------------------------- the data, the same for every candidate
def lab_data(name, n, seed=0, sentences=20_000):
    """Synthetic samples with the lab's shapes, or the lab's corpus for word2vec.

    Returns a dict: x, y (NumPy, Keras' layout) for the classifiers, plus
    vocab_size for the transformer; flat, sentence, counts, vocab for word2vec.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    if name in ("mnist-mlp", "mnist-cnn"):
        return {"x": rng.random((n, 28, 28, 1), dtype="float32"), "y": rng.integers(0, 10, n).astype("int32")}
    if name == "vit":  # photos in [0, 255], two classes (ants and bees)
        return {"x": rng.uniform(0, 255, (n, *VIT["image_shape"])).astype("float32"), "y": rng.integers(0, 2, n).astype("int32")}
    if name == "unet":  # the TP5 lab's default images: 48x48 simulated shapes and their masks
        from kcourse import shapes

        data = shapes.simulate(n, 48, seed=seed)
        return {"x": data.images, "y": data.masks}
    if name in ("tiny-transformer", "word2vec"):
        from kcourse import text
        from kcourse.tasks import word2vec

        _, tokens, vocab = text.load_corpus(sentences, seed)
        if name == "word2vec":
            flat, sentence = word2vec.encode_corpus(tokens, vocab)
            counts = np.bincount(flat, minlength=len(vocab)).astype("float64")
            return {"flat": flat, "sentence": sentence, "counts": counts, "vocab": vocab, "tokens": tokens}
        x = rng.integers(3, len(vocab), (n, 32)).astype("int32")  # (N, L) word ids, after the 3 special tokens
        lengths = rng.integers(8, 24, n)  # the corpus's sentences: 8-23 tokens with [CLS]
        x[np.arange(32)[None, :] >= lengths[:, None]] = vocab.pad_id
        x[:, 0] = vocab.cls_id  # [CLS] first
        return {"x": x, "y": rng.integers(0, 2, n).astype("int32"), "vocab": vocab}
    raise cli.LabError(f"unknown model {name!r}: choose among {', '.join(MODELS)}")


def pin_float32_matmul():
    """Full float32 matmuls on the current backend (GPUs default to TF32 or less)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "float32")
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)


# ---------------------------------------------------------------- the candidates (one process each)
class KerasCandidate:
    """The lab's own compiled model on the backend of this process, trained with `model.fit`."""

    def __init__(self, name, data, batch_size):
        import keras

        self.name, self.batch_size = name, batch_size
        pin_float32_matmul()
        keras.utils.set_random_seed(0)
        if name in ("mnist-mlp", "mnist-cnn"):
            from kcourse.tasks import mnist

            self.model, self.x, self.y = mnist.build_model(name.split("-")[1]), data["x"], data["y"]
            self.samples = len(self.x)
        elif name == "unet":
            from kcourse.tasks import unet

            self.model, self.x, self.y = unet.build_model("unet"), data["x"], data["y"]
            self.samples = len(self.x)
        elif name == "vit":
            from kcourse import system
            from kcourse.tasks import vit

            backbone = system.keras_hub().models.ViTBackbone(**VIT)
            normalize, _ = vit.normalization(None, "random")
            model = vit.build_classifier(backbone, normalize, "cls", vit.make_head(2, "linear", VIT["hidden_dim"]))
            self.model = vit.compile_classifier(model, 1e-3, steps=len(data["x"]) // batch_size)
            self.x, self.y, self.samples = data["x"], data["y"], len(data["x"])
        elif name == "tiny-transformer":
            from kcourse.models import build_classifier

            self.model, self.x, self.y = build_classifier(data["vocab"], max_len=32), data["x"], data["y"]
            self.samples = len(self.x)
        else:
            from kcourse import skipgram

            self.model = skipgram.build_model(len(data["vocab"]))  # the lab's defaults: grouped by centre, P = 2, K = 5
            self.x = skipgram.batches(data["flat"], data["sentence"], data["counts"], batch_size)
            self.y, self.samples = None, len(data["flat"])

    @property
    def params(self):
        return self.model.count_params()

    def macs(self):
        """Forward multiply-adds per sample (kcourse.flops), None for word2vec."""
        from kcourse import flops

        if self.name == "vit":
            return flops.vit_macs(**VIT, classes=2)
        if self.name == "tiny-transformer":
            return flops.tiny_transformer_macs(self.model)
        if self.name == "unet":  # a subclassed model: the shapes its layers see on one sample
            return flops.count_macs_run(self.model, self.x)
        return flops.count_macs(self.model) if self.name != "word2vec" else None

    @property
    def how(self):
        import keras

        backend, jit = keras.backend.backend(), self.model.jit_compile
        how = {"jax": "XLA (jax.jit)", "torch": "torch.compile" if jit else "eager",
               "tensorflow": "tf.function + XLA" if jit else "tf.function (graph)"}[backend]
        spe = getattr(self.model, "steps_per_execution", 1)
        return how + (f", {spe} steps per execution" if spe > 1 else "")

    def epoch(self):
        from kcourse.training import EpochTimer

        timer = EpochTimer()
        fit = dict(batch_size=self.batch_size) if self.y is not None else {}
        history = self.model.fit(self.x, self.y, epochs=1, verbose=0, callbacks=[timer], **fit)
        return timer.times[0], history.history["loss"][-1]

    def vectors(self):
        layer = self.model.get_layer("skip_gram")
        return layer.embeddings(normalize=False), layer.output_embeddings()

    def device_peak_mib(self):
        from kcourse import system

        return system.memory_mib()[1] if system.accelerator() else None


class NativeCandidate:
    """The seeds' PyTorch model and loop (`kcourse.native`) on the same data."""

    how = "eager (the seed's loop)"

    def __init__(self, name, data, batch_size):
        from kcourse import native

        if name == "word2vec":
            corpus = (data["flat"], data["sentence"], data["counts"])
            self.reference = native.reference(name, batch_size=batch_size, vocab_size=len(data["vocab"]), corpus=corpus)
        else:
            vocab = data.get("vocab")
            self.reference = native.reference(name, data["x"], data["y"], batch_size, vocab_size=vocab and len(vocab),
                                              sizes=VIT if name == "vit" else None)
        self.samples = self.reference.samples

    @property
    def params(self):
        return self.reference.params

    def epoch(self):
        return self.reference.epoch()

    def vectors(self):
        model = self.reference.model
        return model.in_embed.weight.detach().numpy(), model.out_embed.weight.detach().numpy()

    def device_peak_mib(self):
        return None


class GensimCandidate:
    """gensim's skip-gram with negative sampling, the lab's settings, its learning rate decayed over the planned epochs."""

    def __init__(self, name, data, batch_size, epochs=5, threads=2):
        from gensim.models import Word2Vec

        if name != "word2vec":
            raise ValueError("gensim times word2vec only")
        self.tokens, self.vocab, self.samples, self.planned = data["tokens"], data["vocab"], len(data["flat"]), epochs
        self.model = Word2Vec(vector_size=50, window=2, negative=5, sample=1e-3, sg=1, min_count=1, workers=threads, seed=0)
        self.model.build_vocab(self.tokens)
        self.done = 0
        self.how = f"gensim {__import__('gensim').__version__} (Cython, {threads} worker threads)"

    @property
    def params(self):
        return 2 * len(self.vocab) * 50  # as the Keras model: u and v for every word of the lab's vocabulary

    def epoch(self):
        alpha, low = self.model.alpha, self.model.min_alpha
        at = lambda k: alpha - (alpha - low) * min(k, self.planned) / self.planned  # one linear decay over the run
        start = time.perf_counter()
        self.model.train(self.tokens, total_examples=len(self.tokens), epochs=1,
                         start_alpha=at(self.done), end_alpha=at(self.done + 1), compute_loss=True)
        seconds = time.perf_counter() - start
        self.done += 1
        return seconds, float(self.model.get_latest_training_loss())

    def vectors(self):
        import numpy as np

        wv, dim = self.model.wv, self.model.vector_size
        u, v = np.zeros((len(self.vocab), dim), "float32"), np.zeros((len(self.vocab), dim), "float32")
        for i, word in enumerate(self.vocab.itos):
            if word in wv.key_to_index:
                u[i], v[i] = wv[word], self.model.syn1neg[wv.key_to_index[word]]
        return u, v

    def device_peak_mib(self):
        return None


def _word2vec_quality(vectors, vocab):
    from kcourse.tasks import word2vec

    result = word2vec.evaluate(tuple(vectors), vocab, probes=())
    return {"family analogies": result["family analogies"], "capital analogies": result["capital analogies"],
            "own country first by u.v": result["own country first by u.v"],
            "capital neighbours that are capitals": result["capital neighbours that are capitals"]}


OMP_POLICIES = ("passive", "active", "unset")  # "unset": the OpenMP runtime's own default (spin a while, then sleep)


def settings(text):
    """A candidate's settings, joined by commas: its compile options, "plain" (Keras' defaults), "jit"
    (jit_compile=True), "nojit", "spe=N"; "omp=passive|active|unset", OpenMP's wait policy in its process;
    "xla=FLAG", one more XLA flag in its process (xla_cpu_enable_fast_math=true: --xla_cpu_enable_fast_math=true).

    Returns (the compile options, or None where none is named: the labs' own; the OpenMP policy, or None;
    the XLA flags, a list).
    """
    options, policy, xla = None, None, []
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key == "omp" and value in OMP_POLICIES:
            policy = value
            continue
        if key == "xla" and value.startswith("xla_"):
            xla.append(f"--{value}")
            continue
        options = {} if options is None else options
        if key == "jit" and not value:
            options["jit_compile"] = True
        elif key == "nojit" and not value:
            options["jit_compile"] = False
        elif key == "spe" and value.isdigit() and int(value) > 0:
            options["steps_per_execution"] = int(value)
        elif key != "plain" or value:
            raise ValueError(f"unknown setting {part!r}: use plain, jit, nojit, spe=N, omp={'|'.join(OMP_POLICIES)} "
                             f"or xla=xla_<flag>")
    return options, policy, xla


def candidate_name(text, known=cli.BACKENDS):
    """--backends: a backend, optionally with settings: jax, torch:jit, tensorflow:spe=1,omp=active, jax:plain.
    --references (`known`: REFERENCES): native or gensim, optionally with an OpenMP policy: native:omp=unset."""
    import argparse

    base, _, setting = text.partition(":")
    if base not in known:
        raise argparse.ArgumentTypeError(f"unknown candidate {base!r}: choose among {', '.join(known)}")
    if setting:
        try:
            options, _, xla = settings(setting)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        if (options is not None or xla) and known is REFERENCES:
            raise argparse.ArgumentTypeError(f"{text}: a reference takes omp=... only")
    return text


def reference_name(text):
    return candidate_name(text, REFERENCES)


def _worker(candidate, threads):
    """Answer the orchestrator's commands on stdin, one JSON line each, until "quit"."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    backend, _, setting = candidate.partition(":")
    options = settings(setting)[0] if setting else None  # the OpenMP policy and XLA's flags are in the environment (Worker)
    if backend in cli.BACKENDS:
        if options is not None:
            os.environ["KCOURSE_COMPILE"] = "fast"
        cli.use_backend(backend)
        import keras  # noqa: F401  (the backend's import, before any timing)

        if options is not None:  # this candidate's compile options instead of the labs' (training.FAST)
            from kcourse import training

            training.FAST[backend] = options
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
    if backend in ("torch", "native"):
        import torch

        torch.set_num_threads(threads)
    current, data = None, None
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "quit":
            return
        print(f"worker {time.time():.6f} {candidate} {command['cmd']} {command.get('model', '')}", file=sys.stderr, flush=True)
        try:
            answer = _answer(candidate, threads, command, current, data)
        except Exception as error:  # one model failing leaves the candidate's other models
            print("ERROR " + json.dumps(f"{type(error).__name__}: {error}".splitlines()[0]), flush=True)
            continue
        if command["cmd"] == "setup":
            current, data = answer.pop("_current"), answer.pop("_data")
        print("RESULT " + json.dumps(answer), flush=True)


def matmul_peak(n=2048, repeats=5):
    """The best float32 GFLOP/s of an n x n matmul, by NumPy's BLAS and by torch (where installed), on this
    process's threads: {"GFLOP/s": best, "by": which}."""
    import numpy as np

    a, b = np.random.default_rng(0).random((2, n, n), dtype="float32")
    matmuls = {"NumPy": lambda: a @ b}
    try:
        import torch
    except ImportError:
        pass
    else:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        matmuls["torch"] = lambda: torch.matmul(ta, tb)
    best = {}
    for name, matmul in matmuls.items():
        matmul()  # the first call allocates and starts the threads
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            matmul()
            seconds.append(time.perf_counter() - start)
        best[name] = 2 * n**3 / min(seconds) / 1e9
    by = max(best, key=best.get)
    return {"GFLOP/s": best[by], "by": by}


def _answer(candidate, threads, command, current, data):
    """One command of the orchestrator, answered as a dict."""
    import resource

    if command["cmd"] == "peak":
        return matmul_peak()
    if command["cmd"] == "setup":
        data = lab_data(command["model"], command["samples"], sentences=command["sentences"])
        kind = {"native": NativeCandidate, "gensim": GensimCandidate}.get(candidate.partition(":")[0], KerasCandidate)
        options = dict(epochs=command["epochs"], threads=threads) if candidate.startswith("gensim") else {}
        current = kind(command["model"], data, command["batch_size"], **options)
        seconds, _ = current.epoch()  # the warm-up epoch: compilation
        how = f"{current.how}, OpenMP {os.environ.get('OMP_WAIT_POLICY', 'unset').lower()}"  # the process's own, read back
        if os.environ.get("XLA_FLAGS") and candidate.partition(":")[0] in ("jax", "tensorflow"):
            how += f", XLA_FLAGS {os.environ['XLA_FLAGS']}"
        macs = current.macs() if isinstance(current, KerasCandidate) else None
        return {"first epoch s": seconds, "how": how, "params": current.params, "samples": current.samples, "macs": macs,
                "_current": current, "_data": data}
    if command["cmd"] == "epoch":
        seconds, loss = current.epoch()
        return {"seconds": seconds, "loss": loss}
    if command["cmd"] == "profile":  # where one epoch's time goes
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        seconds, _ = profiler.runcall(current.epoch)
        text = io.StringIO()
        for order in ("tottime", "cumulative"):  # the costliest functions, then the call structure (fit, forward, backward)
            pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(command["top"])
        return {"seconds": seconds, "profile": text.getvalue()}
    if command["cmd"] == "finish":
        answer = {"host peak MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "device peak MiB": current.device_peak_mib()}
        if command["model"] == "word2vec":
            answer["quality"] = _word2vec_quality(current.vectors(), data["vocab"])
        return answer
    raise ValueError(f"unknown command {command['cmd']!r}")


class Worker:
    """A candidate's process, driven line by line; its stderr goes to `<log_dir>/worker-<candidate>.log`."""

    def __init__(self, candidate, threads, log_dir):
        self.candidate = candidate
        self.log = Path(log_dir) / f"worker-{candidate}.log"
        # OMP_WAIT_POLICY comes from `import kcourse` (kcourse/__init__) for a backend, as in the labs; a reference
        # runs as the course's code runs, under the OpenMP runtime's default, unless the user set one. A candidate
        # may name its own ("omp=unset": the runtime's default).
        import kcourse

        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        _, policy, xla = settings(candidate.partition(":")[2]) if ":" in candidate else (None, None, [])
        if policy is None and candidate.partition(":")[0] in REFERENCES and kcourse.OMP_POLICY_SET_HERE:
            policy = "unset"
        if policy is not None:
            env["OMP_WAIT_POLICY"] = policy.upper()
        if xla:  # read by XLA when the backend starts, in the worker
            env["XLA_FLAGS"] = " ".join([env.get("XLA_FLAGS", ""), *xla]).strip()
        with open(self.log, "w") as stderr:  # a file, not a pipe: a chatty backend cannot fill it and block
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kcourse.benchmark", "--worker", candidate, "--threads", str(threads)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
            )

    def ask(self, **command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[7:])
            if line.startswith("ERROR "):
                raise RuntimeError(f"{self.candidate}: {json.loads(line[6:])}")
        lines = [line for line in self.log.read_text().splitlines() if line.strip() and not line.startswith("worker ")]
        raise RuntimeError(f"{self.candidate}: the worker stopped ({lines[-1] if lines else 'no output'})")

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"cmd": "quit"}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


# ---------------------------------------------------------------- one .keras file, three backends
REPLAY = """
import sys, numpy as np
from kcourse import cli
cli.use_backend(sys.argv[1])
import keras
import kcourse.layers, kcourse.models  # the course's layers and models, registered for loading
from kcourse.benchmark import pin_float32_matmul
pin_float32_matmul()
for model_file, inputs_file, outputs_file in zip(*[iter(sys.argv[2:])] * 3):
    model = keras.saving.load_model(model_file)
    np.save(outputs_file, keras.ops.convert_to_numpy(model(np.load(inputs_file), training=False)))
"""


def outputs_on(backend, models, folder):
    """Each saved model's outputs on `inputs`, computed under `backend` in a process of its own.

    Args:
        backend: "jax", "torch" or "tensorflow".
        models: {name: (path to a .keras file, inputs as a NumPy array)}.
        folder: where the inputs and outputs are written (.npy).
    Returns {name: outputs (NumPy)}.
    """
    import numpy as np

    folder = Path(folder)
    args = []
    for name, (path, inputs) in models.items():
        np.save(folder / f"{name}-inputs.npy", inputs)
        args += [str(path), str(folder / f"{name}-inputs.npy"), str(folder / f"{name}-{backend}.npy")]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", REPLAY, backend, *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{backend}: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return {name: np.load(folder / f"{name}-{backend}.npy") for name in models}


# ---------------------------------------------------------------- alternating rounds
def run_benchmark(models, candidates, rounds=7, steps=100, batch_size=64, word2vec_batch_size=1024, sentences=20_000,
                  threads=2, log=print, log_dir=None):
    """Time every (model, candidate) in alternating rounds; returns the table's rows (dicts).

    `candidates`: Keras backends and references ("native", "gensim"). gensim
    only takes part for word2vec. A candidate whose process fails is reported
    on one line and left out. Every row carries the machine's matmul peak
    (`matmul_peak`, measured once in the first candidate's process, before
    the models) and, where the model's multiply-adds are known, its GFLOP/s.
    """
    import numpy as np

    import tempfile

    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="kcourse-benchmark-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = {c: Worker(c, threads, log_dir) for c in candidates}
    rows = []
    try:
        peak = workers[candidates[0]].ask(cmd="peak")
        log(f"peak: a 2048 x 2048 float32 matmul ({peak['by']}), {peak['GFLOP/s']:.1f} GFLOP/s on {threads} threads")
        for name in models:
            taking_part = [c for c in candidates if not c.startswith("gensim") or name == "word2vec"]
            batch = word2vec_batch_size if name == "word2vec" else batch_size
            setup = {}
            for c in taking_part:
                try:
                    setup[c] = workers[c].ask(cmd="setup", model=name, samples=steps * batch_size, batch_size=batch,
                                              sentences=sentences, epochs=rounds + 1)
                except (RuntimeError, OSError) as error:
                    log(f"{name}: {c} left out ({error})")
            times = {c: [] for c in setup}
            for r in range(rounds):  # A B C A B C ...
                for c in setup:
                    times[c].append(workers[c].ask(cmd="epoch", model=name)["seconds"])
                log(f"{name}: round {r + 1}/{rounds} " + " ".join(f"{c} {setup[c]['samples'] / times[c][-1]:,.0f}" for c in setup))
            unit = UNITS.get(name, "samples")
            median_of = lambda c: float(np.median(setup[c]["samples"] / np.array(times[c]))) if c in setup else None
            native, gensim = median_of("native"), median_of("gensim")
            macs = next((setup[c]["macs"] for c in setup if setup[c]["macs"]), None)  # the same model on every candidate
            for c in setup:
                speeds = setup[c]["samples"] / np.array(times[c])
                median = float(np.median(speeds))
                finish = workers[c].ask(cmd="finish", model=name)
                row = {
                    "model": name,
                    "candidate": c if c.partition(":")[0] in REFERENCES else f"kcourse {c}",
                    "runs as": setup[c]["how"],
                    "batch": batch,
                    "unit": unit,
                    f"median {unit} / s": median,
                    "lowest": float(speeds.min()),
                    "highest": float(speeds.max()),
                    "x native": median / native if native else None,
                    "train GFLOP / sample": 6 * macs / 1e9 if macs else None,  # 3 x the forward MACs, 2 FLOPs each
                    "GFLOP/s": 6 * macs * median / 1e9 if macs else None,
                    "peak GFLOP/s": peak["GFLOP/s"],
                    "compile s": max(0.0, setup[c]["first epoch s"] - setup[c]["samples"] / median),
                    "host peak MiB": finish["host peak MiB"],
                    "device peak MiB": finish["device peak MiB"],
                    "params": setup[c]["params"],
                    "rounds": rounds,
                }
                if name == "word2vec":
                    row["x gensim"] = median / gensim if gensim else None
                    row.update(finish["quality"])
                rows.append(row)
    finally:
        for worker in workers.values():
            worker.close()
    return rows


def profile(models, candidates, out, steps=100, batch_size=64, word2vec_batch_size=1024, sentences=20_000, threads=2,
            top=25):
    """cProfile one epoch of each model on each candidate, after the warm-up, in the candidate's own process.

    Returns {(model, candidate): the top `top` functions by own time and by cumulative time, as text}, also written to
    `out/profile-<model>-<candidate>.txt` (`out` also gets the workers' logs).
    """
    profiles = {}
    for c in candidates:
        worker = Worker(c, threads, out)
        try:
            for name in models:
                if c.startswith("gensim") and name != "word2vec":
                    continue
                batch = word2vec_batch_size if name == "word2vec" else batch_size
                worker.ask(cmd="setup", model=name, samples=steps * batch_size, batch_size=batch, sentences=sentences, epochs=2)
                answer = worker.ask(cmd="profile", model=name, top=top)
                profiles[name, c] = f"{name} on {c}: one epoch of {answer['seconds']:.2f} s, profiled\n{answer['profile']}"
                Path(out, f"profile-{name}-{c.replace(':', '-')}.txt").write_text(profiles[name, c])
        finally:
            worker.close()
    return profiles


# ---------------------------------------------------------------- the table, the chart, BENCHMARKS.md
COLUMNS = ("model", "candidate", "runs as", "batch", "median / s", "spread", "x native", "x gensim", "GFLOP/s (of peak)",
           "compile s", "host peak MiB", "device peak MiB", "params")


def _cells(row):
    unit = row["unit"]
    fmt = lambda v, f: "" if v is None else f.format(v)
    return {
        "model": row["model"],
        "candidate": row["candidate"],
        "runs as": row["runs as"],
        "batch": str(row["batch"]),
        "median / s": f"{row[f'median {unit} / s']:,.0f} {unit}/s",
        "spread": f"{row['lowest']:,.0f}-{row['highest']:,.0f}",
        "x native": fmt(row["x native"], "{:.2f}"),
        "x gensim": fmt(row.get("x gensim"), "{:.2f}"),
        "GFLOP/s (of peak)": "" if row["GFLOP/s"] is None else f"{row['GFLOP/s']:.1f} ({row['GFLOP/s'] / row['peak GFLOP/s']:.0%})",
        "compile s": f"{row['compile s']:.1f}",
        "host peak MiB": f"{row['host peak MiB']:,.0f}",
        "device peak MiB": fmt(row["device peak MiB"], "{:,.0f}"),
        "params": f"{row['params']:,}",
    }


def markdown(rows):
    """The table as GitHub markdown, and the word2vec quality lines under it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cells(row)[key] for key in COLUMNS) + " |" for row in rows]
    quality = [row for row in rows if "family analogies" in row]
    if quality:
        lines += ["", "word2vec after the run's epochs (family analogies /12, capital analogies /90, "
                      "capitals whose own country is first by u.v /10, capitals among capitals' 5 cosine neighbours):", ""]
        lines += [f"- {row['candidate']}: family {row['family analogies']}/12, capital {row['capital analogies']}/90, "
                  f"u.v own {row['own country first by u.v']}/10, cos caps {row['capital neighbours that are capitals']:.2f}"
                  for row in quality]
    return "\n".join(lines)


def bar_chart(rows):
    """Median speed relative to the native reference, the spread as error bars, one group per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(row["model"] for row in rows))
    candidates = list(dict.fromkeys(row["candidate"] for row in rows))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(models), 3.8))
    width = 0.8 / len(candidates)
    for k, c in enumerate(candidates):
        xs, ys, lo, hi = [], [], [], []
        for i, m in enumerate(models):
            row = next((r for r in rows if r["model"] == m and r["candidate"] == c), None)
            if row is None or row["x native"] is None:
                continue
            scale = row["x native"] / row[f"median {row['unit']} / s"]
            xs.append(i + (k - (len(candidates) - 1) / 2) * width)
            ys.append(row["x native"])
            lo.append(row["x native"] - row["lowest"] * scale)
            hi.append(row["highest"] * scale - row["x native"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=c, color=f"C{k}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(models)), models)
    ax.set(ylabel="speed / native PyTorch (median)", title="training speed, alternating rounds (bars: lowest-highest)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def update_benchmarks_md(path, table, command, conditions):
    """Rewrite the latest-figures block of BENCHMARKS.md (between its markers; appended if absent)."""
    block = f"{BEGIN}\n{conditions}\n\n```\n{command}\n```\n\n{table}\n{END}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n## Latest figures\n\n" + block + "\n"
    path.write_text(text)


def _load():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _conditions(args, load_before, load_after, peak):
    import platform

    from kcourse import system

    versions = ", ".join(f"{k} {v}" for k, v in system.versions().items() if v and k != "keras-hub")
    # At the end the load holds the benchmark's own threads (one candidate runs at a time): more is other jobs.
    shared = "other jobs share the machine" if load_after > args.threads + 1 else "no other job beside the benchmark's own threads"
    return (f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{args.threads} threads per candidate, load average {load_before:.1f} at the start and {load_after:.1f} at the end "
            f"({shared}); {versions}. "
            f"Median of {args.rounds} alternating rounds of one epoch each ({args.steps} steps for the classifiers), "
            f"after one warm-up epoch; float32. Peak: {peak:.1f} GFLOP/s, the best 2048 x 2048 float32 matmul on "
            f"{args.threads} threads (the GFLOP/s column: 3 x the forward multiply-adds per sample, 2 FLOPs each).")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kcourse.benchmark", description=__doc__.strip().split("\n")[0],
                                     epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--backends", nargs="+", default=list(cli.BACKENDS), type=candidate_name, metavar="BACKEND[:SETTINGS]",
                        help="jax torch tensorflow (default: all); with compile settings to compare, e.g. "
                             "tensorflow:plain (Keras' defaults), torch:jit (torch.compile), jax:spe=8")
    parser.add_argument("--references", nargs="*", default=list(REFERENCES), type=reference_name, metavar="REFERENCE[:omp=...]",
                        help="native PyTorch, gensim (word2vec only); default: both")
    parser.add_argument("--rounds", type=cli.positive_int, default=7, help="timed epochs per candidate (default: 7)")
    parser.add_argument("--steps", type=cli.positive_int, default=100, help="training steps per epoch of the classifiers (default: 100)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=64, help="classifiers' batch (default: 64)")
    parser.add_argument("--word2vec-batch-size", type=cli.positive_int, default=1024, help="default: 1024, the lab's")
    parser.add_argument("--sentences", type=cli.positive_int, default=20_000, help="word2vec's corpus (default: 20,000, the lab's)")
    parser.add_argument("--threads", type=cli.positive_int, default=2, help="threads per candidate (default: 2)")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/benchmark-<time>)")
    parser.add_argument("--update", action="store_true",
                        help="rewrite the latest-figures block of the checkout's BENCHMARKS.md (default: leave it as it is)")
    parser.add_argument("--profile", action="store_true",
                        help="no table: where the time goes, a cProfile of one epoch per model and candidate (profile-*.txt)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.error = lambda message: (_ for _ in ()).throw(cli.LabError(f"{message} (see --help)"))
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args.worker, args.threads)
    out = args.out or Path("runs") / f"benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    from kcourse.runs import Run

    Run.check_folder(out)
    if "gensim" in args.references and "word2vec" in args.models:
        import importlib.util

        if importlib.util.find_spec("gensim") is None:
            print("gensim is not installed (pip install -e '.[bench]'): word2vec runs without it", file=sys.stderr)
            args.references = [r for r in args.references if r != "gensim"]
    candidates = [*args.backends, *args.references]
    out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        for text in profile(args.models, candidates, out, args.steps, args.batch_size, args.word2vec_batch_size,
                            args.sentences, args.threads).values():
            print(text)
        print(f"run folder: {out}")
        return None
    load = _load()
    rows = run_benchmark(args.models, candidates, args.rounds, args.steps, args.batch_size, args.word2vec_batch_size,
                         args.sentences, args.threads, log=lambda m: print(m, file=sys.stderr, flush=True), log_dir=out)
    import csv

    with open(out / "benchmark.csv", "w", newline="") as f:
        keys = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows)
    command = "python -m kcourse.benchmark" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    conditions = _conditions(args, load, _load(), rows[0]["peak GFLOP/s"] if rows else float("nan"))
    (out / "benchmark.md").write_text(f"{conditions}\n\n```\n{command}\n```\n\n{table}\n")
    fig = bar_chart(rows)
    fig.savefig(out / "benchmark.png", dpi=120, bbox_inches="tight")
    print(table)
    print(f"run folder: {out}")
    if args.update and BENCHMARKS_MD.parent.joinpath("pyproject.toml").exists():
        update_benchmarks_md(BENCHMARKS_MD, table, command, conditions)
        print(f"updated {BENCHMARKS_MD}")
    return rows


if __name__ == "__main__":
    cli.run(main)

# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TensorFlow example job of aiinfra.gpu_cluster: a small but real multi-worker Keras training.

Every node runs one worker of a tf.distribute.MultiWorkerMirroredStrategy cluster, described by TF_CONFIG
(``cluster.worker``: every node's host:port in rank order; ``task.index``: this node's rank). A small MLP learns to
classify points labelled by a fixed random "teacher" (a linear map plus noise, 8 classes); the data is generated
from a seed, the same on every worker, and sharded by the strategy (each worker trains on its own part of every
global batch). What it learns is measurable: the loss falls and the held-out accuracy climbs from chance (12.5%)
towards the teacher's (about 0.9 after 300 steps).

Keras 2 (tf-keras): Keras 3's Model.fit does not run under MultiWorkerMirroredStrategy.

Checkpoints, in --checkpoint-dir (AIINFRA_CHECKPOINT_DIR), after every epoch of --steps-per-epoch steps: every
worker writes its own copy (the weights are mirrored, the same on every worker; the nodes' disks are not shared,
which Keras' BackupAndRestore assumes), ckpt-NNNNNNNN.index and .data-00000-of-00001 (a tf.train.Checkpoint of the
model and its optimizer), each under a temporary name and renamed, then its NAME.sha256 marker - the completeness
rule the torchrun role's checkpoint upload and restore follow, so checkpoints reach object storage and a new
cluster's nodes. A run started again resumes at the newest step every worker holds complete (the workers agree on
it with one all-reduce before training), and keeps the last --keep-checkpoints.

It logs JSON lines (one object per line), as the torchrun example does, for the same watch and report:
  {"event": "joined", "rank": 1, "world_size": 2, ...}      every worker, once
  {"event": "resume", "step": 40}                            when it resumed from a backup
  {"event": "step", "step": 40, "loss": 0.61, "samples_per_s": 5123.4, ...}     rank 0
  {"event": "checkpoint", "step": 50, "path": "..."}        rank 0, after each epoch's checkpoint
  {"event": "done", "step": 300, "loss": 0.21, "eval_acc": 0.93, ...}          rank 0
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import re
import socket
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import numpy as np  # noqa: E402  (after the environment TensorFlow reads at import)
import tensorflow as tf  # noqa: E402
# Keras 2 (the tf-keras package the role installs beside TensorFlow): Keras 3's Model.fit does not run under
# MultiWorkerMirroredStrategy (keras-team/keras#20585), Keras 2's does
import tf_keras as keras  # noqa: E402


def log(event, **fields):
    fields = dict({"event": event, "time": round(time.time(), 3)}, **fields)
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--steps", type=int, default=300, help="train until this global step")
    p.add_argument("--steps-per-epoch", type=int, default=50, help="steps between backups (an epoch)")
    p.add_argument("--batch-size", type=int, default=64, help="samples per worker per step")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--samples", type=int, default=16384, help="size of the generated training set")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--log-every", type=int, default=10, help="log a step line every N steps")
    p.add_argument("--checkpoint-dir", default=os.environ.get("AIINFRA_CHECKPOINT_DIR", "checkpoints"))
    p.add_argument("--keep-checkpoints", type=int, default=3)
    p.add_argument("--min-step-time", type=float, default=0.0,
                   help="seconds each step takes at least (to make a short job last, e.g. in tests)")
    return p.parse_args(argv)


def teacher_data(args, count, seed):
    """Points and the teacher's labels: the same for the same seed, on every worker."""
    teacher = np.random.default_rng(args.seed)
    weights = teacher.normal(size=(args.features, args.classes)).astype("float32")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, args.features)).astype("float32")
    logits = x @ weights + 0.5 * rng.normal(size=(count, args.classes)).astype("float32")
    return x, logits.argmax(axis=1).astype("int64")


def sharded(dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


CKPT_RE = re.compile(r"^ckpt-(\d{8})\.index$")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_files(directory, step):
    prefix = os.path.join(directory, "ckpt-%08d" % step)
    return [prefix + ".index", prefix + ".data-00000-of-00001"]


def complete(path):
    """The completeness rule: NAME.sha256 exists and holds NAME's sha256."""
    try:
        with open(path + ".sha256") as handle:
            words = handle.read(4096).split()
        return bool(words) and words[0].lower() == sha256_of(path)
    except OSError:
        return False


def local_steps(directory):
    """The steps of the complete checkpoints in ``directory``."""
    steps = []
    for path in glob.glob(os.path.join(directory, "ckpt-*.index")):
        match = CKPT_RE.match(os.path.basename(path))
        if match and all(complete(f) for f in checkpoint_files(directory, int(match.group(1)))):
            steps.append(int(match.group(1)))
    return sorted(steps)


def save_checkpoint(args, checkpoint, step):
    """Write ckpt-NNNNNNNN.{index,data-...} under temporary names, rename them, then their markers, last."""
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    tmp = os.path.join(args.checkpoint_dir, ".tmp-ckpt-%08d" % step)
    written = checkpoint.write(tmp)
    for suffix, final in zip((".index", ".data-00000-of-00001"), checkpoint_files(args.checkpoint_dir, step)):
        os.replace(written + suffix, final)
    for final in checkpoint_files(args.checkpoint_dir, step):
        marker = "%s  %s\n" % (sha256_of(final), os.path.basename(final))
        with open(final + ".sha256.tmp", "w") as handle:
            handle.write(marker)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(final + ".sha256.tmp", final + ".sha256")
    for old in local_steps(args.checkpoint_dir)[:-args.keep_checkpoints]:
        for final in checkpoint_files(args.checkpoint_dir, old):
            for path in (final + ".sha256", final):
                if os.path.exists(path):
                    os.remove(path)


def agreed_step(strategy, steps, candidates):
    """The newest of ``candidates`` every worker holds: one all-reduce (SUM) of which ones each worker has."""
    have = [1.0 if step in steps else 0.0 for step in candidates]

    local = tf.constant(have, tf.float32)

    def count():
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)

    summed = tf.function(lambda: strategy.run(count))()
    summed = strategy.experimental_local_results(summed)[0].numpy().tolist()
    everyone = [step for step, total in zip(candidates, summed) if total >= strategy.num_replicas_in_sync]
    return max(everyone) if everyone else 0


class Progress(keras.callbacks.Callback):
    """Step lines every --log-every steps (rank 0); a checkpoint after every epoch (every worker)."""

    def __init__(self, args, rank, world, start_step, checkpoint):
        super().__init__()
        self.args, self.rank, self.world, self.checkpoint = args, rank, world, checkpoint
        self.step = start_step
        self.last = (start_step, time.time())
        self.began = time.time()
        self.loss = None

    def on_train_batch_begin(self, batch, logs=None):
        self.began = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.loss = float((logs or {}).get("loss", float("nan")))
        if self.rank == 0 and self.step % self.args.log_every == 0:
            now = time.time()
            rate = (self.step - self.last[0]) * self.args.batch_size * self.world / max(now - self.last[1], 1e-6)
            log("step", step=self.step, loss=round(self.loss, 5), samples_per_s=round(rate, 1),
                world_size=self.world)
            self.last = (self.step, now)
        pause = self.args.min_step_time - (time.time() - self.began)
        if pause > 0:
            time.sleep(pause)

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.args, self.checkpoint, self.step)
        if self.rank == 0:
            log("checkpoint", step=self.step, path=os.path.abspath(checkpoint_files(self.args.checkpoint_dir,
                                                                                    self.step)[0]))


def main(argv=None):
    args = parse_args(argv)
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    workers = (config.get("cluster") or {}).get("worker") or []
    rank = int((config.get("task") or {}).get("index", 0))
    world = max(len(workers), 1)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log("joined", rank=rank, world_size=world, host=socket.gethostname(), replicas=strategy.num_replicas_in_sync,
        gpus=len(tf.config.list_physical_devices("GPU")), tensorflow=tf.__version__)

    epochs = int(math.ceil(args.steps / float(args.steps_per_epoch)))
    global_batch = args.batch_size * world
    x, y = teacher_data(args, args.samples, args.seed + 1)
    train = sharded(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=args.seed).repeat()
                    .batch(global_batch, drop_remainder=True))
    x_eval, y_eval = teacher_data(args, 2048, args.seed + 2)
    evaluation = sharded(tf.data.Dataset.from_tensor_slices((x_eval, y_eval)).batch(global_batch))

    with strategy.scope():
        model = keras.Sequential([
            keras.Input((args.features,)),
            keras.layers.Dense(args.hidden, activation="relu"),
            keras.layers.Dense(args.classes),
        ])
        optimizer = keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9)
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)

    # resume: the newest epoch-end step every worker holds complete
    candidates = [e * args.steps_per_epoch for e in range(1, epochs + 1)]
    start_step = agreed_step(strategy, local_steps(args.checkpoint_dir), candidates)
    if start_step:
        checkpoint.read(os.path.join(args.checkpoint_dir, "ckpt-%08d" % start_step)).expect_partial()
        log("resume", step=start_step, rank=rank)
    start_epoch = start_step // args.steps_per_epoch
    if start_epoch >= epochs:
        if rank == 0:
            log("done", step=start_step, world_size=world, already_complete=True)
        return 0

    progress = Progress(args, rank, world, start_step, checkpoint)
    model.fit(train, epochs=epochs, initial_epoch=start_epoch, steps_per_epoch=args.steps_per_epoch,
              callbacks=[progress], verbose=0)
    result = model.evaluate(evaluation, verbose=0, return_dict=True)
    if rank == 0:
        log("done", step=progress.step, loss=round(progress.loss, 5) if progress.loss is not None else None,
            eval_acc=round(float(result["accuracy"]), 4), world_size=world, resumed_from=start_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check TensorFlow on this node; print one JSON line; exit 1 naming what failed.

- tensorflow imports and is the expected version
- a matmul runs on every device it sees (the CPU, and each GPU) and gives the right answer
- with --gpu: TensorFlow sees as many GPUs as nvidia-smi lists, and it is a CUDA build
- with --keras2: tf_keras (Keras 2) imports and is the release's own (same major.minor)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter


def smi_gpus():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return None
    return len([line for line in proc.stdout.splitlines() if line.startswith("GPU ")])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect-version", default="")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--keras2", action="store_true")
    args = parser.parse_args()
    report = {"ok": False, "python": sys.executable}
    try:
        import tensorflow as tf

        report.update(tensorflow=tf.__version__, cuda_build=bool(tf.test.is_built_with_cuda()))
        if args.expect_version and tf.__version__ != args.expect_version:
            raise RuntimeError("TensorFlow is %s, expected %s" % (tf.__version__, args.expect_version))
        if args.keras2:
            import tf_keras

            report["keras2"] = tf_keras.__version__
            if tf_keras.__version__.split(".")[:2] != tf.__version__.split(".")[:2]:
                raise RuntimeError("tf_keras is %s, not of TensorFlow %s" % (tf_keras.__version__, tf.__version__))
        gpus = tf.config.list_physical_devices("GPU")
        report["gpus"] = len(gpus)
        devices = ["/CPU:0"] + ["/GPU:%d" % i for i in range(len(gpus))]
        for device in devices:
            with tf.device(device):
                a = tf.constant([[1.0, 2.0], [3.0, 4.0]])
                got = tf.matmul(a, a).numpy().tolist()
            if got != [[7.0, 10.0], [15.0, 22.0]]:
                raise RuntimeError("matmul on %s gave %s" % (device, got))
        report["devices"] = devices
        if args.gpu:
            report["nvidia_smi_gpus"] = smi_gpus()
            if not report["cuda_build"]:
                raise RuntimeError("this TensorFlow is not a CUDA build (tensorflow-cpu on a GPU node?)")
            if report["nvidia_smi_gpus"] is None:
                raise RuntimeError("nvidia-smi does not answer")
            if len(gpus) != report["nvidia_smi_gpus"]:
                raise RuntimeError("TensorFlow sees %d GPU(s), nvidia-smi lists %d (CUDA/cuDNN wheels or driver?)"
                                   % (len(gpus), report["nvidia_smi_gpus"]))
        else:
            report["nvidia_smi_gpus"] = None
        report["ok"] = True
    except Exception as exc:  # pylint: disable=broad-except
        report["error"] = "%s: %s" % (type(exc).__name__, exc)
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

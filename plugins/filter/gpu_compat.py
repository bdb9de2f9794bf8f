# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU, driver, CUDA, PyTorch and TensorFlow compatibility filters: they read the collection's compatibility table
(data/gpu_compat.yml) and decide what fits together on a node, so roles never compare versions themselves.

gpu_facts, gpu_os_support, gpu_driver_plan, gpu_cuda_plan, gpu_pytorch_plan, gpu_tensorflow_plan,
gpu_loaded_driver_version: each one's documentation is the YAML file of its name beside this file (ansible-doc reads
it there because this file carries no DOCUMENTATION of its own)."""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import gpu_compat


def _wrap(func):
    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except gpu_compat.CompatDataError as exc:
            raise AnsibleFilterError(str(exc))
    return run


def gpu_facts(rows, architecture=None):
    return gpu_compat.gpu_facts(rows, architecture_override=architecture or None)


def gpu_os_support(distribution, version, major=None):
    return gpu_compat.os_support(distribution, version, major)


def gpu_driver_plan(os_name, gpu=None, branch="auto", source="auto", kernel_modules="auto", install_without_gpu=False,
                    loaded_version="", kernel="", arch="x86_64", pkg_mgr=None):
    return gpu_compat.driver_plan(os_name, gpu=gpu, branch=branch, source=source, kernel_modules=kernel_modules,
                                  install_without_gpu=install_without_gpu, loaded_version=loaded_version, kernel=kernel,
                                  arch=arch, pkg_mgr=pkg_mgr)


def gpu_cuda_plan(os_name, version, source="auto", component="toolkit", driver_branch="", arch="x86_64"):
    return gpu_compat.cuda_plan(os_name, version, source=source, component=component, driver_branch=driver_branch,
                                arch=arch)


def gpu_pytorch_plan(torch_version, index="auto", driver_branch="", architectures=None, gpu_present=False):
    return gpu_compat.pytorch_plan(torch_version, index=index, driver_branch=driver_branch, architectures=architectures,
                                   gpu_present=gpu_present)


def gpu_tensorflow_plan(tf_version, variant="auto", driver_branch="", architectures=None, gpu_present=False,
                        python_version=""):
    return gpu_compat.tensorflow_plan(tf_version, variant=variant, driver_branch=driver_branch,
                                      architectures=architectures, gpu_present=gpu_present,
                                      python_version=python_version)


def gpu_loaded_driver_version(proc_version):
    return gpu_compat.loaded_driver_version(proc_version)


class FilterModule(object):
    """GPU compatibility filters."""

    def filters(self):
        return {
            "gpu_facts": _wrap(gpu_facts),
            "gpu_os_support": _wrap(gpu_os_support),
            "gpu_driver_plan": _wrap(gpu_driver_plan),
            "gpu_cuda_plan": _wrap(gpu_cuda_plan),
            "gpu_pytorch_plan": _wrap(gpu_pytorch_plan),
            "gpu_tensorflow_plan": _wrap(gpu_tensorflow_plan),
            "gpu_loaded_driver_version": gpu_loaded_driver_version,
        }

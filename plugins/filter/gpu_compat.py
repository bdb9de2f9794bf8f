# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu_compat
short_description: GPU, driver, CUDA and PyTorch compatibility decisions from the collection's data file
version_added: 0.1.0
description:
  - Filters that read the collection's compatibility table (C(data/gpu_compat.yml)) and decide what fits
    together on a node, so roles never compare versions themselves.
  - C(gpu_facts) turns PCI devices (C(slot vendor device class) lines from sysfs) into GPU facts.
  - C(gpu_os_support) says whether a distribution/version is supported.
  - C(gpu_driver_plan) plans the NVIDIA driver (source, branch, kernel-module flavour, packages, repository).
  - C(gpu_cuda_plan) plans a CUDA toolkit and checks it against the driver branch.
  - C(gpu_pytorch_plan) picks the PyTorch wheel index for a torch version, driver branch and GPU architectures.
  - C(gpu_loaded_driver_version) reads the loaded driver's version from the text of C(/proc/driver/nvidia/version)
    (empty when nothing is loaded).
  - Every plan carries C(errors) (each names the conflict and the fix) and C(warnings).
author:
  - aiinfra platform team (@aiinfra)
options:
  _input:
    description:
      - For C(gpu_facts), a list of PCI device lines or dicts (C(slot), C(vendor), C(device), C(class)).
      - For C(gpu_os_support), the distribution name.
      - For C(gpu_driver_plan) and C(gpu_cuda_plan), the OS key from C(gpu_os_support).
      - For C(gpu_pytorch_plan), the torch version.
      - For C(gpu_loaded_driver_version), the text of C(/proc/driver/nvidia/version).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: GPU facts from sysfs
  ansible.builtin.set_fact:
    gpu: "{{ pci_dump.stdout_lines | aiinfra.gpu_cluster.gpu_facts }}"

- name: Plan the driver
  ansible.builtin.set_fact:
    plan: >-
      {{ 'debian-12' | aiinfra.gpu_cluster.gpu_driver_plan(gpu=gpu, branch='535', source='debian',
         kernel_modules='auto', kernel=ansible_facts.kernel) }}

- name: The loaded driver's version
  ansible.builtin.debug:
    msg: "{{ (proc.content | b64decode) | aiinfra.gpu_cluster.gpu_loaded_driver_version }}"

- name: Pick the torch wheels
  ansible.builtin.debug:
    msg: "{{ ('2.13.0' | aiinfra.gpu_cluster.gpu_pytorch_plan(driver_branch='535', gpu_present=false)).index_url }}"
"""

RETURN = r"""
_value:
  description:
    - The facts or plan, a dict; plans have C(errors) and C(warnings) lists.
    - For C(gpu_loaded_driver_version), the version string, e.g. C(580.82.07), or an empty string.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.aiinfra.gpu_cluster.plugins.plugin_utils import gpu_compat


def _wrap(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except gpu_compat.CompatDataError as exc:
            raise AnsibleFilterError(str(exc))
    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


def gpu_facts(rows, architecture=None):
    return gpu_compat.gpu_facts(rows, architecture_override=architecture or None)


def gpu_os_support(distribution, version, major=None):
    return gpu_compat.os_support(distribution, version, major)


def gpu_driver_plan(os_name, **kwargs):
    return gpu_compat.driver_plan(os_name, **kwargs)


def gpu_cuda_plan(os_name, **kwargs):
    return gpu_compat.cuda_plan(os_name, **kwargs)


def gpu_pytorch_plan(torch_version, **kwargs):
    return gpu_compat.pytorch_plan(torch_version, **kwargs)


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
            "gpu_loaded_driver_version": gpu_loaded_driver_version,
        }

# -*- coding: utf-8 -*-
# Copyright: (c) 2026, aiinfra platform team
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print what preflight needs to know about a node, as JSON, in one round trip. Read-only.

- pci: "slot vendor device class" for every PCI function (sysfs, no lspci needed)
- secure_boot: enabled / disabled / bios (no EFI) / unknown
- nvidia_version: the text of /proc/driver/nvidia/version ("" when no driver is loaded); the controller
  reads the version from it (filter aiinfra.gpu_cluster.gpu_loaded_driver_version)
- nvidia_smi_gpu_count: GPUs nvidia-smi lists, -1 when nvidia-smi is missing or fails
- cloud_init: whether cloud-init is installed
"""

import glob
import json
import os
import shutil
import subprocess

PCI = "/sys/bus/pci/devices"
EFI = "/sys/firmware/efi"
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def pci():
    rows = []
    for dev in sorted(glob.glob(os.path.join(PCI, "*"))):
        vendor = read(os.path.join(dev, "vendor"))
        if vendor:
            rows.append("%s %s %s %s" % (os.path.basename(dev), vendor, read(os.path.join(dev, "device")),
                                         read(os.path.join(dev, "class"))))
    return rows


def secure_boot():
    if not os.path.isdir(EFI):
        return "bios"
    try:
        with open(os.path.join(EFI, "efivars", SECURE_BOOT_VAR), "rb") as handle:
            data = handle.read()
    except OSError:
        return "unknown"
    # 4 bytes of attributes, then the value
    return "enabled" if len(data) >= 5 and data[4] == 1 else "disabled"


def smi_count():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return -1
    try:
        proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return -1
    if proc.returncode != 0:
        return -1
    return len([line for line in proc.stdout.splitlines() if line.startswith("GPU ")])


print(json.dumps({
    "pci": pci(),
    "secure_boot": secure_boot(),
    "nvidia_version": read("/proc/driver/nvidia/version"),
    "nvidia_smi_gpu_count": smi_count(),
    "cloud_init": bool(shutil.which("cloud-init")),
}))

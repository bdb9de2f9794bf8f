"""The health gate on a node (plugins/module_utils/health.py): the kernel log, nvidia-smi and dcgmi parsers and
the checks built on them."""

from __future__ import annotations

from ansible_collections.aiinfra.gpu_cluster.plugins.module_utils import health

KERNEL_LOG = """\
Dec 05 08:00:01 node kernel: Linux version 6.1.0-28-amd64
Dec 05 08:10:12 node kernel: NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.
Dec 05 08:11:00 node kernel: NVRM: Xid (PCI:0000:5e:00): 13, pid=4321, name=python, Graphics Exception: ESR 0x404
Dec 05 08:12:00 node kernel: NVRM: Xid (PCI:0000:86:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable \
double bit error (DBE) has been detected on GPU in the framebuffer at partition 0, subpartition 0.
Dec 05 08:13:00 node kernel: EDAC MC0: 1 UE memory read error on CPU_SrcID#0 (uncorrectable ECC)
Dec 05 08:14:00 node kernel: eth0: link up
"""


def test_xid_lines_are_parsed_with_their_pci_slot_and_code():
    found = health.parse_kernel_log(KERNEL_LOG)
    assert [(x["pci"], x["code"], x["application"]) for x in found["xid"]] == [
        ("0000:3b:00", 79, False), ("0000:5e:00", 13, True), ("0000:86:00", 48, False)]
    assert found["xid"][0]["detail"].startswith("pid=1234, name=python, GPU has fallen off the bus")
    assert found["ecc"] == ["Dec 05 08:13:00 node kernel: EDAC MC0: 1 UE memory read error on CPU_SrcID#0 "
                            "(uncorrectable ECC)"]


def test_kernel_log_check():
    failed = health.kernel_log_check(KERNEL_LOG, "journalctl -k -b")
    assert failed["status"] == "failed" and failed["figures"]["xid"] == [13, 48, 79]
    assert "Xid 79 on 0000:3b:00" in failed["detail"] and "Xid 48 on 0000:86:00" in failed["detail"]
    app = health.kernel_log_check("kernel: NVRM: Xid (PCI:0000:5e:00): 31, pid=1, name=x, Ch 00000010, MMU Fault",
                                  "dmesg")
    assert app["status"] == "warning" and "31" in app["detail"]
    clean = health.kernel_log_check("kernel: eth0: link up\nkernel: nvidia: module loaded", "dmesg")
    assert clean["status"] == "passed"


SMI = "0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 0\n1, NVIDIA H100 80GB HBM3, 00000000:2A:00.0, 2\n"


def test_gpu_checks_from_nvidia_smi():
    checks = dict((c["name"], c) for c in health.gpu_checks(0, SMI, "", 2, expected_count=2, expected_model="H100"))
    assert checks["driver"]["status"] == "passed" and checks["gpu count"]["status"] == "passed"
    assert checks["gpu model"]["status"] == "passed"
    assert checks["ecc"]["status"] == "failed" and "GPU 1 (00000000:2A:00.0): 2" in checks["ecc"]["detail"]
    fewer = dict((c["name"], c) for c in health.gpu_checks(0, SMI, "", 2, expected_count=8, expected_model="H200"))
    assert fewer["gpu count"]["status"] == "failed" and "the instance type has 8" in fewer["gpu count"]["detail"]
    assert fewer["gpu model"]["status"] == "failed"
    no_ecc = health.gpu_checks(0, "0, Tesla T4, 00000000:00:04.0, [N/A]\n", "", 1)
    assert [c["status"] for c in no_ecc] == ["passed", "passed", "passed", "not applicable"]


def test_driver_that_does_not_answer_and_cpu_nodes():
    broken = health.gpu_checks(9, "", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver",
                               8)
    assert broken[0]["status"] == "failed" and "couldn't communicate" in broken[0]["detail"]
    missing = health.gpu_checks(None, "", "", 8)
    assert missing[0]["status"] == "failed" and "no nvidia-smi" in missing[0]["detail"]
    cpu = health.gpu_checks(None, "", "", 0)
    assert [c["status"] for c in cpu] == ["not applicable"] * 4
    assert health.overall(cpu) == "passed" and health.overall(broken) == "failed"


DIAG = """\
Successfully ran diagnostic for group.
+---------------------------+------------------------------------------------+
| Diagnostic                | Result                                         |
+===========================+================================================+
|-----  Deployment  --------+------------------------------------------------|
| Denylist                  | Pass                                           |
| NVML Library              | Pass                                           |
| CUDA Main Library         | Pass                                           |
| Permissions and OS Blocks | Pass                                           |
| Persistence Mode          | Fail                                           |
| Environment Variables     | Pass                                           |
| Page Retirement/Row Remap | Skip                                           |
+---------------------------+------------------------------------------------+
"""


def test_dcgmi_diag():
    rows = health.parse_dcgmi_diag(DIAG)
    assert len(rows) == 7 and rows[4] == {"test": "Persistence Mode", "result": "Fail"}
    failed = health.dcgm_check(True, 226, DIAG, "")
    assert failed["status"] == "failed" and "Persistence Mode" in failed["detail"]
    passed = health.dcgm_check(True, 0, DIAG.replace("| Fail ", "| Pass "), "")
    assert passed["status"] == "passed"
    assert health.dcgm_check(False, None, "", "")["status"] == "not applicable"


def test_local_allreduce_check():
    assert health.local_allreduce_check(None)["status"] == "not applicable"
    assert health.local_allreduce_check({"gpus": 1, "busbw_gbs": None, "note": "fewer than 2 GPUs"})["status"] == \
        "not applicable"
    assert health.local_allreduce_check({"error": "the NCCL all-reduce failed"})["status"] == "failed"
    good = health.local_allreduce_check({"gpus": 8, "busbw_gbs": 470.5, "bytes": 1 << 26})
    assert good["status"] == "passed" and good["figures"]["busbw_gbs"] == 470.5
    assert health.local_allreduce_check({"gpus": 8, "busbw_gbs": 100.0}, threshold=360)["status"] == "failed"


def test_pci_gpus(tmp_path):
    for slot, vendor, klass in (("0000:3b:00.0", "0x10de", "0x030200"), ("0000:3b:00.1", "0x10de", "0x040300"),
                                ("0000:00:02.0", "0x8086", "0x030000"), ("0000:5e:00.0", "0x10de", "0x030000")):
        (tmp_path / slot).mkdir()
        (tmp_path / slot / "vendor").write_text(vendor + "\n")
        (tmp_path / slot / "class").write_text(klass + "\n")
    assert health.pci_gpus(str(tmp_path)) == ["0000:3b:00.0", "0000:5e:00.0"]
    assert health.pci_gpus(str(tmp_path / "missing")) == []

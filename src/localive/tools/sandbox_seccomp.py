"""The sandbox's seccomp filter: syscalls that model-written Python never needs and that widen the kernel's attack
surface, or allocate memory that RLIMIT_AS does not count, are refused before the kernel looks at them.

Built here as classic BPF (a few dozen instructions assembled with ``struct``) and handed to ``bwrap --seccomp``;
docs/code-execution.md lists what is refused and why.
"""

from __future__ import annotations

import struct

# Syscalls refused with EPERM, by number on (x86_64, aarch64); -1: the architecture has no such syscall.
_DENIED_SYSCALLS = {
    # namespaces and mounts: what user namespaces expose to unprivileged code
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41),
    "chroot": (161, 51), "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430),
    "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433), "mount_setattr": (442, 442),
    # large or frequently buggy kernel interfaces that plain Python never needs
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282), "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426), "io_uring_register": (427, 427), "keyctl": (250, 219), "add_key": (248, 217),
    "request_key": (249, 218), "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "personality": (135, 92), "modify_ldt": (154, -1), "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    # memory that RLIMIT_AS does not count: memfds written with write(), System V IPC objects
    "memfd_create": (319, 279), "memfd_secret": (447, 447), "shmget": (29, 194), "msgget": (68, 186),
    "semget": (64, 190),
    # privileged anyway: refused before the kernel looks at capabilities
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "init_module": (175, 105), "finit_module": (313, 273),
    "delete_module": (176, 106), "reboot": (169, 142), "swapon": (167, 224), "swapoff": (168, 225),
    "acct": (163, 89), "syslog": (103, 116), "quotactl": (179, 60), "iopl": (172, -1), "ioperm": (173, -1),
}
_ARCHES = {"x86_64": (0, 0xC000003E, 56), "aarch64": (1, 0xC00000B7, 220)}  # column, AUDIT_ARCH_*, clone's number
_CLONE3 = 435  # refused with ENOSYS, so that glibc falls back to clone, whose flags a filter can read
_CLONE_NEW_NAMESPACES = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (NEWTIME: clone3 only)
_X32_SYSCALL_BIT = 0x40000000


def seccomp_filter(machine: str) -> bytes | None:
    """A classic BPF program (``struct sock_filter[]``) for ``bwrap --seccomp``; None on other architectures.

    Foreign architectures' syscalls (i386's int 0x80 on x86_64) kill the process; x32 syscalls get ENOSYS.
    """
    if machine not in _ARCHES:
        return None
    column, audit_arch, clone = _ARCHES[machine]
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|{JEQ,JGE,JSET}|K, BPF_RET|K
    # (opcode, jump-if-true target, jump-if-false target, k); targets name the return instructions at the end
    body: list[tuple[int, str | None, str | None, int]] = [
        (ld, None, None, 4),  # seccomp_data.arch
        (jeq, None, "kill", audit_arch),
        (ld, None, None, 0),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        body.append((jge, "enosys", None, _X32_SYSCALL_BIT))
    body.append((jeq, "enosys", None, _CLONE3))
    body += [(jeq, "eperm", None, numbers[column]) for numbers in _DENIED_SYSCALLS.values() if numbers[column] >= 0]
    body += [
        (jeq, None, "allow", clone),
        (ld, None, None, 16),  # low half of seccomp_data.args[0]: clone's flags
        (jset, "eperm", "allow", _CLONE_NEW_NAMESPACES),
    ]
    returns = {"allow": 0x7FFF0000, "eperm": 0x00050000 | 1, "enosys": 0x00050000 | 38, "kill": 0x80000000}
    where = {label: len(body) + i for i, label in enumerate(returns)}
    program = b""
    for i, (code, if_true, if_false, k) in enumerate(body):
        jt = where[if_true] - i - 1 if if_true else 0
        jf = where[if_false] - i - 1 if if_false else 0
        program += struct.pack("=HBBI", code, jt, jf, k)
    return program + b"".join(struct.pack("=HBBI", ret, 0, 0, k) for k in returns.values())

"""Closing a listening socket at a graceful stop without resetting a connection the kernel already accepted.

The kernel completes a TCP handshake on its own and queues the connection until a process
calls accept(); the client may send its request at once. Closing the last descriptor of the
listening socket resets every connection still queued, so a client that sent a request gets
ECONNRESET instead of an answer. And while any process holds the socket open (the supervisor
of worker processes does), the kernel keeps completing handshakes that nobody will accept.

So a stop first makes the socket refuse new handshakes while the queue is kept (`stop_accepting`:
on Linux a socket filter that drops every incoming packet of the listening socket, which holds
a new client's SYN; connections already queued have sockets of their own and are not touched),
lets the server processes accept what is queued (`queued_connections` says when none is left),
and only then closes it. A client whose SYN was dropped retries it (after 1 s on Linux) and, the
socket closed by then, is refused. Elsewhere than Linux both are no-ops: the socket is closed as before;
so is it where the kernel (or qemu's user-mode emulation of one) offers no filter or no TCP_INFO.
"""

import ctypes
import socket
import struct
import sys

_SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; Python's socket module does not name it
_DROP_EVERYTHING = struct.pack("HBBI", 0x06, 0, 0, 0)  # one classic BPF instruction: BPF_RET | BPF_K, keep 0 bytes


def stop_accepting(sock):
    """Make the listening `sock` ignore new connections, in every process that holds it; queued ones stay."""
    if sys.platform != "linux":
        return
    program = ctypes.create_string_buffer(_DROP_EVERYTHING)  # the kernel copies it during setsockopt
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HP", 1, ctypes.addressof(program)))
    except OSError:  # a kernel (or an emulator's translation of one) without socket filters: closed as elsewhere
        pass


def queued_connections(sock):
    """Connections in the accept queue of the listening `sock` (Linux reports it as tcpi_unacked; elsewhere 0)."""
    if sys.platform != "linux":
        return 0
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    if len(info) < 28:  # qemu's user-mode emulation, for one, answers 4 bytes: the queue is not known, so not waited for
        return 0
    return struct.unpack_from("I", info, 24)[0]  # after 8 one-byte fields and rto, ato, snd_mss, rcv_mss

//! Network monitor: listening sockets and TCP connections, diffed every scan.

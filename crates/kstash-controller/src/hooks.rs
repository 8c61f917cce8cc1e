//! Hook execution (HookTemplate actions: exec, httpGet, httpPost, tcpSocket).

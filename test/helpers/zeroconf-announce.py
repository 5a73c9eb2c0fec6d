#!/usr/bin/python3
# A DNS-SD announcer written by others: python3-zeroconf registers one service instance on
# 127.0.0.1 (the test namespace's lo), says "registered" on stdout, and on SIGTERM or stdin's
# end unregisters it (zeroconf sends the goodbye) and exits.
#   zeroconf-announce.py TYPE NAME PORT ADDRESS
import signal
import socket
import sys
import threading

from zeroconf import IPVersion, ServiceInfo, Zeroconf

service_type, name, port, address = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
info = ServiceInfo(
    f"{service_type}.local.",
    f"{name}.{service_type}.local.",
    addresses=[socket.inet_aton(address)],
    port=port,
    properties={"txtvers": "1", "by": "python3-zeroconf"},
    server="zeroconf-peer.local.",
)
zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
zc.register_service(info)
print("registered", flush=True)

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
stop.wait()
zc.unregister_service(info)
zc.close()
print("unregistered", flush=True)

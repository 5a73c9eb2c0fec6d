#!/usr/bin/python3
# A DNS-SD browser written by others: python3-zeroconf browses TYPE on 127.0.0.1 for SECONDS
# and prints each instance it resolves as one JSON line (name, SRV target, port, addresses, TXT).
#   zeroconf-browse.py TYPE SECONDS
import json
import socket
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

service_type, seconds = f"{sys.argv[1]}.local.", float(sys.argv[2])
zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
seen = set()


def on_change(zeroconf, service_type, name, state_change):
    if state_change is not ServiceStateChange.Added or name in seen:
        return
    info = zeroconf.get_service_info(service_type, name, timeout=2000)
    if info is None:
        return
    seen.add(name)
    print(json.dumps({
        "name": name,
        "server": info.server,
        "port": info.port,
        "addresses": [socket.inet_ntoa(a) for a in info.addresses],
        "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
    }), flush=True)


ServiceBrowser(zc, service_type, handlers=[on_change])
time.sleep(seconds)
zc.close()

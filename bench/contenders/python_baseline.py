#!/usr/bin/env python3
"""The tool scan-backends replaces, re-created from its known semantics: 50 threads over every
address, socket.connect_ex after settimeout(1.0), a port open when the result is 0, and no
protocol check. Prints the open hosts, one a line.

usage: python_baseline.py FIRST_ADDRESS LAST_ADDRESS PORT
"""
import ipaddress
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

first, last, port = ipaddress.IPv4Address(sys.argv[1]), ipaddress.IPv4Address(sys.argv[2]), int(sys.argv[3])


def check(address):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        return address if sock.connect_ex((address, port)) == 0 else None
    finally:
        sock.close()


hosts = [str(ipaddress.IPv4Address(a)) for a in range(int(first), int(last) + 1)]
with ThreadPoolExecutor(max_workers=50) as pool:
    for found in pool.map(check, hosts):
        if found:
            print(found)

#!/bin/sh
# nmap's TCP connect scan, open hosts one a line. usage: nmap.sh [NMAP OPTIONS...] TARGET
nmap -sT -Pn -n -oG - "$@" | awk '/Ports: .*\/open\//{print $2}'

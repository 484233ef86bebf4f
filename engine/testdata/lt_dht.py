#!/usr/bin/python3
"""A few libtorrent DHT nodes on 127.0.0.1 driven over stdin/stdout.

An independent BEP 5 implementation for apt-p2p's mainline interop tests
(engine/mainline_interop_test.go). Each input line is a JSON command; each
command prints one JSON line. The settings follow
shared/reference/libtorrent-dht.md: explicit 127.0.0.1 listen addresses,
nodes introduced with add_dht_node (not as bootstrap routers), no routing
or search IP restrictions, a raised rate limit, nothing that reaches
outside, and an ip_filter that blocks BitTorrent peer connections.
"""
import atexit
import json
import shutil
import sys
import tempfile
import time

import libtorrent as lt

N = int(sys.argv[1]) if len(sys.argv) > 1 else 3
tmp = tempfile.mkdtemp(prefix="lt-dht-")
atexit.register(shutil.rmtree, tmp, True)  # the torrents' save path: nothing is left in /tmp


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def make_session():
    s = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 100000,
        "dht_block_timeout": 1,
        "alert_mask": lt.alert.category_t.all_categories,
    })
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)
    s.set_ip_filter(f)
    return s


sessions = [make_session() for _ in range(N)]
# The listen port is known once the socket is open.
deadline = time.time() + 10
while time.time() < deadline and any(s.listen_port() == 0 for s in sessions):
    time.sleep(0.05)
ports = [s.listen_port() for s in sessions]
for i, s in enumerate(sessions):
    for j, p in enumerate(ports):
        if i != j:
            s.add_dht_node(("127.0.0.1", p))
out({"ports": ports})

pending = {i: [] for i in range(N)}  # alerts not consumed yet, per session


def alerts(i, timeout):
    s = sessions[i]
    s.wait_for_alert(int(timeout * 1000))
    pending[i].extend(s.pop_alerts())
    got, pending[i] = pending[i], []
    return got


def wait_for(i, pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        keep = []
        found = None
        for a in alerts(i, min(0.2, max(0.01, end - time.time()))):
            if found is None and pred(a):
                found = a
            else:
                keep.append(a)
        pending[i].extend(keep)
        if found is not None:
            return found
    return None


handles = {}
for line in sys.stdin:
    cmd = json.loads(line)
    i = cmd.get("node", 0)
    s = sessions[i]
    c = cmd["cmd"]
    try:
        if c == "add_node":
            for t in sessions:
                t.add_dht_node((cmd["host"], cmd["port"]))
            out({"ok": True})
        elif c == "nodes":
            s.post_dht_stats()
            a = wait_for(i, lambda a: isinstance(a, lt.dht_stats_alert), 5)
            n = sum(b["num_nodes"] for b in a.routing_table) if a else -1
            out({"nodes": n})
        elif c == "get_peers":
            ih = lt.sha1_hash(bytes.fromhex(cmd["ih"]))
            s.dht_get_peers(ih)
            a = wait_for(i, lambda a: isinstance(a, lt.dht_get_peers_reply_alert) and a.info_hash == ih, 20)
            peers = [f"{h}:{p}" for h, p in a.peers()] if a else []
            out({"peers": peers})
        elif c == "announce":
            # session.dht_announce cannot be called from Python in 2.0.8:
            # a magnet-style torrent makes libtorrent announce the info-hash
            # itself, with the session's listen port.
            atp = lt.add_torrent_params()
            atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(cmd["ih"])))
            atp.save_path = tmp
            handles[cmd["ih"]] = s.add_torrent(atp)
            handles[cmd["ih"]].force_dht_announce()
            out({"port": s.listen_port()})
        elif c == "put":
            target = s.dht_put_immutable_item(cmd["v"])
            a = wait_for(i, lambda a: isinstance(a, lt.dht_put_alert) and a.target == target, 20)
            out({"target": str(target), "success": a.num_success if a else -1})
        elif c == "get_item":
            target = lt.sha1_hash(bytes.fromhex(cmd["target"]))
            s.dht_get_immutable_item(target)
            a = wait_for(i, lambda a: isinstance(a, lt.dht_immutable_item_alert) and a.target == target, 20)
            item = None if a is None else a.item
            if isinstance(item, dict):  # some builds wrap it: {key, value}
                item = item.get("value")
            if isinstance(item, bytes):
                item = item.decode("latin-1")
            out({"item": None if item is None else str(item)})
        elif c == "quit":
            out({"ok": True})
            break
        else:
            out({"error": "unknown command " + c})
    except Exception as e:  # report, keep serving
        out({"error": repr(e)})

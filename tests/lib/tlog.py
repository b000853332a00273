#!/usr/bin/env python3
# An independent reading of keystrap's audit log for the tests (no keystrap code): RFC 6962
# roots and inclusion proofs from leaf hashes, C2SP checkpoints, and the insider's rewrite of
# an SQLite store (a record edited with every chained hash after it recomputed).
#   tlog.py root < export.jsonl                         root of the exported leaves, hex
#   tlog.py root-at N < export.jsonl                    root of the first N
#   tlog.py inclusion PROOF.json ROOT_HEX               exit 0 if the proof holds
#   tlog.py checkpoint NOTE                             "origin size roothex" of a note's text
#   tlog.py rehash DB SEQ DECISION                      edit record SEQ, recompute the chain after it
import base64, hashlib, json, sqlite3, struct, sys


def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def mth(leaves):
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def leaves_in():
    return [bytes.fromhex(json.loads(l)["leaf_hash"]) for l in sys.stdin if l.strip()]


def verify_inclusion(index, size, leaf, proof, root):
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def chain_hash(prev, row):
    h = hashlib.sha256(prev)
    for f in [str(row[0]), str(row[1])] + list(row[2:8]):
        b = f.encode()
        h.update(struct.pack(">I", len(b)) + b)
    return h.digest()


cmd = sys.argv[1]
if cmd == "root":
    print(mth(leaves_in()).hex())
elif cmd == "root-at":
    print(mth(leaves_in()[: int(sys.argv[2])]).hex())
elif cmd == "inclusion":
    p = json.load(open(sys.argv[2]))
    leaf = hashlib.sha256(b"\x00" + base64.b64decode(p["record"])).digest()
    ok = verify_inclusion(p["index"], p["tree_size"], leaf, [base64.b64decode(x) for x in p["inclusion"]],
                          bytes.fromhex(sys.argv[3]))
    sys.exit(0 if ok else 1)
elif cmd == "checkpoint":
    text = open(sys.argv[2]).read().split("\n\n")[0].split("\n")
    print(text[0], text[1], base64.b64decode(text[2]).hex())
elif cmd == "rehash":
    db = sqlite3.connect(sys.argv[2])
    seq = int(sys.argv[3])
    db.execute("UPDATE audit SET decision = ? WHERE seq = ?", (sys.argv[4], seq))
    rows = db.execute("SELECT seq, time_us, peer, ek_hash, node_id, action, decision, reasons, prev_hash FROM audit "
                      "WHERE seq >= ? ORDER BY seq", (seq,)).fetchall()
    prev = rows[0][8]
    for row in rows:
        h = chain_hash(prev, row)
        db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, row[0]))
        prev = h
    db.commit()
else:
    sys.exit("unknown command " + cmd)

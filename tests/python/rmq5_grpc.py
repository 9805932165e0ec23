"""ActorMQ's gRPC proxy driven by the unchanged Apache RocketMQ 5.x Python
client (PyPI `rocketmq-python-client` 5.1.2).

Usage: rmq5_grpc.py MODE ENDPOINT ARGS...

Every mode prints one `RESULT ...` line per fact the Rust test checks
(tests/grpc_python.rs), then `<mode>: ok`; any failure exits non-zero.
"""

import glob
import os
import sys
import threading
import time

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials,
                      FilterExpression, Message, MessageListener, Producer,
                      PushConsumer, SimpleConsumer, TransactionChecker,
                      TransactionResolution)


def config(endpoint, ak="", sk=""):
    return ClientConfiguration(endpoint, Credentials(ak, sk), request_timeout=10)


def out(*parts):
    print("RESULT", *parts, flush=True)


def message(topic, body, tag=None, keys=None, group=None, delay_s=None):
    m = Message()
    m.topic = topic
    m.body = body.encode()
    if tag:
        m.tag = tag
    if keys:
        m.keys = keys
    if group:
        m.message_group = group
    if delay_s:
        # This client takes the delivery time in whole seconds.
        m.delivery_timestamp = int(time.time()) + delay_s
    m.add_property("origin", "python5")
    return m


def send_plain(endpoint, normal, fifo, delay):
    p = Producer(config(endpoint), (normal, fifo, delay))
    p.startup()
    try:
        for i in range(10):
            r = p.send(message(normal, f"normal-{i}", tag="TagA", keys=f"key-{i}"))
            out("NORMAL", r.message_id, f"normal-{i}")
        for g in ("order-a", "order-b"):
            for i in range(5):
                r = p.send(message(fifo, f"{g}-{i}", group=g))
                out("FIFO", r.message_id, g, f"{g}-{i}")
        r = p.send(message(delay, "delayed", delay_s=4))
        out("DELAY", r.message_id, int(time.time() * 1000))
    finally:
        p.shutdown()


class Checker(TransactionChecker):
    def __init__(self):
        self.checked = threading.Event()
        self.ids = []

    def check(self, msg):
        self.ids.append(msg.message_id)
        out("TXCHECKED", msg.message_id)
        self.checked.set()
        return TransactionResolution.COMMIT


def send_transactions(endpoint, topic):
    checker = Checker()
    p = Producer(config(endpoint), (topic,), checker)
    p.startup()
    try:
        t = p.begin_transaction()
        r = p.send(message(topic, "tx-commit"), t)
        t.commit()
        out("TXCOMMIT", r.message_id)
        t = p.begin_transaction()
        r = p.send(message(topic, "tx-rollback"), t)
        t.rollback()
        out("TXROLLBACK", r.message_id)
        # Neither commit nor rollback: the broker asks, the checker commits.
        t = p.begin_transaction()
        r = p.send(message(topic, "tx-checked"), t)
        out("TXPENDING", r.message_id)
        if not checker.checked.wait(60):
            raise SystemExit("no transaction check arrived within 60 s")
        time.sleep(1)
    finally:
        p.shutdown()


def simple(endpoint, topic, group):
    """Receive and ack; change invisible duration (a fast nack) and see the
    message again with a higher delivery attempt."""
    c = SimpleConsumer(config(endpoint), group, {topic: FilterExpression("TagA")}, await_duration=5)
    c.startup()
    c.receive(16, 15)  # the group's first POP fixes its start offsets
    p = Producer(config(endpoint), (topic,))
    p.startup()
    sent = [p.send(message(topic, f"simple-{i}", tag="TagA")).message_id for i in range(5)]
    p.send(message(topic, "filtered-out", tag="TagB"))
    p.shutdown()
    try:
        got, nacked, deadline = {}, None, time.time() + 60
        while len(got) < len(sent) and time.time() < deadline:
            for m in c.receive(16, 15):
                if nacked is None:
                    nacked = m.message_id
                    c.change_invisible_duration(m, 1)
                    out("NACKED", m.message_id, m.delivery_attempt)
                    continue
                got[m.message_id] = m.delivery_attempt
                c.ack(m)
                out("ACKED", m.message_id, m.delivery_attempt)
        out("SUMMARY", "sent", len(sent), "acked", len(got), "again", got.get(nacked, 0))
    finally:
        c.shutdown()


def dlq(endpoint, topic, group):
    """Never acked: redelivered after the invisible time until the group's
    max attempts, then no more (it went to the DLQ)."""
    c = SimpleConsumer(config(endpoint), group, {topic: FilterExpression()}, await_duration=5)
    c.startup()
    c.receive(1, 10)
    p = Producer(config(endpoint), (topic,))
    p.startup()
    mid = p.send(message(topic, "poison")).message_id
    p.shutdown()
    try:
        attempts, last, start = [], time.time(), time.time()
        # Stop once 20 s pass without another delivery (or after 150 s).
        while time.time() - last < 20 and time.time() - start < 150:
            for m in c.receive(1, 10):
                if m.message_id == mid:
                    attempts.append(m.delivery_attempt)
                    last = time.time()
                    out("ATTEMPT", m.delivery_attempt)
                    c.change_invisible_duration(m, 1)
        out("DLQSUMMARY", mid, len(attempts))
    finally:
        c.shutdown()


def send_n(endpoint, topic, prefix, count):
    """Sends `count` messages; answers their ids."""
    p = Producer(config(endpoint), (topic,))
    p.startup()
    try:
        return {p.send(message(topic, f"{prefix}-{i}")).message_id for i in range(count)}
    finally:
        p.shutdown()


class Listener(MessageListener):
    def __init__(self, name, seen, lock):
        self.name, self.seen, self.lock = name, seen, lock

    def consume(self, m):
        with self.lock:
            self.seen.append((self.name, m.message_id))
        return ConsumeResult.SUCCESS


def push(endpoint, topic, groups, count):
    lock = threading.Lock()
    seen = []
    consumers = []
    for g in groups.split(","):
        for n in range(2):
            c = PushConsumer(config(endpoint), g, Listener(g, seen, lock), {topic: FilterExpression()})
            c.startup()
            consumers.append(c)
    time.sleep(3)
    sent = send_n(endpoint, topic, "push", count)
    deadline = time.time() + 90
    want = count * len(groups.split(","))
    while time.time() < deadline:
        with lock:
            if len(seen) >= want:
                break
        time.sleep(0.2)
    time.sleep(2)
    for c in consumers:
        c.shutdown()
    for g in groups.split(","):
        ids = [mid for (name, mid) in seen if name == g]
        out("PUSH", g, "got", len(ids), "distinct", len(set(ids)), "missing", len(sent - set(ids)))


class SlowListener(MessageListener):
    """Takes `sleep_s` per message (longer than the invisible time)."""

    def __init__(self, name, seen, lock, sleep_s):
        self.name, self.seen, self.lock, self.sleep_s = name, seen, lock, sleep_s

    def consume(self, m):
        with self.lock:
            self.seen.append((self.name, m.message_id, m.delivery_attempt))
        out("CONSUMING", self.name, m.message_id, m.delivery_attempt)
        time.sleep(self.sleep_s)
        return ConsumeResult.SUCCESS


def ack_failures():
    """Lines of this client's log (under $HOME) about acks that failed."""
    n = 0
    for f in glob.glob(os.path.expanduser("~/logs/rocketmq_python/*")):
        with open(f, errors="replace") as fh:
            n += sum(1 for line in fh if "ack or nack raise exception" in line
                     or "failed to ack" in line)
    return n


def renew(endpoint, topic, group, count, sleep_s, quiet_s):
    """Push consumers whose handler outlasts the invisible time: the proxy
    renews the handles, so each message arrives once, and the acks (with
    the handles the client was given) succeed."""
    lock = threading.Lock()
    seen = []
    consumers = []
    for n in range(2):
        c = PushConsumer(config(endpoint), group, SlowListener(f"c{n}", seen, lock, sleep_s),
                         {topic: FilterExpression()})
        c.startup()
        consumers.append(c)
    time.sleep(3)
    sent = send_n(endpoint, topic, "slow", count)
    deadline = time.time() + 120
    while time.time() < deadline:
        with lock:
            if len({mid for (_, mid, _) in seen}) >= count:
                break
        time.sleep(0.2)
    # Handlers finish and ack; anything redelivered would show up meanwhile.
    time.sleep(sleep_s + quiet_s)
    for c in consumers:
        c.shutdown()
    ids = [mid for (_, mid, _) in seen]
    out("RENEW", "got", len(ids), "distinct", len(set(ids)), "missing", len(sent - set(ids)),
        "ackfail", ack_failures())


def receive_n(c, n, invisible_s=20, within_s=30):
    """Receives until `n` messages arrived (or `within_s` passed)."""
    got, deadline = [], time.time() + within_s
    while len(got) < n and time.time() < deadline:
        got += c.receive(n - len(got), invisible_s)
    return got


def fifo(endpoint, topic, group):
    """A FIFO group through a SimpleConsumer: one message group in order, the
    next messages only once everything received before is acked; the second
    batch is acked with one multi-entry AckMessage."""
    c = SimpleConsumer(config(endpoint), group, {topic: FilterExpression()}, await_duration=3)
    c.startup()
    p = Producer(config(endpoint), (topic,))
    p.startup()
    for i in range(6):
        p.send(message(topic, f"fifo-{i}", group="order-1"))
    p.shutdown()
    first = receive_n(c, 3)
    out("FIFO1", *[m.body.decode() for m in first])
    # Nothing more while the first three are not all acked.
    blocked = c.receive(3, 20)
    out("BLOCKED", len(blocked))
    c.ack(first[0])
    c.ack(first[1])
    blocked = c.receive(3, 20)
    out("BLOCKED2", len(blocked))
    c.ack(first[2])
    second = receive_n(c, 3)
    out("FIFO2", *[m.body.decode() for m in second])
    st = batch_ack(c, topic, group, second, bogus=False)
    out("FIFOACK", st.code, *[e.status.code for e in st.entries])
    out("REST", len(c.receive(3, 20)))
    c.shutdown()


def batch_ack(c, topic, group, msgs, bogus):
    """One AckMessage with an entry per message (and a bogus one)."""
    from rocketmq.grpc_protocol import AckMessageEntry, AckMessageRequest
    req = AckMessageRequest()
    req.group.name = group
    req.topic.name = topic
    for m in msgs:
        e = AckMessageEntry()
        e.message_id = m.message_id
        e.receipt_handle = m.receipt_handle
        req.entries.append(e)
    if bogus:
        e = AckMessageEntry()
        e.message_id = "bogus"
        e.receipt_handle = "0 1 1 0 0 nobroker 0 0 -1"
        req.entries.append(e)
    res = c.rpc_client.ack_message_async(msgs[0].endpoints, req, metadata=c.sign(),
                                         timeout=10).result()

    class R:
        code = res.status.code
        entries = res.entries
    return R


def batchack(endpoint, topic, group, count):
    """Receive `count` messages, ack them with one AckMessage (plus a bogus
    entry), then see that none comes back after the invisible time."""
    count = int(count)
    c = SimpleConsumer(config(endpoint), group, {topic: FilterExpression()}, await_duration=3)
    c.startup()
    c.receive(16, 10)
    p = Producer(config(endpoint), (topic,))
    p.startup()
    for i in range(count):
        p.send(message(topic, f"batch-{i}"))
    p.shutdown()
    got = receive_n(c, count, invisible_s=10)
    out("RECEIVED", len(got))
    st = batch_ack(c, topic, group, got, bogus=True)
    codes = [e.status.code for e in st.entries]
    out("BATCHACK", st.code, "ok", codes.count(20000), "other", *[x for x in codes if x != 20000])
    again, deadline = 0, time.time() + 16
    while time.time() < deadline:
        again += len(c.receive(16, 10))
    out("AGAIN", again)
    c.shutdown()


def acl(endpoint, topic, ak, sk):
    """One send with these credentials: SENT, or REFUSED and why."""
    try:
        p = Producer(config(endpoint, ak, sk), (topic,))
        p.startup()
        try:
            r = p.send(message(topic, "acl"))
            out("ACL", "SENT", r.message_id)
        finally:
            p.shutdown()
    except Exception as e:  # noqa: BLE001 - every refusal counts
        out("ACL", "REFUSED", repr(e).replace("\n", " "))


def main():
    mode, endpoint, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    {
        "send": lambda: send_plain(endpoint, *args),
        "transactions": lambda: send_transactions(endpoint, *args),
        "simple": lambda: simple(endpoint, *args),
        "dlq": lambda: dlq(endpoint, *args),
        "acl": lambda: acl(endpoint, *args),
        "push": lambda: push(endpoint, args[0], args[1], int(args[2])),
        "renew": lambda: renew(endpoint, args[0], args[1], int(args[2]), float(args[3]),
                               float(args[4])),
        "fifo": lambda: fifo(endpoint, *args),
        "batchack": lambda: batchack(endpoint, *args),
    }[mode]()
    print(f"{mode}: ok", flush=True)


if __name__ == "__main__":
    main()

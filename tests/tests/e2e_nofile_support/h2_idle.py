# HTTP/2 clients that each make one request and go silent, for e2e_nofile.
# argv: port tls(0|1) old young. Opens one connection that sends the preface and nothing
# else, then `old` connections that each make one request, then (a second later, so that they
# are younger) `young` ones; prints "ready". Then it answers what the server sends (PINGs)
# and records GOAWAYs and closes, until a line on stdin; then it asks once more on every
# connection still open and prints one JSON object per group.
import json, select, socket, ssl, sys, time
import h2.config, h2.connection, h2.events, h2.exceptions

port, tls, n_old, n_young = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4])

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(s, server_hostname="weir.test")
        assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return {"s": s, "c": c, "goaways": [], "closed": False, "error": None, "status": None}

def request(k):
    c, s = k["c"], k["s"]
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "GET"), (":scheme", "https" if tls else "http"),
                         (":authority", "lb"), (":path", "/")], end_stream=True)
    s.sendall(c.data_to_send())
    k["status"] = None
    end = time.time() + 3
    while time.time() < end and not k["closed"]:
        if not pump(k, 0.5):
            continue
        if k.get("ended") == sid:
            return
    raise SystemExit("no response on stream %d" % sid)

def events(k, evs):
    for e in evs:
        if isinstance(e, h2.events.ConnectionTerminated):
            k["goaways"].append([int(e.error_code), e.last_stream_id])
        elif isinstance(e, h2.events.ResponseReceived):
            k["status"] = dict(e.headers).get(b":status", b"").decode()
        elif isinstance(e, h2.events.StreamEnded):
            k["ended"] = e.stream_id
        elif isinstance(e, h2.events.DataReceived):
            k["c"].acknowledge_received_data(e.flow_controlled_length, e.stream_id)

def pump(k, timeout):
    """Reads what came (if anything within `timeout`); whether something did."""
    s, c = k["s"], k["c"]
    if not (isinstance(s, ssl.SSLSocket) and s.pending()):
        r, _, _ = select.select([s], [], [], timeout)
        if not r:
            return False
    try:
        data = s.recv(65536)
    except (ConnectionError, ssl.SSLError, socket.timeout) as e:
        k["closed"], k["error"] = True, repr(e)
        return True
    if not data:
        k["closed"] = True
        return True
    k["buf"] = k.get("buf", b"") + data
    # Frame by frame: h2 refuses a PING after a GOAWAY (its state machine is closed by then),
    # and an exception loses the events of the whole read; such a PING is answered here (a
    # server's graceful GOAWAY waits for that ACK).
    while len(k["buf"]) >= 9 and len(k["buf"]) >= 9 + int.from_bytes(k["buf"][:3], "big"):
        n = 9 + int.from_bytes(k["buf"][:3], "big")
        frame, k["buf"] = k["buf"][:n], k["buf"][n:]
        try:
            events(k, c.receive_data(frame))
            out = c.data_to_send()
        except h2.exceptions.ProtocolError as e:
            out = b""
            if frame[3] == 6 and not frame[4] & 1:
                out = frame[:3] + b"\x06\x01" + frame[5:]
            else:
                k["error"] = repr(e)
        try:
            s.sendall(out)
        except (ConnectionError, ssl.SSLError):
            pass
    return True

preface = connect()
old = []
for _ in range(n_old):
    k = connect()
    request(k)
    assert k["status"] == "200", k
    old.append(k)
time.sleep(1)
young = []
for _ in range(n_young):
    k = connect()
    request(k)
    assert k["status"] == "200", k
    young.append(k)
print("ready", flush=True)

every = [preface] + old + young
while True:
    open_ = [k["s"] for k in every if not k["closed"]]
    r, _, _ = select.select(open_ + [sys.stdin], [], [], 0.1)
    if sys.stdin in r:
        sys.stdin.readline()
        break
    for k in every:
        if k["s"] in r:
            pump(k, 0)

for k in young + [preface]:
    if not k["closed"] and not k["goaways"]:
        k["again"] = None
        try:
            request(k)
            k["again"] = k["status"]
        except (SystemExit, OSError, h2.exceptions.ProtocolError) as e:
            k["error"] = repr(e)

def view(k):
    return {"goaways": k["goaways"], "closed": k["closed"], "error": k["error"],
            "again": k.get("again")}

print(json.dumps({"preface": view(preface), "old": [view(k) for k in old],
                  "young": [view(k) for k in young]}), flush=True)

"""A stock python-socketio client driven by the api's realtime tests
(services/api/tests/it/realtime.rs) over stdin and stdout, one JSON object per line.

Commands (stdin):
  {"op": "connect", "auth": {...}, "transports"?: [...]} -> connected | connect_error
  {"op": "subscribe", "run_id": ..., "after_seq": n}    -> ack (the server's answer)
  {"op": "unsubscribe", "run_id": ...}                  -> ack
  {"op": "disconnect"}                                  -> disconnected
  {"op": "churn", "auth": {...}, "run_id": ..., "last_seq": n, "cycles": k, "hold_ms": ms}
      connects, subscribes after the last seq it saw, keeps the connection for about hold_ms,
      disconnects, and again, k times; then stays until it has seen last_seq.
      -> churned {"seqs": [every seq received, duplicates included], "cycles": k}
Reports (stdout): the above, and {"kind": "event", "event": name, "data": payload} for every
event received, and {"kind": "disconnected"} when the server drops the socket.
"""

import json
import os
import sys
import threading
import time

import socketio

OUT = threading.Lock()


def say(**report):
    with OUT:
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()


def client(on_event, report_disconnect=True):
    debug = bool(os.environ.get("SIO_DEBUG"))
    sio = socketio.Client(reconnection=False, logger=debug, engineio_logger=debug)

    @sio.on("*")
    def any_event(event, data=None):
        on_event(event, data)

    @sio.event
    def connect_error(data):
        # The server's refusal: {"message": "code: what to do"}.
        sio.refusal = data.get("message") if isinstance(data, dict) else str(data)

    @sio.event
    def disconnect(*_reason):
        if report_disconnect:
            say(kind="disconnected")

    return sio


def connect(sio, url, auth, transports=("websocket",)):
    try:
        sio.connect(url, auth=auth, transports=list(transports), wait_timeout=10)
        return None
    except socketio.exceptions.ConnectionError as e:
        return getattr(sio, "refusal", None) or str(e)


def churn(url, cmd):
    seqs = []
    done = threading.Event()
    last_seq = cmd["last_seq"]
    run_id = cmd["run_id"]

    def on_event(event, data):
        if isinstance(data, dict) and data.get("run_id") == run_id and "seq" in data:
            seqs.append(data["seq"])
            if data["seq"] >= last_seq:
                done.set()

    cycles = 0
    for _ in range(cmd["cycles"]):
        if done.is_set():
            break
        sio = client(on_event, report_disconnect=False)
        error = connect(sio, url, cmd["auth"])
        if error:
            say(kind="connect_error", message=error)
            return
        after = max(seqs, default=0)
        sio.call("subscribe", {"run_id": run_id, "after_seq": after}, timeout=30)
        time.sleep(cmd["hold_ms"] / 1000)
        sio.disconnect()
        # The client hands each event to a thread of its own: let those finish before the
        # next cycle reads the last seq seen.
        time.sleep(0.05)
        cycles += 1
    if not done.is_set():
        sio = client(on_event, report_disconnect=False)
        error = connect(sio, url, cmd["auth"])
        if error:
            say(kind="connect_error", message=error)
            return
        after = max(seqs, default=0)
        sio.call("subscribe", {"run_id": run_id, "after_seq": after}, timeout=30)
        done.wait(timeout=120)
        sio.disconnect()
    say(kind="churned", seqs=seqs, cycles=cycles)


def main():
    url = sys.argv[1]
    sio = None
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "connect":
            sio = client(lambda event, data: say(kind="event", event=event, data=data))
            error = connect(sio, url, cmd.get("auth"), cmd.get("transports", ["websocket"]))
            if error:
                say(kind="connect_error", message=error)
            else:
                say(kind="connected", transport=sio.transport())
        elif op in ("subscribe", "unsubscribe"):
            body = {k: v for k, v in cmd.items() if k != "op"}
            say(kind="ack", op=op, data=sio.call(op, body, timeout=30))
        elif op == "disconnect":
            sio.disconnect()
        elif op == "churn":
            threading.Thread(target=churn, args=(url, cmd), daemon=True).start()
    if sio is not None and sio.connected:
        sio.disconnect()


if __name__ == "__main__":
    main()

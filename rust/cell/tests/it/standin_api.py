#!/usr/bin/env python3
"""A local stand-in for the coding agents' model APIs, for the integration tests.

Answers every model call with one canned text in the format the caller expects: Anthropic
messages (SSE or JSON), OpenAI Responses (SSE) and chat completions (SSE or JSON), Gemini
generateContent / streamGenerateContent (SSE). Plain HTTP on 127.0.0.1 only.

usage: standin_api.py ANSWER LOG   (prints the port on its first line, then serves)
Each request is appended to LOG as one JSON line: method, path, and the first bytes of the body.
"""

import http.server
import json
import sys
import threading
import time

ANSWER = sys.argv[1]
LOG = sys.argv[2]
LOCK = threading.Lock()


def sse(events):
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        out.append(f"data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def anthropic(req):
    model = req.get("model", "claude-standin")
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    msg = {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    if not req.get("stream"):
        msg["content"] = [{"type": "text", "text": ANSWER}]
        msg["stop_reason"] = "end_turn"
        return "application/json", json.dumps(msg).encode()
    return "text/event-stream", sse(
        [
            ("message_start", {"type": "message_start", "message": msg}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ANSWER}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"}),
        ]
    )


def responses(req):
    model = req.get("model", "gpt-standin")
    now = int(time.time())
    item = {
        "id": "msg_standin",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
    }
    base = {"id": "resp_standin", "object": "response", "created_at": now, "model": model, "status": "in_progress", "output": []}
    done = dict(base, status="completed", output=[item],
                usage={"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
                       "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15})
    if not req.get("stream"):
        return "application/json", json.dumps(done).encode()
    return "text/event-stream", sse(
        [
            ("response.created", {"type": "response.created", "sequence_number": 0, "response": base}),
            ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
                                            "item": dict(item, status="in_progress", content=[])}),
            ("response.content_part.added", {"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_standin",
                                             "output_index": 0, "content_index": 0,
                                             "part": {"type": "output_text", "text": "", "annotations": []}}),
            ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_standin",
                                            "output_index": 0, "content_index": 0, "delta": ANSWER}),
            ("response.output_text.done", {"type": "response.output_text.done", "sequence_number": 4, "item_id": "msg_standin",
                                           "output_index": 0, "content_index": 0, "text": ANSWER}),
            ("response.content_part.done", {"type": "response.content_part.done", "sequence_number": 5, "item_id": "msg_standin",
                                            "output_index": 0, "content_index": 0,
                                            "part": {"type": "output_text", "text": ANSWER, "annotations": []}}),
            ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 6, "output_index": 0, "item": item}),
            ("response.completed", {"type": "response.completed", "sequence_number": 7, "response": done}),
        ]
    )


def chat(req):
    model = req.get("model", "gpt-standin")
    now = int(time.time())
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    if not req.get("stream"):
        body = {"id": "chatcmpl-standin", "object": "chat.completion", "created": now, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
                "usage": usage}
        return "application/json", json.dumps(body).encode()
    chunk = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": now, "model": model}
    events = [
        (None, dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])),
        (None, dict(chunk, choices=[{"index": 0, "delta": {"content": ANSWER}, "finish_reason": None}])),
        (None, dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=usage)),
    ]
    return "text/event-stream", sse(events) + b"data: [DONE]\n\n"


def gemini_body():
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": ANSWER}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": "gemini-standin",
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, body):
        line = json.dumps({"method": self.command, "path": self.path, "body": body[:300].decode("utf-8", "replace")})
        with LOCK, open(LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def send(self, code, ctype, payload):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.record(b"")
        path = self.path.split("?")[0]
        if path.endswith("/models"):
            body = {"object": "list", "data": [{"id": "gpt-standin", "object": "model", "created": 0, "owned_by": "standin"}],
                    "models": []}
            self.send(200, "application/json", json.dumps(body).encode())
        else:
            self.send(404, "application/json", b'{"error":{"message":"not here","type":"not_found"}}')

    def do_HEAD(self):
        self.record(b"")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.record(raw)
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            req = {}
        path = self.path.split("?")[0]
        if path.endswith("/count_tokens"):
            ctype, payload = "application/json", b'{"input_tokens": 10}'
        elif path.endswith("/messages"):
            ctype, payload = anthropic(req)
        elif path.endswith("/responses"):
            ctype, payload = responses(req)
        elif path.endswith("/chat/completions"):
            ctype, payload = chat(req)
        elif path.endswith(":streamGenerateContent"):
            ctype, payload = "text/event-stream", sse([(None, gemini_body())])
        elif path.endswith(":generateContent"):
            ctype, payload = "application/json", json.dumps(gemini_body()).encode()
        elif path.endswith(":countTokens"):
            ctype, payload = "application/json", b'{"totalTokens": 10}'
        else:
            self.send(404, "application/json", b'{"error":{"message":"not here","type":"not_found"}}')
            return
        self.send(200, ctype, payload)


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

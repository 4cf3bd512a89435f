"""A stand-in OpenAI-compatible chat-completions server for hack/images/smoke.sh (SMOKE_LLM=1).

It lets the smoke mesh exercise the real LLM path (litellm imported and called inside read-only
containers) without a paid model: intent prompts get a fixed JSON classification, reply prompts get
the prompt's own reference reply back with a friendly prefix. `GET /calls` counts the completions served.
Standard library only, so it runs with the runtime image's python3. Listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REFERENCE = re.compile(r"A correct but plain reply, for reference:\n(.*?)\n\n", re.DOTALL)
_INTENT = {"intent": "order_status", "confidence": 0.9, "order_ids": [], "tracking_numbers": []}
calls = 0


def answer(messages: list[dict[str, Any]]) -> str:
    system = str(messages[0].get("content", "")) if messages else ""
    if "JSON object" in system:
        return json.dumps(_INTENT)
    user = str(messages[-1].get("content", ""))
    found = _REFERENCE.search(user)
    return "Thanks for reaching out! " + (found.group(1) if found else "I am looking into it.")


class Handler(BaseHTTPRequestHandler):
    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send({"calls": calls})

    def do_POST(self) -> None:
        global calls
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        calls += 1
        content = answer(request.get("messages", []))
        self._send(
            {
                "id": f"chatcmpl-smoke-{calls}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", "smoke"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"llm-stub: {self.command} {self.path}\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8900
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()

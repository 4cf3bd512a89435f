"""`actormesh escalations list|show|claim|reply|resolve`: a small client of a running gateway's agent API.

    actormesh escalations list [--state open] [--limit 20] [--all]
    actormesh escalations show ESC-1a2b3c4d
    actormesh escalations claim ESC-1a2b3c4d
    actormesh escalations reply ESC-1a2b3c4d "Your replacement ships today."
    actormesh escalations resolve ESC-1a2b3c4d --note "replacement sent"

The token: `--token`, else minted from $JWT_SECRET for `--agent` (an email) with `role: agent`, else
none (a gateway without JWT_SECRET accepts loopback callers as agents). `--json` prints the API's JSON.
Exit status: 0 done, 1 refused or failed (the gateway's error is printed: 404, 409, 422, 403…), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "List, show, claim, reply to and resolve escalations on a running gateway."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "show", "claim", "reply", "resolve"])
    parser.add_argument("ref", nargs="?", help="the escalation reference, e.g. ESC-1a2b3c4d")
    parser.add_argument("text", nargs="?", help="reply: the text the customer reads")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument(
        "--agent", help="who acts (an email with JWT_SECRET set; default: the token's subject)"
    )
    parser.add_argument(
        "--token", help="an agent's bearer token (default: minted from $JWT_SECRET for --agent)"
    )
    parser.add_argument("--state", choices=["open", "claimed", "resolved"], help="list: only this state")
    parser.add_argument("--limit", type=int, default=20, help="list: records per page (default 20)")
    parser.add_argument("--all", action="store_true", help="list: follow next_cursor to the end")
    parser.add_argument("--note", help="resolve: how it was resolved")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")


def _usage(args: argparse.Namespace) -> str | None:
    if args.action != "list" and not args.ref:
        return f"actormesh escalations {args.action} needs a reference (ESC-xxxxxxxx)"
    if args.action == "reply" and not args.text:
        return 'actormesh escalations reply ESC-xxxxxxxx "the text for the customer"'
    if args.limit < 1:
        return "--limit: at least 1"
    return None


def _request(client: Any, args: argparse.Namespace) -> Any:
    """Returns the decoded JSON of the last response; raises `_Refused` on an HTTP error."""
    base = f"{args.url.rstrip('/')}/api/escalations"
    if args.action == "list":
        items: list[Any] = []
        cursor = None
        while True:
            params = {"limit": args.limit, **({"state": args.state} if args.state else {})}
            if cursor:
                params["cursor"] = cursor
            page = _checked(client.get(base, params=params))
            items += page["items"]
            cursor = page["next_cursor"]
            if not (args.all and cursor):
                return {"items": items, "next_cursor": cursor}
    if args.action == "show":
        return _checked(client.get(f"{base}/{args.ref}"))
    body: dict[str, Any] = {"agent": args.agent} if args.agent else {}
    if args.action == "reply":
        body["text"] = args.text
    if args.action == "resolve" and args.note:
        body["note"] = args.note
    return _checked(client.post(f"{base}/{args.ref}/{args.action}", json=body))


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _checked(response: Any) -> Any:
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = response.text
    if response.status_code != 200:
        detail = body.get("detail") if isinstance(body, dict) else body
        raise _Refused(response.status_code, str(detail))
    return body


def _line(record: dict[str, Any]) -> str:
    who = record.get("claimed_by") or "-"
    return (
        f"{record['ref']}  {record['priority']:<7} {record['state']:<8} {who:<24} "
        f"{record['created_at'][:19]}  {record['summary'][:80]}"
    )


def render(action: str, body: Any) -> str:
    if action == "list":
        lines = [_line(r) for r in body["items"]] or ["(no escalations)"]
        if body.get("next_cursor"):
            lines.append("… more: --all")
        return "\n".join(lines)
    record = body["escalation"] if action == "show" else body
    lines = [
        _line(record),
        f"  customer   {record['customer']['email']} ({record['customer'].get('tier') or 'unknown tier'})",
        f"  reason     {record['reason']}: {'; '.join(record.get('reasons') or [])}",
        f"  session    {record['session_id']}",
    ]
    for order in record["facts"]["orders"]:
        lines.append(f"  order      {order['order_id']} {order['status']}")
    for action_taken in record["facts"]["actions"]:
        lines.append(
            f"  action     {action_taken['type']} {action_taken['status']}: {action_taken['detail']}"
        )
    for reply in record.get("replies") or []:
        lines.append(f"  reply      {reply['agent']}: {reply['text']}")
    if record.get("resolution_note"):
        lines.append(f"  resolved   {record['resolution_note']}")
    for turn in body.get("turns", []) if action == "show" else []:
        speaker = turn.get("author") or ("customer" if turn["role"] == "customer" else "mesh")
        lines.append(f"  > {speaker}: {turn['text']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import httpx

    from actormesh_runtime.commands.chat import bearer_headers
    from actormesh_runtime.gateway.auth import AGENT_ROLE

    problem = _usage(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    headers = bearer_headers(args.token, args.agent, role=AGENT_ROLE)
    try:
        with httpx.Client(timeout=args.timeout, headers=headers) as client:
            body = _request(client, args)
    except httpx.InvalidURL as exc:  # not an HTTPError: it would otherwise end in a traceback
        print(f"actormesh escalations: --url {args.url} is not a valid URL: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"cannot reach the gateway at {args.url}: {exc}", file=sys.stderr)
        return 1
    except _Refused as exc:
        print(f"error {exc.status}: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else render(args.action, body))
    return 0

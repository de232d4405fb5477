"""The audit log over HTTP (humans): entries, the signed checkpoint, inclusion proofs."""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from interlock.audit.log import AuditError
from interlock.server.deps import Human, ServerDep
from interlock.server.errors import ApiError
from interlock.server.responses import JSON

router = APIRouter(tags=["audit"])

#: The largest index or tree size either store can hold (a signed 64-bit integer): a larger one is a 422
#: here, not an overflow in the database driver (a 500).
MAX_INDEX = 2**63 - 1


@router.get("/v1/audit/entries")
async def audit_entries(who: Human, server: ServerDep, start: int = Query(0, ge=0, le=MAX_INDEX),
                        limit: int = Query(100, ge=1, le=1000), action_id: str | None = None) -> Response:
    def read() -> list[dict[str, Any]]:
        # Only rows inside the tree (0 <= idx < the tree size): a row slipped in at another index is
        # never shown (issue 10.1); `audit verify` names it.
        with server.store.transaction(readonly=True) as tx:
            if action_id:
                rows = tx.fetchall("SELECT idx, entry, leaf_hash FROM audit_entries WHERE action_id = ? AND idx >= 0 "
                                   "AND idx < (SELECT size FROM audit_head WHERE id = 1) ORDER BY idx LIMIT ?",
                                   (action_id, limit))
            else:
                rows = tx.fetchall("SELECT idx, entry, leaf_hash FROM audit_entries WHERE idx >= ? "
                                   "AND idx < (SELECT size FROM audit_head WHERE id = 1) ORDER BY idx LIMIT ?",
                                   (start, limit))
        return [{"index": r["idx"], "leaf_hash": r["leaf_hash"], **json.loads(r["entry"])} for r in rows]

    return JSON({"entries": await anyio.to_thread.run_sync(read)})


@router.get("/v1/audit/checkpoint")
async def audit_checkpoint(who: Human, server: ServerDep) -> Response:
    checkpoint = await anyio.to_thread.run_sync(server.audit.checkpoint)
    return JSON({**checkpoint.fields, **checkpoint.to_json()})


@router.get("/v1/audit/proof/{index}")
async def audit_proof(who: Human, server: ServerDep, index: int = Path(ge=0, le=MAX_INDEX),
                      tree_size: int | None = Query(None, ge=1, le=MAX_INDEX)) -> Response:
    try:
        proof = await anyio.to_thread.run_sync(lambda: server.audit.inclusion_proof(index, tree_size))
    except (AuditError, ValueError, IndexError) as exc:  # AuditError: the entry is not in that tree
        raise ApiError(404, "no_such_entry", str(exc)) from exc
    return JSON(proof.to_json())

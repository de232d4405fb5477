"""The gate: approval requests bound to an action's fingerprint, quorum, expiry and single-use grants.

    from interlock.gate.service import Gate
    gate = Gate(store, policy, audit)
    request = gate.open_request(agent, action, decision, classification)
    gate.approve(request.id, principal)          # principal from interlock.identity.authenticate
    grant = gate.consume_grant(agent, action)    # exactly once, for exactly this action

See docs/approvals.md.
"""
